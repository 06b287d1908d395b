"""Options of the loop: the `trainer:` and `exp_manager:` config sections.

Frozen dataclasses with one comment per field; the names follow PyTorch Lightning and
NeMo's exp_manager where they exist (`max_steps`, `accumulate_grad_batches`,
`gradient_clip_val`, `val_check_interval`, `resume_if_exists`, `save_top_k`); the
checkpoint options are flat here. An unknown key is an error naming the valid ones.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass

from minispeech.core.config import ConfigError

PRECISIONS = {
    "32": "32",
    "32-true": "32",
    "bf16-mixed": "bf16-mixed",
    "bf16": "bf16-mixed",
    "16-mixed": "16-mixed",
    "16": "16-mixed",
}


def _from_dict(cls, values: dict | None, section: str):
    """Build an options dataclass; an unknown key is named with the valid keys."""
    values = dict(values or {})
    names = [f.name for f in dataclasses.fields(cls)]
    for key in values:
        if key not in names:
            near = difflib.get_close_matches(key, names, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ConfigError(
                f"{section}.{key}: unknown key{hint}; valid: {', '.join(names)}"
            )
    return cls(**values)


@dataclass(frozen=True)
class TrainerOptions:
    seed: int = 1234  # python, numpy and torch are seeded with it on every rank
    accelerator: str = "auto"  # auto (GPU if present), cpu or gpu
    precision: str = (
        "32"  # 32, bf16-mixed or 16-mixed (autocast; fp16 adds a GradScaler)
    )
    max_steps: int | None = None  # optimizer steps; None or -1: no limit
    max_epochs: int | None = None  # passes over the training set; None: no limit
    max_time: float | str | None = None  # seconds, or "DD:HH:MM:SS" as in Lightning
    accumulate_grad_batches: int = 1  # micro-batches per optimizer step
    gradient_clip_val: float = 0.0  # max global gradient norm; 0 disables clipping
    val_check_interval: float | int = (
        1.0  # int: every N steps; float: fraction of an epoch
    )
    log_every_n_steps: int = 10  # training records in metrics.jsonl
    enable_progress_bar: bool = True  # tqdm on rank 0
    max_consecutive_nonfinite: int = (
        10  # abort after this many non-finite losses in a row
    )

    @classmethod
    def from_dict(cls, values: dict | None) -> "TrainerOptions":
        opts = _from_dict(cls, values, "trainer")
        precision = PRECISIONS.get(str(opts.precision))
        if precision is None:
            raise ConfigError(
                f"trainer.precision {opts.precision!r}: use 32, bf16-mixed or 16-mixed"
            )
        max_steps = None if opts.max_steps in (None, -1) else int(opts.max_steps)
        if max_steps is None and opts.max_epochs is None:
            raise ConfigError("trainer: set max_steps or max_epochs (or both)")
        if opts.accumulate_grad_batches < 1 or opts.log_every_n_steps < 1:
            raise ConfigError(
                "trainer: accumulate_grad_batches and log_every_n_steps must be >= 1"
            )
        return dataclasses.replace(
            opts,
            precision=precision,
            max_steps=max_steps,
            max_time=_seconds(opts.max_time),
        )

    def val_every_steps(self, steps_per_epoch: int) -> int | None:
        """Steps between validations, or None for "at the end of each epoch"."""
        interval = self.val_check_interval
        if (
            isinstance(interval, bool)
            or not isinstance(interval, (int, float))
            or interval <= 0
        ):
            raise ConfigError(
                f"trainer.val_check_interval {interval!r}: a positive number"
            )
        if isinstance(interval, int):
            return interval
        if interval >= 1.0:
            return None
        return max(1, int(interval * steps_per_epoch))


def _seconds(max_time) -> float | None:
    if max_time is None or isinstance(max_time, (int, float)):
        return max_time
    try:
        days, hours, minutes, seconds = (float(x) for x in str(max_time).split(":"))
    except ValueError:
        raise ConfigError(
            f"trainer.max_time {max_time!r}: seconds or DD:HH:MM:SS"
        ) from None
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


@dataclass(frozen=True)
class ExpOptions:
    exp_dir: str = "experiments"  # runs live in exp_dir/name
    name: str = "run"  # also the exported model's file name: name.nemo
    resume_if_exists: bool = True  # continue from exp_dir/name/checkpoints/last.ckpt
    every_n_train_steps: int = 100  # write last.ckpt this often (0: only at the end)
    monitor: str = "val_loss"  # validation metric that ranks the best-k model files
    mode: str = "min"  # min or max
    save_top_k: int = 1  # best model files kept (0: none)

    @classmethod
    def from_dict(cls, values: dict | None) -> "ExpOptions":
        opts = _from_dict(cls, values, "exp_manager")
        if opts.mode not in ("min", "max"):
            raise ConfigError(f"exp_manager.mode {opts.mode!r}: use min or max")
        return opts
