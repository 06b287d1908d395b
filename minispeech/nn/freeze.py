"""Freezing parameters by name: shell-style (fnmatch) patterns over qualified names.

"encoder.*" matches every encoder parameter ("*" also crosses dots), and
"encoder.layers.0.*" one layer of it. A frozen parameter gets requires_grad=False:
backpropagation stops below the lowest trained one (a frozen encoder costs its forward
pass only) and the optimizer never moves it. Batch-norm running statistics are buffers,
not parameters: they still follow the data in training mode.
"""

from fnmatch import fnmatch

from torch import nn


def unmatched(patterns: list[str], names: list[str]) -> list[str]:
    """The patterns that match none of `names`."""
    return [p for p in patterns if not any(fnmatch(n, p) for n in names)]


def freeze(module: nn.Module, patterns: list[str]) -> list[str]:
    """requires_grad=False on every parameter whose qualified name matches a pattern.

    Returns the frozen names; ValueError naming each pattern that matches nothing.
    """
    if isinstance(patterns, str):
        raise TypeError(f"patterns must be a list of strings, got {patterns!r}")
    params = dict(module.named_parameters(remove_duplicate=False))  # tied: all names
    missing = unmatched(patterns, list(params))
    if missing:
        some = list(params)[:8]
        raise ValueError(f"freeze patterns {missing} match no parameter; some: {some}")
    frozen = [n for n in params if any(fnmatch(n, p) for p in patterns)]
    for name in frozen:
        params[name].requires_grad_(False)
    return frozen
