"""What the loop keeps across steps and runs: counters, RNG states, logs, checkpoints.

`LoopState` holds the counters; `MetricsLog` is the JSONL log; `Checkpointer` writes
`last.ckpt`, the best k model files and the exported model.

`last.ckpt` is a `torch.save` dict read back with `weights_only=True` (so only tensors
and plain Python containers): model, optimizer, scheduler and GradScaler state dicts,
the loop counters, the best-k list and one RNG snapshot per rank. It is written
atomically (a temporary file renamed over the old one), so a crash at any moment leaves
a readable file.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from tqdm import tqdm

from minispeech.core.checkpoint import atomic_write, load_state_dict_checked
from minispeech.core.config import ConfigError
from minispeech.training import distributed
from minispeech.training.options import ExpOptions, TrainerOptions


class Parts(NamedTuple):
    """Everything whose state a resumed run needs (besides the counters and RNGs)."""

    model: Any  # the SpeechModel (unwrapped: its state dict has no DDP prefixes)
    step_module: Any  # what the loop calls: StepModule, or DDP around it
    optimizer: Any
    scheduler: Any  # LambdaLR or None
    scaler: Any  # torch.amp.GradScaler (disabled unless 16-mixed)
    sampler: Any  # batch sampler with set_epoch / state_dict / load_state_dict


@dataclass
class LoopState:
    step: int = 0  # optimizer steps taken
    epoch: int = 0  # current epoch
    batch_in_epoch: int = 0  # batches of this epoch already consumed (on this rank)
    micro_batch: int = 0  # position inside the accumulation window
    elapsed: float = 0.0  # training seconds, summed over resumed runs
    window_finite: bool = True  # False once a micro-batch of this window was non-finite
    window_loss: float = 0.0  # sum of the window's finite losses ...
    window_count: int = 0  # ... and their number
    consecutive_nonfinite: int = 0
    nonfinite_total: int = 0
    last_loss: float = math.nan  # mean loss of the last step (progress bar, log)
    last_lr: float = math.nan

    def finished(self, opts: TrainerOptions, max_steps: int, env=None) -> bool:
        done = (max_steps is not None and self.step >= max_steps) or (
            opts.max_epochs is not None and self.epoch >= opts.max_epochs
        )
        out_of_time = opts.max_time is not None and self.elapsed >= opts.max_time
        if (
            env is not None and opts.max_time is not None
        ):  # clocks differ: rank 0 decides
            out_of_time = distributed.gather(out_of_time, env)[0]
        return done or out_of_time

    def record_loss(self, loss: float, finite: bool, batch, opts, env, log) -> None:
        """Add a finite loss to the window; log and count a non-finite one."""
        own_finite = math.isfinite(loss)
        if finite:
            self.window_loss, self.window_count = (
                self.window_loss + loss,
                self.window_count + 1,
            )
            self.consecutive_nonfinite = 0
            return
        self.window_finite = False
        self.consecutive_nonfinite += 1
        self.nonfinite_total += 1
        ids_by_rank = distributed.gather(None if own_finite else _ids(batch), env)
        ids = [i for rank_ids in ids_by_rank if rank_ids for i in rank_ids]
        log.write(
            {
                "event": "nonfinite_loss",
                "step": self.step + 1,
                "epoch": self.epoch,
                "ids": ids,
                "nonfinite_total": self.nonfinite_total,
            }
        )
        if env.is_main:
            tqdm.write(
                f"non-finite loss at step {self.step + 1}, skipped; utterances: {ids}"
            )
        if self.consecutive_nonfinite >= opts.max_consecutive_nonfinite:
            raise RuntimeError(
                f"{self.consecutive_nonfinite} consecutive non-finite losses (last at "
                f"step {self.step + 1}, utterances {ids}); check these inputs, lower "
                "the learning rate or use trainer.precision=32"
            )

    def count_nonfinite_grad(self, log) -> None:
        self.nonfinite_total += 1
        log.write(
            {"event": "nonfinite_grad", "step": self.step + 1, "epoch": self.epoch}
        )
        self.reset_window()

    def reset_window(self) -> None:
        self.window_finite, self.window_loss, self.window_count = True, 0.0, 0

    def finish_step(self, lr: float) -> None:
        self.step += 1
        self.last_lr = lr
        self.last_loss = self.window_loss / max(1, self.window_count)
        self.reset_window()

    def train_record(self, grad_norm: float) -> dict:
        return {
            "step": self.step,
            "epoch": self.epoch,
            "loss": self.last_loss,
            "lr": self.last_lr,
            "grad_norm": grad_norm,
            "elapsed": round(self.elapsed, 3),
            "nonfinite_total": self.nonfinite_total,
        }


def _ids(batch) -> list:
    ids = batch.get("ids") if isinstance(batch, dict) else None
    return [str(i) for i in ids] if ids is not None else ["<batch without ids>"]


class MetricsLog:
    """Append-only JSON lines (rank 0 only); non-finite numbers as strings."""

    def __init__(self, path: Path, enabled: bool = True):
        self.path, self.enabled = Path(path), enabled

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        clean = {
            k: (str(v) if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in record.items()
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as file:
            file.write(json.dumps(clean) + "\n")

    def truncate_after(self, step: int) -> None:
        """On resume, drop the records of steps after the checkpoint."""
        if not self.enabled or not self.path.exists():
            return
        lines = self.path.read_text(encoding="utf-8").splitlines()
        keep = [line for line in lines if _record_step(line) <= step]
        atomic_write(
            self.path, lambda f: f.write("".join(x + "\n" for x in keep).encode())
        )


def _record_step(line: str) -> float:
    try:
        return float(json.loads(line).get("step", 0))
    except (ValueError, AttributeError):
        return math.inf  # a half-written line from a kill


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # CPU and every GPU


def capture_rng() -> dict:
    """This process's RNG states, in types `torch.load(weights_only=True)` reads."""
    numpy_state = np.random.get_state(legacy=False)
    return {
        "python": random.getstate(),
        "numpy_key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
        "numpy_pos": int(numpy_state["state"]["pos"]),
        "numpy_gauss": (int(numpy_state["has_gauss"]), float(numpy_state["gauss"])),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng(states: list, rank: int) -> None:
    """Restore this rank's snapshot (rank 0's when the world size changed)."""
    state = states[rank] if rank < len(states) else states[0]
    random.setstate(state["python"])
    key = state["numpy_key"].numpy().astype(np.uint32)
    has_gauss, gauss = state["numpy_gauss"]
    np.random.set_state(("MT19937", key, state["numpy_pos"], has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Checkpointer:
    """`last.ckpt` for resuming, the best k model files, the exported model."""

    def __init__(self, folder: Path, exp: ExpOptions, env):
        self.folder, self.exp, self.env = Path(folder), exp, env
        self.last_path = self.folder / "last.ckpt"
        self.best: list[tuple[float, str]] = []  # (metric, model file), best first

    def save_last(self, state: LoopState, parts: Parts) -> None:
        model, _, optimizer, scheduler, scaler, sampler = parts
        rng = distributed.gather(capture_rng(), self.env)  # every rank takes part
        if not self.env.is_main:
            return
        payload = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "scaler": scaler.state_dict(),
            "sampler": sampler.state_dict(batches_done=state.batch_in_epoch),
            "loop": dataclasses.asdict(state),
            "best": [list(item) for item in self.best],
            "rng": rng,
        }
        atomic_write(self.last_path, lambda file: torch.save(payload, file))

    def load(self, resumed: dict, parts: Parts) -> LoopState:
        model, _, optimizer, scheduler, scaler, sampler = parts
        load_state_dict_checked(model, resumed["model"], source=str(self.last_path))
        optimizer.load_state_dict(resumed["optimizer"])
        if scheduler is not None and resumed["scheduler"] is not None:
            scheduler.load_state_dict(resumed["scheduler"])
        if scaler.is_enabled() and resumed["scaler"]:
            scaler.load_state_dict(resumed["scaler"])
        self.best = [(float(v), str(p)) for v, p in resumed["best"]]
        state = LoopState(**resumed["loop"])
        try:
            sampler.load_state_dict(resumed["sampler"])
        except ValueError as error:
            message = f"{self.last_path}: cannot resume the data order: {error}"
            raise ConfigError(message) from None
        return state

    def keep_best(self, model, metrics: dict, state: LoopState) -> None:
        exp = self.exp
        if exp.save_top_k <= 0:
            return
        if exp.monitor not in metrics:
            raise ConfigError(
                f"exp_manager.monitor {exp.monitor!r} is not a validation metric; "
                f"the model reports {sorted(metrics)}"
            )
        value = float(metrics[exp.monitor])
        sign = 1.0 if exp.mode == "min" else -1.0
        full = len(self.best) >= exp.save_top_k
        if not math.isfinite(value) or (
            full and sign * value >= sign * self.best[-1][0]
        ):
            return
        path = (
            self.folder
            / f"{exp.name}--{exp.monitor}={value:.4f}-step={state.step}.nemo"
        )
        if self.env.is_main:
            model.save_to(path)
        self.best = sorted(
            self.best + [(value, str(path))], key=lambda item: sign * item[0]
        )
        for _, old in self.best[exp.save_top_k :]:
            if self.env.is_main and old != str(path):
                Path(old).unlink(missing_ok=True)
        self.best = self.best[: exp.save_top_k]

    def export(self, model, path: Path) -> Path:
        if self.env.is_main:
            model.save_to(path)
        distributed.barrier(self.env)
        return path
