"""Checkpoints of a run: `last.ckpt` to resume, the best k model files, the export.

`last.ckpt` is a `torch.save` dict read back with `weights_only=True` (so only tensors
and plain Python containers): the model state dict, one state dict per optimizer and
per scheduler (None for no schedule), the GradScaler's, the sampler position, the loop
counters, the best-k list and one RNG snapshot per rank (python, numpy, torch, CUDA). It
is written atomically (a temporary file renamed over the old one), so a crash at any
moment leaves the previous file readable. Files of the single-optimizer format
(`optimizer`, `scheduler` keys) are still read.
"""

from __future__ import annotations

import dataclasses
import math
import random
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from minispeech.core.checkpoint import (
    atomic_write,
    load_state_dict_checked,
    load_torch_file,
)
from minispeech.core.config import ConfigError
from minispeech.training import distributed
from minispeech.training.options import ExpOptions
from minispeech.training.state import LoopState


class Parts(NamedTuple):
    """Everything whose state a resumed run needs (besides the counters and RNGs)."""

    model: Any  # the SpeechModel (unwrapped: its state dict has no DDP prefixes)
    step_module: Any  # what the loop calls: StepModule, or DDP around it
    optim: Any  # training.optimizers.Optimizers: optimizers, schedulers, GradScaler
    sampler: Any  # batch sampler with set_epoch / state_dict / load_state_dict


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
        """Write `last.ckpt` atomically (rank 0; every rank sends its RNG states)."""
        optim = parts.optim
        rng = distributed.gather(capture_rng(), self.env)  # every rank takes part
        if not self.env.is_main:
            return
        payload = {
            "model": parts.model.state_dict(),
            "optimizers": [o.state_dict() for o in optim.optimizers],
            "schedulers": [s.state_dict() if s else None for s in optim.schedulers],
            "scaler": optim.scaler.state_dict(),
            "sampler": parts.sampler.state_dict(batches_done=state.batch_in_epoch),
            "loop": dataclasses.asdict(state),
            "best": [list(item) for item in self.best],
            "rng": rng,
        }
        atomic_write(self.last_path, lambda file: torch.save(payload, file))

    def resume(self, parts: Parts) -> LoopState | None:
        """Restore the parts and this rank's RNGs from `last.ckpt` and return the
        counters; None when there is nothing to resume (a fresh run)."""
        if not (self.exp.resume_if_exists and self.last_path.exists()):
            return None
        resumed = load_torch_file(self.last_path, "cpu", str(self.last_path))
        state = self.load(resumed, parts)
        restore_rng(resumed["rng"], self.env.rank)
        return state

    def load(self, resumed: dict, parts: Parts) -> LoopState:
        """Put a `last.ckpt` dict back into the parts; the loop counters."""
        source = str(self.last_path)
        load_state_dict_checked(parts.model, resumed["model"], source=source)
        self._load_optimizers(resumed, parts.optim)
        self.best = [(float(v), str(p)) for v, p in resumed["best"]]
        try:
            parts.sampler.load_state_dict(resumed["sampler"])
        except ValueError as error:
            message = f"{self.last_path}: cannot resume the data order: {error}"
            raise ConfigError(message) from None
        return LoopState.from_dict(resumed["loop"])

    def _load_optimizers(self, resumed: dict, optim) -> None:
        # the single-optimizer format had one "optimizer" and one "scheduler"
        optimizers = resumed.get("optimizers") or [resumed["optimizer"]]
        schedulers = resumed.get("schedulers") or [resumed.get("scheduler")]
        if len(optimizers) != len(optim.optimizers):
            raise ConfigError(
                f"{self.last_path}: holds {len(optimizers)} optimizer states, the "
                f"model has {len(optim.optimizers)} optimizers"
            )
        for optimizer, saved in zip(optim.optimizers, optimizers, strict=True):
            optimizer.load_state_dict(saved)
        for scheduler, saved in zip(optim.schedulers, schedulers, strict=True):
            if scheduler is not None and saved is not None:
                scheduler.load_state_dict(saved)
        if optim.scaler.is_enabled() and resumed["scaler"]:
            optim.scaler.load_state_dict(resumed["scaler"])

    def keep_best(self, model, metrics: dict, state: LoopState) -> None:
        """Save the model file if `monitor` is among the best k; drop the k+1-th."""
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
        no_better = full and sign * value >= sign * self.best[-1][0]
        if not math.isfinite(value) or no_better:
            return
        name = f"{exp.name}--{exp.monitor}={value:.4f}-step={state.step}.nemo"
        path = self.folder / name
        if self.env.is_main:
            model.save_to(path)
        self.best = sorted(self.best + [(value, str(path))], key=lambda b: sign * b[0])
        for _, old in self.best[exp.save_top_k :]:
            if self.env.is_main and old != str(path):
                Path(old).unlink(missing_ok=True)
        self.best = self.best[: exp.save_top_k]

    def export(self, model, path: Path) -> Path:
        """The final model file (rank 0 writes; every rank waits for it)."""
        if self.env.is_main:
            model.save_to(path)
        distributed.barrier(self.env)
        return path
