"""The one training loop, used by every task: `train(cfg)` -> the exported model file.

Read `train` top to bottom: build the model and data from the config, resume if a `last`
checkpoint exists, then for each batch: move it to the device, forward under autocast
(`trainer.precision`: 32, bf16-mixed or 16-mixed with a GradScaler, Micikevicius et al.
2018, "Mixed Precision Training", arXiv:1710.03740, Sec. 3.2 loss scaling), backward,
and every `accumulate_grad_batches` batches clip the gradient norm (Pascanu et al. 2013,
arXiv:1211.5063, Sec. 3.2) and take an optimizer and scheduler step (the mechanics are
in training/optimizers.py). Validation runs every `val_check_interval` steps (or each
epoch); `last.ckpt` is written every `every_n_train_steps` steps, the best `save_top_k`
models by `monitor` are kept as model files, and `<name>.nemo` is exported at the end.
`compute_loss` and `compute_validation_loss` keep icefall's names.

Several optimizers (a GAN vocoder's generator and discriminator): the model sets
`manual_optimization = True`, returns lists from `configure_optimizers`, and its
`training_step(batch, optimizers)` calls `backward(loss)` and `step()` on each; the
scaling, accumulation, clipping and skipping stay the loop's. That is the loop's one
branch on the number of optimizers (in `train_one_batch`). A window counts as a step
when at least one optimizer stepped; the log holds `lr` and `grad_norm` of the first
optimizer, `lr_1` and `grad_norm_1` of the second, and so on.

Exact resume: `last.ckpt` holds the model, optimizer, scheduler and GradScaler states,
the position in the epoch (the sampler is replayed for the epoch and the consumed
batches are skipped) and the python/numpy/torch RNG states of every rank, so N steps +
resume + N steps equals 2N steps bit for bit. Files are written atomically, so a kill at
any moment leaves the previous `last.ckpt` readable (training/checkpointer.py).

A non-finite loss skips its optimizer step (no NaN reaches the weights), is counted and
logged with the batch's utterance ids; `max_consecutive_nonfinite` in a row abort the
run. Differs from Lightning: a partial accumulation window is carried over the epoch
boundary, and a skipped window (non-finite loss or fp16 overflow) is not counted as a
step, so `max_steps` counts real updates.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from pathlib import Path

import torch
from tqdm import tqdm

from minispeech.core.config import ConfigError, check_keys
from minispeech.core.model import SpeechModel
from minispeech.training import distributed
from minispeech.training.checkpointer import Checkpointer, Parts, seed_everything
from minispeech.training.init_from import init_from_nemo_model
from minispeech.training.loaders import build_validation_loader, epoch_loader, to_device
from minispeech.training.log import MetricsLog
from minispeech.training.optimizers import Optimizers, StepResult, as_lists
from minispeech.training.options import ExpOptions, TrainerOptions
from minispeech.training.state import LoopState

# a misspelt init_from_nemo_model must not silently train from scratch
TOP_LEVEL_KEYS = ("model", "trainer", "exp_manager", "init_from_nemo_model")


def train(cfg: dict, *, trust_targets: bool = False) -> Path:
    """Train `cfg["model"]` as `cfg["trainer"]` says; write to `cfg["exp_manager"]`.

    `trust_targets=True` allows a model `_target_` outside minispeech (your own class).
    Returns the path of the exported model file (`<exp_dir>/<name>/<name>.nemo`).
    """
    if "model" not in cfg:
        raise ConfigError("config has no model: section")
    check_keys("config", cfg, TOP_LEVEL_KEYS, noun="top-level section")
    opts = TrainerOptions.from_dict(cfg.get("trainer"))
    exp = ExpOptions.from_dict(cfg.get("exp_manager"))
    env = distributed.setup(opts.accelerator)
    try:
        return fit(cfg, opts, exp, env, trust_targets)
    finally:
        distributed.teardown(env)


def fit(cfg, opts: TrainerOptions, exp: ExpOptions, env, trust_targets: bool) -> Path:
    """The body of `train` on this rank; the exported model file."""
    # 1) model, data and optimizers: the same seed on every rank gives the same init
    seed_everything(opts.seed)
    model = SpeechModel.from_config(cfg["model"], trust_targets=trust_targets)
    if cfg.get("init_from_nemo_model"):  # NeMo's transfer learning: before any step
        copied = init_from_nemo_model(model, cfg["init_from_nemo_model"])
        if env.is_main:
            tqdm.write(f"init_from_nemo_model: copied {len(copied)} weight tensors")
    model.to(env.device)
    train_cfg = model.cfg.get("train_ds") or {}
    train_set = model.build_dataset(train_cfg)
    sampler = model.build_sampler(
        train_cfg, train_set, env.world_size, env.rank, opts.seed
    )
    val_loader = build_validation_loader(model, env, opts.seed)
    steps_per_epoch = max(1, len(sampler) // opts.accumulate_grad_batches)
    max_steps = opts.max_steps or opts.max_epochs * steps_per_epoch
    optim = build_optimizers(model, max_steps, opts, env)
    parts = Parts(model, distributed.wrap(model, env), optim, sampler)

    # 2) experiment folder; resume from last.ckpt if there is one
    run_dir = Path(exp.exp_dir) / exp.name
    log = MetricsLog(run_dir / "metrics.jsonl", enabled=env.is_main)
    ckpt = Checkpointer(run_dir / "checkpoints", exp, env)
    state = ckpt.resume(parts)  # None for a fresh run
    log.truncate_after(state.step if state else -1)  # a fresh run, a fresh log
    state = state or LoopState()
    val_every = opts.val_every_steps(steps_per_epoch)

    # 3) epochs until max_steps, max_epochs or max_time
    show = env.is_main and opts.enable_progress_bar
    progress = tqdm(total=max_steps, initial=state.step, disable=not show)
    started = time.monotonic() - state.elapsed
    while not finished(state, opts, max_steps, env):
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
            if finished(state, opts, max_steps, env):
                break
        if state.batch_in_epoch >= len(sampler):  # the epoch ran to its end
            if not val_every:
                run_validation(model, val_loader, opts, state, env, log, ckpt)
            state.epoch, state.batch_in_epoch = state.epoch + 1, 0
    progress.close()

    # 4) the final state and the exported model file
    state.micro_batch = 0  # a partial accumulation window at the very end is dropped
    state.reset_window()
    ckpt.save_last(state, parts)
    if env.is_main:
        model.on_train_end()
    return ckpt.export(model, run_dir / f"{exp.name}.nemo")


def build_optimizers(model: SpeechModel, max_steps: int, opts, env) -> Optimizers:
    """The model's optimizers and schedulers, with the GradScaler of 16-mixed."""
    manual = model.manual_optimization
    optimizers, schedulers = as_lists(model.configure_optimizers(max_steps), manual)
    scaler = torch.amp.GradScaler(env.device.type, enabled=opts.precision == "16-mixed")
    return Optimizers(optimizers, schedulers, scaler, opts, env, manual)


def finished(state: LoopState, opts: TrainerOptions, max_steps: int, env) -> bool:
    """max_steps, max_epochs or max_time reached (the time as rank 0 measures it)."""
    done = (max_steps is not None and state.step >= max_steps) or (
        opts.max_epochs is not None and state.epoch >= opts.max_epochs
    )
    out_of_time = opts.max_time is not None and state.elapsed >= opts.max_time
    if opts.max_time is not None:  # clocks differ: rank 0 decides for every rank
        out_of_time = distributed.gather(out_of_time, env)[0]
    return done or out_of_time


def autocast(opts: TrainerOptions, device: torch.device):
    """bf16 or fp16 autocast for the mixed precisions, a no-op context for 32."""
    dtypes = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
    dtype = dtypes.get(opts.precision)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def compute_loss(step_module, batch: dict, opts, device, *args) -> torch.Tensor:
    """Forward (`training_step(batch, *args)`) under autocast; the loss in float32."""
    with autocast(opts, device):
        out = step_module(batch, *args)
    if "loss" not in out or out["loss"].ndim != 0:
        got = list(out)
        raise RuntimeError(f"training_step must return {{'loss': scalar}}, got {got}")
    return out["loss"].float()


def train_one_batch(batch, parts: Parts, opts, state: LoopState, env, log) -> bool:
    """Forward + backward one micro-batch; step at the window's end. True if stepped."""
    batch = to_device(batch, env.device)
    optim = parts.optim
    optim.start_micro_batch(state.micro_batch + 1 == opts.accumulate_grad_batches)
    if parts.model.manual_optimization:
        # the model calls backward() and step() of each optimizer (optimizers.py)
        loss = compute_loss(parts.step_module, batch, opts, env.device, optim.items)
    else:
        # DDP all-reduces the gradients only on the window's last micro-batch
        sync = optim.window_end or env.world_size == 1
        with contextlib.nullcontext() if sync else parts.step_module.no_sync():
            loss = compute_loss(parts.step_module, batch, opts, env.device)
            optim.items[0].backward(loss)
        optim.items[0].step()
    record_loss(loss.item(), optim, batch, opts, state, env, log)
    state.micro_batch += 1
    if not optim.window_end:
        return False
    state.micro_batch = 0
    return finish_window(optim, opts, state, log)


def record_loss(loss: float, optim: Optimizers, batch, opts, state, env, log) -> None:
    """Add a finite loss to the window's mean; report a non-finite one (and abort
    after `max_consecutive_nonfinite` in a row)."""
    if optim.finite:
        state.add_loss(loss)
        return
    state.count_nonfinite()
    ids = nonfinite_ids(batch, optim.own_finite, env)
    log_nonfinite(ids, state, env, log)
    abort_if_too_many(ids, state, opts)


def nonfinite_ids(batch, own_finite: bool, env) -> list:
    """The utterance ids of the non-finite batches, gathered from every rank."""
    own = None if own_finite else batch_ids(batch)
    by_rank = distributed.gather(own, env)  # [ids or None of rank 0, of rank 1, ...]
    return [i for ids in by_rank if ids for i in ids]


def batch_ids(batch) -> list:
    """The batch's utterance ids as strings (from `collate`'s "ids")."""
    ids = batch.get("ids") if isinstance(batch, dict) else None
    return [str(i) for i in ids] if ids is not None else ["<batch without ids>"]


def log_nonfinite(ids: list, state: LoopState, env, log) -> None:
    """An event record in metrics.jsonl and a line on the console (rank 0)."""
    step = state.step + 1  # the step this window would have been
    event = {"event": "nonfinite_loss", "step": step, "epoch": state.epoch, "ids": ids}
    log.write({**event, "nonfinite_total": state.nonfinite_total})
    if env.is_main:
        tqdm.write(f"non-finite loss at step {step}, skipped; utterances: {ids}")


def abort_if_too_many(ids: list, state: LoopState, opts: TrainerOptions) -> None:
    """Stop the run after `max_consecutive_nonfinite` non-finite losses in a row."""
    if state.consecutive_nonfinite >= opts.max_consecutive_nonfinite:
        raise RuntimeError(
            f"{state.consecutive_nonfinite} consecutive non-finite losses (last at "
            f"step {state.step + 1}, utterances {ids}); check these inputs, lower "
            "the learning rate or use trainer.precision=32"
        )


def finish_window(optim: Optimizers, opts, state: LoopState, log) -> bool:
    """After the window's optimizer steps: count and log the step. True if any
    optimizer stepped; a non-finite gradient is counted and logged."""
    results = optim.end_window()
    for i, result in enumerate(results):
        if result.outcome == "nonfinite_grad":
            state.nonfinite_total += 1
            which = {"optimizer": i} if len(results) > 1 else {}
            step, epoch = state.step + 1, state.epoch
            log.write(
                {"event": "nonfinite_grad", "step": step, "epoch": epoch, **which}
            )
    if not any(result.outcome == "stepped" for result in results):
        state.reset_window()
        return False
    state.finish_step(results[0].lr)
    if state.step % opts.log_every_n_steps == 0:
        log.write(train_record(state, results))
    return True


def train_record(state: LoopState, results: list[StepResult]) -> dict:
    """The log record of a step: loss, then lr and gradient norm of each optimizer."""
    record = {"step": state.step, "epoch": state.epoch, "loss": state.last_loss}
    for i, result in enumerate(results):
        suffix = f"_{i}" if i > 0 else ""  # lr, lr_1, lr_2, ...
        record[f"lr{suffix}"] = result.lr
        record[f"grad_norm{suffix}"] = result.grad_norm
    record["elapsed"] = round(state.elapsed, 3)
    record["nonfinite_total"] = state.nonfinite_total
    return record


@torch.no_grad()
def compute_validation_loss(model: SpeechModel, loader, opts, env) -> dict:
    """`validation_step` stats over batches and ranks (numbers summed, lists
    concatenated in batch and rank order) -> `validation_metrics`; the first
    `limit_val_batches` batches of each rank only."""
    model.eval()
    totals: dict = {}
    for batch in itertools.islice(loader, opts.val_batches(len(loader))):
        with autocast(opts, env.device):
            stats = model.validation_step(to_device(batch, env.device))
        add_stats(totals, stats)
    model.train()
    return model.validation_metrics(distributed.reduce_stats(totals, env))


def add_stats(totals: dict, stats: dict) -> None:
    """Numbers are summed over batches, lists (e.g. per-trial scores) concatenated."""
    for key, value in stats.items():
        if isinstance(value, (list, tuple)):
            totals[key] = totals.get(key, []) + list(value)
        else:
            totals[key] = totals.get(key, 0.0) + float(value)


def run_validation(model, loader, opts, state: LoopState, env, log, ckpt) -> None:
    """Validate, log the metrics and keep the best k model files."""
    if loader is None:
        return
    metrics = compute_validation_loss(model, loader, opts, env)
    log.write({"step": state.step, "epoch": state.epoch, **metrics})
    ckpt.keep_best(model, metrics, state)
