"""Start training from another model file's weights (NeMo's `init_from_nemo_model`).

Transfer learning the NeMo way: the config's top-level key names a model file, and the
parameters whose names contain one of `include` (and none of `exclude`) are copied into
the new model before the first step, as NeMo's `maybe_init_from_pretrained_checkpoint`
does (substring match on the parameter name). The typical use: an attention
encoder-decoder or a new-vocabulary model whose encoder starts from a trained CTC model,

    init_from_nemo_model:
      path: experiments/conformer_ctc_tiny/conformer_ctc_tiny.nemo
      include: [encoder.]

A plain string is the path with everything included. Every copied tensor must exist in
the new model with the same shape; the error names the first ones that do not. A run
that resumes from its own `last.ckpt` overwrites these weights with its own.
"""

from __future__ import annotations

from typing import Any

import torch

from minispeech.core.checkpoint import CheckpointError, read_checkpoint
from minispeech.core.config import ConfigError

KEYS = ("path", "include", "exclude")


def parse_spec(spec: Any) -> tuple[str, list[str], list[str]]:
    """`init_from_nemo_model` (a path, or {path, include, exclude}) -> its parts."""
    if isinstance(spec, str):
        spec = {"path": spec}
    if not isinstance(spec, dict) or not isinstance(spec.get("path"), str):
        raise ConfigError(
            "init_from_nemo_model: give a model file path, or {path, include, exclude}"
        )
    unknown = sorted(set(spec) - set(KEYS))
    if unknown:
        raise ConfigError(f"init_from_nemo_model: unknown keys {unknown}; known {KEYS}")
    lists = []
    for name, default in (("include", [""]), ("exclude", [])):
        value = spec.get(name, default)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"init_from_nemo_model.{name}: a list of name parts")
        lists.append(value)
    return spec["path"], lists[0], lists[1]


def select(state_dict: dict, include: list[str], exclude: list[str]) -> dict:
    """The entries whose name contains an `include` part and no `exclude` part."""
    return {
        name: tensor
        for name, tensor in state_dict.items()
        if any(part in name for part in include)
        and not any(part in name for part in exclude)
    }


def init_from_nemo_model(model: torch.nn.Module, spec: Any) -> dict:
    """Copy the selected weights of a model file into `model` (in place).

    Returns the copied state dict (name -> tensor). Raises ConfigError when nothing is
    selected, and CheckpointError naming the tensors the model lacks or shapes
    differently."""
    path, include, exclude = parse_spec(spec)
    source = read_checkpoint(path).state_dict
    chosen = select(source, include, exclude)
    if not chosen:
        raise ConfigError(
            f"init_from_nemo_model: {path}: no weight name contains any of {include} "
            f"(without {exclude}); some names: {sorted(source)[:5]}"
        )
    own = model.state_dict()
    bad = [name for name in chosen if name not in own] + [
        f"{name}: file {tuple(chosen[name].shape)} vs model {tuple(own[name].shape)}"
        for name in chosen
        if name in own and chosen[name].shape != own[name].shape
    ]
    if bad:  # checked before anything is copied: the model stays as it was
        more = " ..." if len(bad) > 10 else ""
        raise CheckpointError(
            f"init_from_nemo_model: {path}: {len(bad)} selected weights do not fit "
            f"{type(model).__name__} (no such name, or another shape): "
            f"{', '.join(bad[:10])}{more}"
        )
    model.load_state_dict(chosen, strict=False)
    return chosen
