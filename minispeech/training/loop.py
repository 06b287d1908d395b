"""The one training loop, used by every task: `train(cfg)` -> the exported model file.

Read `train` top to bottom: build the model and data from the config, resume if a `last`
checkpoint exists, then for each batch: move it to the device, forward under autocast
(`trainer.precision`: 32, bf16-mixed or 16-mixed with a GradScaler, Micikevicius et al.
2018, "Mixed Precision Training", arXiv:1710.03740, Sec. 3.2 loss scaling), backward,
and every `accumulate_grad_batches` batches clip the gradient norm (Pascanu et al. 2013,
arXiv:1211.5063, Sec. 3.2) and take an optimizer and scheduler step. Validation runs
every `val_check_interval` steps (or each epoch); `last.ckpt` is written every
`every_n_train_steps` steps, the best `save_top_k` models by `monitor` are kept as model
files, and `<name>.nemo` is exported at the end. `compute_loss` and
`compute_validation_loss` keep icefall's names.

Exact resume: `last.ckpt` holds the model, optimizer, scheduler and GradScaler states,
the position in the epoch (the sampler is replayed for the epoch and the consumed
batches are skipped) and the python/numpy/torch RNG states of every rank, so N steps +
resume + N steps equals 2N steps bit for bit. Files are written atomically, so a kill at
any moment leaves the previous `last.ckpt` readable.

A non-finite loss skips its optimizer step (no NaN reaches the weights), is counted and
logged with the batch's utterance ids; `max_consecutive_nonfinite` in a row abort the
run. Differs from Lightning: a partial accumulation window is carried over the epoch
boundary, and a skipped window (non-finite loss or fp16 overflow) is not counted as a
step, so `max_steps` counts real updates.
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path

import torch
from tqdm import tqdm

from minispeech.core.checkpoint import load_torch_file
from minispeech.core.config import ConfigError
from minispeech.core.model import SpeechModel
from minispeech.training import distributed
from minispeech.training.options import ExpOptions, TrainerOptions
from minispeech.training.state import (
    Checkpointer,
    LoopState,
    MetricsLog,
    Parts,
    restore_rng,
    seed_everything,
)


def train(cfg: dict, *, trust_targets: bool = False) -> Path:
    """Train `cfg["model"]` as `cfg["trainer"]` says; write to `cfg["exp_manager"]`.

    `trust_targets=True` allows a model `_target_` outside minispeech (your own class).
    Returns the path of the exported model file (`<exp_dir>/<name>/<name>.nemo`).
    """
    if "model" not in cfg:
        raise ConfigError("config has no model: section")
    opts = TrainerOptions.from_dict(cfg.get("trainer"))
    exp = ExpOptions.from_dict(cfg.get("exp_manager"))
    env = distributed.setup(opts.accelerator)
    try:
        return fit(cfg, opts, exp, env, trust_targets)
    finally:
        distributed.teardown(env)


def fit(cfg, opts: TrainerOptions, exp: ExpOptions, env, trust_targets: bool) -> Path:
    # 1) model, data and optimizer: the same seed on every rank gives the same init
    seed_everything(opts.seed)
    model = SpeechModel.from_config(cfg["model"], trust_targets=trust_targets)
    model.to(env.device)
    train_cfg = model.cfg.get("train_ds") or {}
    train_set = model.build_dataset(train_cfg)
    sampler = model.build_sampler(
        train_cfg, train_set, env.world_size, env.rank, opts.seed
    )
    val_loader = build_validation_loader(model, env, opts.seed)
    steps_per_epoch = max(1, len(sampler) // opts.accumulate_grad_batches)
    max_steps = opts.max_steps or opts.max_epochs * steps_per_epoch
    optimizer, scheduler = model.configure_optimizers(max_steps)
    scaler = torch.amp.GradScaler(env.device.type, enabled=opts.precision == "16-mixed")
    step_module = distributed.wrap(model, env)
    parts = Parts(model, step_module, optimizer, scheduler, scaler, sampler)

    # 2) experiment folder; resume from last.ckpt if there is one
    run_dir = Path(exp.exp_dir) / exp.name
    log = MetricsLog(run_dir / "metrics.jsonl", enabled=env.is_main)
    ckpt = Checkpointer(run_dir / "checkpoints", exp, env)
    state = LoopState()
    resuming = exp.resume_if_exists and ckpt.last_path.exists()
    if resuming:
        resumed = load_torch_file(ckpt.last_path, "cpu", str(ckpt.last_path))
        state = ckpt.load(resumed, parts)
        restore_rng(resumed["rng"], env.rank)
    log.truncate_after(state.step if resuming else -1)  # a fresh run, a fresh log
    val_every = opts.val_every_steps(steps_per_epoch)

    # 3) epochs until max_steps, max_epochs or max_time
    progress = tqdm(
        total=max_steps,
        initial=state.step,
        disable=not (env.is_main and opts.enable_progress_bar),
    )
    started = time.monotonic() - state.elapsed
    while not state.finished(opts, max_steps, env):
        sampler.set_epoch(state.epoch)
        loader = epoch_loader(
            model, train_set, sampler, train_cfg, state.epoch, opts.seed
        )
        for batch in loader:
            state.batch_in_epoch += 1
            stepped = train_one_batch(batch, parts, opts, state, env, log)
            if not stepped:
                continue
            state.elapsed = time.monotonic() - started
            progress.update(1)
            progress.set_postfix(
                loss=f"{state.last_loss:.4f}", lr=f"{state.last_lr:.2e}"
            )
            if val_every and state.step % val_every == 0:
                run_validation(model, val_loader, opts, state, env, log, ckpt)
            if exp.every_n_train_steps and state.step % exp.every_n_train_steps == 0:
                ckpt.save_last(state, parts)
            if state.finished(opts, max_steps, env):
                break
        if state.batch_in_epoch >= len(sampler):  # the epoch ran to its end
            if not val_every:
                run_validation(model, val_loader, opts, state, env, log, ckpt)
            state.epoch, state.batch_in_epoch = state.epoch + 1, 0
    progress.close()

    # 4) the final state and the exported model file
    state.micro_batch = 0  # a partial accumulation window at the very end is dropped
    ckpt.save_last(state, parts)
    return ckpt.export(model, run_dir / f"{exp.name}.nemo")


def build_validation_loader(model: SpeechModel, env, seed: int):
    """Validation batches (each rank its shard, in a fixed order), or None."""
    val_cfg = model.cfg.get("validation_ds")
    if not val_cfg:
        return None
    val_set = model.build_dataset(val_cfg)
    val_cfg = {**val_cfg, "shuffle": False}
    sampler = model.build_sampler(val_cfg, val_set, env.world_size, env.rank, seed)
    return torch.utils.data.DataLoader(
        val_set,
        batch_sampler=sampler,
        collate_fn=model.collate,
        num_workers=val_cfg.get("num_workers", 0),
    )


def epoch_loader(model, train_set, sampler, train_cfg: dict, epoch: int, seed: int):
    """A DataLoader over this epoch (after a resume, the sampler skips the batches
    already trained on). Its own generator keeps the global torch RNG untouched, so a
    resumed run draws the same random numbers as an unbroken one."""
    generator = torch.Generator().manual_seed(seed + epoch)
    return torch.utils.data.DataLoader(
        train_set,
        batch_sampler=sampler,
        collate_fn=model.collate,
        num_workers=train_cfg.get("num_workers", 0),
        generator=generator,
    )


def to_device(batch, device: torch.device):
    """Tensors (in dicts, lists, tuples) to `device`; everything else unchanged."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def autocast(opts: TrainerOptions, device: torch.device):
    """bf16 or fp16 autocast for the mixed precisions, a no-op context for 32."""
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(
        opts.precision
    )
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def compute_loss(
    step_module, batch: dict, opts: TrainerOptions, device
) -> torch.Tensor:
    """Forward under autocast; the scalar loss in float32."""
    with autocast(opts, device):
        out = step_module(batch)
    if "loss" not in out or out["loss"].ndim != 0:
        raise RuntimeError(
            f"training_step must return {{'loss': scalar}}, got {list(out)}"
        )
    return out["loss"].float()


def train_one_batch(
    batch, parts, opts: TrainerOptions, state: LoopState, env, log
) -> bool:
    """Forward + backward one micro-batch; step at the window's end. True if stepped."""
    batch = to_device(batch, env.device)
    last_micro = state.micro_batch + 1 == opts.accumulate_grad_batches
    # gradients are all-reduced only on the window's last micro-batch
    sync = last_micro or env.world_size == 1
    with contextlib.nullcontext() if sync else parts.step_module.no_sync():
        loss = compute_loss(parts.step_module, batch, opts, env.device)
        finite = distributed.all_true(bool(torch.isfinite(loss)), env)
        if finite:
            parts.scaler.scale(loss / opts.accumulate_grad_batches).backward()
    state.record_loss(loss.item(), finite, batch, opts, env, log)
    state.micro_batch += 1
    if not last_micro:
        return False
    state.micro_batch = 0
    return optimizer_step(parts, opts, state, log)


def optimizer_step(parts: Parts, opts: TrainerOptions, state: LoopState, log) -> bool:
    """Unscale, clip, step (or skip a window that saw a non-finite loss or gradient)."""
    model, _, optimizer, scheduler, scaler, _ = parts
    if not state.window_finite:
        optimizer.zero_grad(set_to_none=True)
        state.reset_window()
        return False
    scaler.unscale_(optimizer)  # no-op unless 16-mixed: clip the true gradient
    max_norm = opts.gradient_clip_val if opts.gradient_clip_val > 0 else math.inf
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    if not scaler.is_enabled() and not torch.isfinite(grad_norm):
        optimizer.zero_grad(
            set_to_none=True
        )  # fp16 overflow is the scaler's job instead
        state.count_nonfinite_grad(log)
        return False
    lr = optimizer.param_groups[0][
        "lr"
    ]  # the lr of this step, before the schedule moves
    scale = scaler.get_scale() if scaler.is_enabled() else 1.0
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    if (
        scaler.is_enabled() and scaler.get_scale() < scale
    ):  # fp16 overflow: step skipped
        state.reset_window()
        return False
    if scheduler is not None:
        scheduler.step()
    state.finish_step(lr)
    if state.step % opts.log_every_n_steps == 0:
        log.write(state.train_record(float(grad_norm)))
    return True


@torch.no_grad()
def compute_validation_loss(
    model: SpeechModel, loader, opts: TrainerOptions, env
) -> dict:
    """Sum `validation_step` stats over batches and ranks -> `validation_metrics`."""
    model.eval()
    totals: dict = {}
    for batch in loader:
        with autocast(opts, env.device):
            stats = model.validation_step(to_device(batch, env.device))
        for key, value in stats.items():
            totals[key] = totals.get(key, 0.0) + float(value)
    model.train()
    return model.validation_metrics(distributed.sum_stats(totals, env))


def run_validation(model, loader, opts, state: LoopState, env, log, ckpt) -> None:
    """Validate, log the metrics and keep the best k model files."""
    if loader is None:
        return
    metrics = compute_validation_loss(model, loader, opts, env)
    log.write({"step": state.step, "epoch": state.epoch, **metrics})
    ckpt.keep_best(model, metrics, state)
