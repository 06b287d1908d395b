"""Options of the loop: the `trainer:` and `exp_manager:` config sections.

Frozen dataclasses with one comment per field; the names follow PyTorch Lightning and
NeMo's exp_manager where they exist (`max_steps`, `accumulate_grad_batches`,
`gradient_clip_val`, `val_check_interval`, `limit_val_batches`, `resume_if_exists`,
`save_top_k`); the checkpoint options are flat here. An unknown key is an error naming
the valid ones, and values are checked when read: counts must be >= 1, sizes and rates
>= 0 or > 0, each error naming the field and the value (`trainer.max_steps: must be
>= 1, got -5`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from minispeech.core.config import ConfigError, check_keys

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
    check_keys(section, values, [f.name for f in dataclasses.fields(cls)])
    return cls(**values)


def _check_number(section, name, value, low, *, integer=True, strict=False) -> None:
    """`value` must be an int (any number unless `integer`) >= `low` (> `low` if
    `strict`); else a ConfigError like `trainer.max_steps: must be >= 1, got -5`."""
    kinds = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        what = "an integer" if integer else "a number"
        raise ConfigError(f"{section}.{name}: must be {what}, got {value!r}")
    if not (value > low if strict else value >= low):  # NaN fails both
        bound = f"> {low}" if strict else f">= {low}"
        raise ConfigError(f"{section}.{name}: must be {bound}, got {value!r}")


def _no_limit(value):
    """None and -1 (Lightning's spelling) mean "no limit"."""
    return None if value in (None, -1) else value


@dataclass(frozen=True)
class TrainerOptions:
    # python, numpy and torch are seeded with it on every rank
    seed: int = 1234
    # auto (GPU if present), cpu or gpu
    accelerator: str = "auto"
    # 32, bf16-mixed or 16-mixed (autocast; 16-mixed adds a GradScaler)
    precision: str = "32"
    # optimizer steps; None or -1: no limit
    max_steps: int | None = None
    # passes over the training set; None or -1: no limit
    max_epochs: int | None = None
    # seconds, or "DD:HH:MM:SS" as in Lightning; None: no limit
    max_time: float | str | None = None
    # micro-batches per optimizer step
    accumulate_grad_batches: int = 1
    # max global gradient norm; 0 disables clipping
    gradient_clip_val: float = 0.0
    # int: every N steps; float: a fraction of an epoch (>= 1.0: each epoch)
    val_check_interval: float | int = 1.0
    # validation batches per rank: int, the first N; float, that fraction (1.0: all)
    limit_val_batches: float | int = 1.0
    # a training record in metrics.jsonl every N steps
    log_every_n_steps: int = 10
    # tqdm on rank 0
    enable_progress_bar: bool = True
    # abort after this many non-finite losses in a row
    max_consecutive_nonfinite: int = 10

    @classmethod
    def from_dict(cls, values: dict | None) -> "TrainerOptions":
        """The `trainer:` section, checked; a bad value is named with its field."""
        opts = _from_dict(cls, values, "trainer")
        precision = PRECISIONS.get(str(opts.precision))
        if precision is None:
            raise ConfigError(
                "trainer.precision: use 32, bf16-mixed or 16-mixed, "
                f"got {opts.precision!r}"
            )
        opts = dataclasses.replace(
            opts,
            precision=precision,
            max_steps=_no_limit(opts.max_steps),
            max_epochs=_no_limit(opts.max_epochs),
            max_time=_seconds(opts.max_time),
            limit_val_batches=1.0  # None: Lightning's default, every batch
            if opts.limit_val_batches is None
            else opts.limit_val_batches,
        )
        opts.check()
        return opts

    def check(self) -> None:
        """Counts >= 1 (seed >= 0), sizes and rates > 0 or >= 0 as the field says."""
        if self.max_steps is None and self.max_epochs is None:
            raise ConfigError("trainer: set max_steps or max_epochs (or both)")
        minimums = {
            "seed": 0,
            "max_steps": 1,
            "max_epochs": 1,
            "accumulate_grad_batches": 1,
            "log_every_n_steps": 1,
            "max_consecutive_nonfinite": 1,
        }
        for name, low in minimums.items():
            if getattr(self, name) is not None:
                _check_number("trainer", name, getattr(self, name), low)
        # True: must be > 0; False: >= 0
        rates = {
            "max_time": True,
            "val_check_interval": True,
            "limit_val_batches": True,
            "gradient_clip_val": False,
        }
        for name, strict in rates.items():
            value = getattr(self, name)
            if value is not None:
                _check_number("trainer", name, value, 0, integer=False, strict=strict)
        if isinstance(self.limit_val_batches, float) and self.limit_val_batches > 1:
            raise ConfigError(
                "trainer.limit_val_batches: a fraction must be <= 1.0 (an int counts "
                f"batches), got {self.limit_val_batches!r}"
            )

    def val_batches(self, n_batches: int) -> int:
        """How many of a validation loader's `n_batches` to run (at least one)."""
        limit = self.limit_val_batches
        if isinstance(limit, int):
            return min(limit, n_batches)
        return max(1, int(limit * n_batches))

    def val_every_steps(self, steps_per_epoch: int) -> int | None:
        """Steps between validations, or None for "at the end of each epoch"."""
        interval = self.val_check_interval
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
            f"trainer.max_time: seconds or DD:HH:MM:SS, got {max_time!r}"
        ) from None
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


@dataclass(frozen=True)
class ExpOptions:
    # runs live in exp_dir/name
    exp_dir: str = "experiments"
    # also the exported model's file name: name.nemo
    name: str = "run"
    # continue from exp_dir/name/checkpoints/last.ckpt
    resume_if_exists: bool = True
    # write last.ckpt this often (0: only at the end)
    every_n_train_steps: int = 100
    # validation metric that ranks the best-k model files
    monitor: str = "val_loss"
    # min or max
    mode: str = "min"
    # best model files kept (0: none)
    save_top_k: int = 1

    @classmethod
    def from_dict(cls, values: dict | None) -> "ExpOptions":
        """The `exp_manager:` section, checked; a bad value is named with its field."""
        opts = _from_dict(cls, values, "exp_manager")
        if opts.mode not in ("min", "max"):
            raise ConfigError(f"exp_manager.mode: use min or max, got {opts.mode!r}")
        for name in ("every_n_train_steps", "save_top_k"):
            _check_number("exp_manager", name, getattr(opts, name), 0)
        for name in ("exp_dir", "name", "monitor"):
            value = getattr(opts, name)
            if not isinstance(value, str) or not value:
                message = (
                    f"exp_manager.{name}: must be a non-empty string, got {value!r}"
                )
                raise ConfigError(message)
        return opts
