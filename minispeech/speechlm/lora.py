"""LoRA adapters on linear layers and their merge (freezing by name: nn/freeze.py).

Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models", arXiv:2106.09685,
Sec. 4.1, Eq. 3: h = W0 x + Delta W x = W0 x + B A x, with W0 (d_out, d_in) frozen,
A (r, d_in) random Gaussian, B (d_out, r) zero (so training starts from the base
model), and Delta W x scaled by alpha / r. Dropout on the input of the LoRA branch
follows the authors' loralib. `merge_lora` folds W0 + (alpha / r) B A into one
nn.Linear for inference (their Sec. 4.1: "no additional inference latency").

Differences from the paper: A ~ N(0, 1 / d_in), so A x keeps the scale of x (the paper
does not give the variance; loralib uses a Kaiming-uniform A). `LoRALinear` keeps the
base layer's `weight` and `bias` under their own names, so the state-dict keys of the
base model do not change (a checkpoint of the base loads with strict=False, missing
only `lora_A` and `lora_B`).

Patterns are shell-style (fnmatch) over qualified names, e.g.
"lm.layers.*.self_attn.linear_q"; `*` also crosses dots.
"""

import math
from fnmatch import fnmatch

import torch
import torch.nn.functional as F
from torch import nn

from minispeech.nn.dropout import Dropout
from minispeech.nn.freeze import unmatched


class LoRALinear(nn.Module):
    """W0 x + b + (alpha / r) B A dropout(x): (..., d_in) -> (..., d_out). Hu Eq. 3."""

    def __init__(
        self, base: nn.Linear, rank: int = 8, alpha: float = 16.0, dropout: float = 0.0
    ):
        super().__init__()
        if rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {rank}")
        self.in_features, self.out_features = base.in_features, base.out_features
        self.rank, self.alpha = rank, alpha
        self.scaling = alpha / rank  # alpha / r
        # W0 and its bias, frozen; the same Parameter objects (ties survive)
        self.weight = base.weight  # (d_out, d_in)
        self.bias = base.bias  # (d_out,) or None
        self.weight.requires_grad_(False)
        if self.bias is not None:
            self.bias.requires_grad_(False)
        factory = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.lora_A = nn.Parameter(torch.empty(rank, self.in_features, **factory))
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, rank, **factory))
        nn.init.normal_(self.lora_A, std=1.0 / math.sqrt(self.in_features))
        self.lora_dropout = Dropout(dropout)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"rank={self.rank}, alpha={self.alpha}"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = F.linear(x, self.weight, self.bias)  # W0 x + b, (..., d_out)
        a_x = F.linear(self.lora_dropout(x), self.lora_A)  # A x, (..., r)
        return base + self.scaling * F.linear(a_x, self.lora_B)  # + (alpha/r) B A x

    def merged_weight(self) -> torch.Tensor:
        """W0 + (alpha / r) B A: (d_out, d_in)."""
        return self.weight + self.scaling * (self.lora_B @ self.lora_A)


def _replace(module: nn.Module, name: str, new: nn.Module) -> None:
    """Put `new` at the qualified `name` inside `module`."""
    parent_name, _, child = name.rpartition(".")
    parent = module.get_submodule(parent_name) if parent_name else module
    setattr(parent, child, new)


def add_lora(
    module: nn.Module,
    patterns: list[str],
    rank: int = 8,
    alpha: float = 16.0,
    dropout: float = 0.0,
) -> list[str]:
    """Wrap every nn.Linear whose qualified name matches a pattern in a LoRALinear.

    In place; returns the names replaced. Each pattern must match at least one
    nn.Linear, else ValueError naming it. The new lora_A / lora_B are trainable and the
    wrapped weights frozen; other parameters keep their requires_grad.
    """
    if isinstance(patterns, str):
        raise TypeError(f"patterns must be a list of strings, got {patterns!r}")
    linears = [n for n, m in module.named_modules() if type(m) is nn.Linear and n]
    missing = unmatched(patterns, linears)
    if missing:
        raise ValueError(
            f"LoRA patterns {missing} match no nn.Linear; some names: {linears[:8]}"
        )
    names = [n for n in linears if any(fnmatch(n, p) for p in patterns)]
    for name in names:
        base = module.get_submodule(name)
        _replace(module, name, LoRALinear(base, rank, alpha, dropout))
    return names


def merge_lora(module: nn.Module) -> nn.Module:
    """Replace each LoRALinear by an nn.Linear of weight W0 + (alpha/r) B A (in place).

    Returns `module`, or the merged nn.Linear when `module` itself is a LoRALinear. The
    merged layers' parameters are frozen, as the base weights were.
    """
    if isinstance(module, LoRALinear):
        return _merged_linear(module)
    names = [n for n, m in module.named_modules() if isinstance(m, LoRALinear)]
    for name in names:
        _replace(module, name, _merged_linear(module.get_submodule(name)))
    return module


def _merged_linear(lora: LoRALinear) -> nn.Linear:
    has_bias = lora.bias is not None
    w = lora.weight
    linear = nn.Linear(
        lora.in_features, lora.out_features, has_bias, device=w.device, dtype=w.dtype
    )
    with torch.no_grad():
        linear.weight.copy_(lora.merged_weight())
        if has_bias:
            linear.bias.copy_(lora.bias)
    return linear.requires_grad_(False)
