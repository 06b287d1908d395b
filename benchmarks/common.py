"""Shared by the benchmarks: the recipe of each model family, the median wall time of
functions taking turns, and a profile of a Conformer train step by module group.

A benchmark runs as a script, `python benchmarks/NAME.py`, so `from common import ...`
finds this file beside it.
"""

import statistics
import time
from pathlib import Path
from typing import Callable

from torch.profiler import record_function

REPO = Path(__file__).resolve().parents[1]
RECIPES = {  # model family -> its recipe, relative to REPO
    "ctc": "configs/asr/conformer_ctc_tiny.yaml",
    "ctc_small": "configs/asr/conformer_ctc_small.yaml",
    "rnnt": "configs/asr/fastconformer_transducer_tiny.yaml",
    "tdt": "configs/asr/fastconformer_tdt_tiny.yaml",
    "aed": "configs/asr/fastconformer_aed_tiny.yaml",
    "titanet": "configs/speaker/titanet_tiny.yaml",
    "vad": "configs/diarization/marblenet_vad_tiny.yaml",
    "masking": "configs/enhancement/masking_tiny.yaml",
    "fastpitch": "configs/tts/fastpitch_tiny.yaml",
    "hifigan": "configs/tts/hifigan_tiny.yaml",
    "lm": "configs/speechlm/lm_tiny.yaml",
}


def median_ms(
    fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1
) -> dict[str, float]:
    """Median wall time in ms of each function, over `repeats` rounds.

    The functions take turns within each round, so load on a shared machine slows all
    of them alike. The first `warmup` rounds (allocations, FFT plans, optimizer state)
    are timed but dropped.
    """
    times = {name: [] for name in fns}
    for _ in range(warmup + repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: 1e3 * statistics.median(t[warmup:]) for name, t in times.items()}


# ------------------------------------------- profiling a Conformer by module group
SUBSAMPLING, ATTENTION = "subsampling", "attention (+ norm, rel. positions)"
CONV, FEED_FORWARD = "convolution module (+ norm)", "feed-forward (+ norms)"
RESIDUALS, ENGINE = "residuals, dropout, out norm", "autograd engine"
LAYER_GROUPS = {  # a ConformerLayer's child -> group; the rest of the layer: residuals
    **dict.fromkeys(("norm_self_att", "self_attn"), ATTENTION),
    **dict.fromkeys(("norm_conv", "conv"), CONV),
    **dict.fromkeys(
        ("norm_feed_forward1", "feed_forward1", "norm_feed_forward2", "feed_forward2"),
        FEED_FORWARD,
    ),
}


def conformer_group(name: str, prefix: str = "") -> str | None:
    """The group of a ConformerEncoder's submodule `name` found under `prefix`, or
    None for a module that belongs to its parent's group."""
    if not name.startswith(prefix):
        return None
    parts = name[len(prefix) :].split(".")
    if parts == ["pre_encode"]:
        return SUBSAMPLING
    if parts == ["pos_enc"]:
        return ATTENTION
    if parts[0] == "layers" and len(parts) == 2:  # the layer itself
        return RESIDUALS
    if parts[0] == "layers" and len(parts) == 3:
        return LAYER_GROUPS.get(parts[2])
    return None


def add_scopes(model, group_of: Callable[[str], str | None]) -> list:
    """Forward hooks that open a record_function named after each module's group
    (only in the benchmarks; the package has no hooks). Returns the hook handles."""
    handles, stack = [], []

    def enter(label):
        def pre_hook(module, inputs):
            stack.append(record_function("group::" + label))
            stack[-1].__enter__()

        return pre_hook

    def leave(module, inputs, output):
        stack.pop().__exit__(None, None, None)

    for name, module in model.named_modules():
        if (label := group_of(name)) is not None:
            handles.append(module.register_forward_pre_hook(enter(label)))
            handles.append(module.register_forward_hook(leave))
    return handles


def innermost_group(event) -> str | None:
    parent = event.cpu_parent
    while parent is not None and not parent.name.startswith("group::"):
        parent = parent.cpu_parent
    return parent.name[len("group::") :] if parent is not None else None


def breakdown(events) -> dict:
    """Group -> [forward ms, backward ms] from profiler events of a step run with
    `add_scopes`. Forward: each group's scope time less the scopes nested in it.
    Backward: each autograd node's time goes to the group whose forward op made it
    (the profiler gives both the same sequence number; an op that makes no node
    records the next node's number, so the last op to carry a number, in start
    order, is the one that made it)."""
    table, seq_group = {}, {}
    for e in sorted(events, key=lambda e: e.time_range.start):
        ms = e.time_range.elapsed_us() / 1e3
        if e.name.startswith("group::"):
            table.setdefault(e.name[len("group::") :], [0.0, 0.0])[0] += ms
            if (outer := innermost_group(e)) is not None:
                table.setdefault(outer, [0.0, 0.0])[0] -= ms
        elif e.name.startswith("autograd::engine::evaluate_function"):
            group = seq_group.get(e.sequence_nr, ENGINE)
            table.setdefault(group, [0.0, 0.0])[1] += ms
        elif e.sequence_nr >= 0 and (group := innermost_group(e)) is not None:
            seq_group[e.sequence_nr] = group
    return table
