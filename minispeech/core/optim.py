"""Optimizers and learning-rate schedules built from a model's `optim:` config section.

    optim: {name: adamw, lr: 0.001, betas: [0.9, 0.98], weight_decay: 0.001,
            sched: {name: CosineAnnealing, warmup_steps: 100, min_lr: 1.0e-6}}

Schedules are multiplicative factors for `torch.optim.lr_scheduler.LambdaLR`, stepped
once per optimizer step; `s` below is the number of optimizer steps already taken (0
first).
- CosineAnnealing: linear warmup to the base lr over `warmup_steps`, then half a cosine
  down to `min_lr` at `max_steps` (Loshchilov & Hutter 2017, "SGDR", arXiv:1608.03983,
  Eq. 5, one cycle, no restarts): lr = min_lr + (lr0 - min_lr) (1 + cos(pi p)) / 2.
- NoamAnnealing: Vaswani et al. 2017, "Attention Is All You Need", arXiv:1706.03762,
  Sec. 5.3, Eq. 3: lr = lr0 * d_model^-0.5 * min(n^-0.5, n * warmup^-1.5), n = s + 1.
  lr0 is a plain scale here (NeMo's convention), floored at `min_lr`.
- InverseSquareRootAnnealing: the same shape normalised to peak at lr0 (fairseq's
  `inverse_sqrt`, Ott et al. 2019, arXiv:1904.01038): linear warmup, then
  lr = lr0 * sqrt(warmup / n), floored at `min_lr`.
The warmup ramp is (s + 1) / warmup_steps, so the last warmup step uses the base lr;
`warmup_ratio` (a fraction of `max_steps`) may replace `warmup_steps`.

Adam and AdamW run their fused kernels by default where torch has them for every
parameter's device (CPU from torch 2.4, CUDA): the same update in one pass per tensor
(on the CPU 14 ms instead of 39 ms a step for the 13 M-parameter Conformer-CTC small).
`fused: false` or `foreach: ...` in the config chooses torch's other implementations.
"""

from __future__ import annotations

import math
from typing import Iterable

import torch

from minispeech.core.config import ConfigError, check_arguments

OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
}


def build_optimizer(params: Iterable, optim_cfg: dict) -> torch.optim.Optimizer:
    """`{name: adamw, lr: ..., ...}` -> the torch optimizer (other keys: its args)."""
    cfg = dict(optim_cfg)
    name = str(cfg.pop("name", "adamw")).lower()
    if name not in OPTIMIZERS:
        raise ConfigError(
            f"optim.name {name!r} unknown; choose one of {sorted(OPTIMIZERS)}"
        )
    if "betas" in cfg:
        cfg["betas"] = tuple(cfg["betas"])  # YAML lists; torch wants a tuple
    check_arguments(OPTIMIZERS[name], {"params": None, **cfg}, name=f"optim ({name})")
    params = list(params)
    if name in ("adam", "adamw") and not {"fused", "foreach"} & set(cfg):
        cfg["fused"] = fused_supported(params)
    return OPTIMIZERS[name](params, **cfg)


def fused_supported(params: list) -> bool:
    """Whether torch has a fused Adam kernel for every parameter (or param group's
    parameters): floating point, on CUDA, or on the CPU from torch 2.4."""
    tensors = [t for p in params for t in (p["params"] if isinstance(p, dict) else [p])]
    cpu_ok = tuple(int(v) for v in torch.__version__.split(".")[:2]) >= (2, 4)
    devices = {"cuda", "cpu"} if cpu_ok else {"cuda"}
    return bool(tensors) and all(
        torch.is_tensor(t) and t.is_floating_point() and t.device.type in devices
        for t in tensors
    )


class WarmupCosine:
    """Factor for LambdaLR: linear warmup, then cosine from 1 down to min_lr / lr0."""

    def __init__(
        self, base_lr: float, max_steps: int, warmup_steps: int = 0, min_lr: float = 0.0
    ):
        self.base_lr, self.max_steps = base_lr, max_steps
        self.warmup_steps, self.min_lr = warmup_steps, min_lr

    def __call__(self, s: int) -> float:
        # 1) linear warmup: lr0 reached at s = warmup_steps - 1
        if s < self.warmup_steps:
            return (s + 1) / self.warmup_steps
        decay_steps = max(1, self.max_steps - self.warmup_steps)
        p = min(1.0, (s - self.warmup_steps) / decay_steps)  # 2) progress in [0, 1]
        # 3) half a cosine from lr0 down to min_lr, as a factor of lr0
        decay = (self.base_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * p))
        return (self.min_lr + decay) / self.base_lr


class Noam:
    """Vaswani et al. 2017, Eq. 3: d_model^-0.5 min(n^-0.5, n warmup^-1.5), n = s+1."""

    def __init__(
        self, base_lr: float, d_model: int, warmup_steps: int, min_lr: float = 0.0
    ):
        self.base_lr, self.d_model = base_lr, d_model
        self.warmup_steps, self.min_lr = warmup_steps, min_lr

    def __call__(self, s: int) -> float:
        n = s + 1
        scale = self.d_model**-0.5 * min(n**-0.5, n * self.warmup_steps**-1.5)
        return max(scale, self.min_lr / self.base_lr)


class InverseSquareRoot:
    """Linear warmup to lr0, then lr0 * sqrt(warmup / n) (fairseq's inverse_sqrt)."""

    def __init__(self, base_lr: float, warmup_steps: int, min_lr: float = 0.0):
        self.base_lr, self.warmup_steps, self.min_lr = base_lr, warmup_steps, min_lr

    def __call__(self, s: int) -> float:
        n = s + 1
        if n < self.warmup_steps:
            return n / self.warmup_steps
        return max(math.sqrt(self.warmup_steps / n), self.min_lr / self.base_lr)


SCHEDULES = {
    "cosineannealing": WarmupCosine,
    "cosine": WarmupCosine,
    "noamannealing": Noam,
    "noam": Noam,
    "inversesquarerootannealing": InverseSquareRoot,
    "inverse_sqrt": InverseSquareRoot,
}


def build_scheduler(
    optimizer: torch.optim.Optimizer, sched_cfg: dict | None, max_steps: int
):
    """LambdaLR for the `sched` section (None: constant lr), one factor per group."""
    if not sched_cfg:
        return None
    cfg = dict(sched_cfg)
    name = str(cfg.pop("name", "")).lower()
    if name not in SCHEDULES:
        raise ConfigError(
            f"optim.sched.name {name!r} unknown; choose one of {sorted(SCHEDULES)}"
        )
    if "warmup_ratio" in cfg:  # NeMo's alternative to warmup_steps
        cfg["warmup_steps"] = int(round(cfg.pop("warmup_ratio") * max_steps))
    cls = SCHEDULES[name]
    if cls is WarmupCosine:
        cfg["max_steps"] = cfg.get("max_steps") or max_steps
    check_arguments(cls, {"base_lr": None, **cfg}, name=f"optim.sched ({name})")
    factors = [cls(base_lr=group["lr"], **cfg) for group in optimizer.param_groups]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factors)
