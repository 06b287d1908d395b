"""NeMo and minispeech timed in the same run, on the same shapes and the same inputs.

Each benchmark builds both models (benchmarks/nemo_shapes.py: NeMo's weights copied into
minispeech, so the architectures are proven equal), then calls NeMo and minispeech in
turn, A B A B ..., so that load from other processes hits both alike. It prints the
median of each side, the ratio minispeech / NeMo (below 1: minispeech is faster) and the
1-minute load average before and after. Without NeMo it says so and times minispeech
alone. Nothing here is a number measured elsewhere.

- train_ctc: Conformer-CTC small (13.0 M), batch 8 x 4 s, SpecAugment on, AdamW as
  each toolkit builds it from `optim: adamw` (NeMo: torch's default; minispeech: the
  fused kernel); a step is forward, loss, backward, optimizer step.
- train_rnnt: FastConformer-Transducer small (13.6 M), same batch, RNN-T loss.
- train_titanet, train_masking, train_fastpitch, train_hifigan: the speaker,
  enhancement, TTS and vocoder recipes' models and batches
  (benchmarks/nemo_task_shapes.py), the same step.
- infer: real-time factor (compute time / audio time) of greedy transcription, eval
  mode, no_grad, batch 1 and 16, for each family.
- profile: one minispeech Conformer-CTC train step by module (torch.profiler).

    bash benchmarks/nemo_env.sh            # once: NeMo + minispeech in one venv
    benchmarks/out/nemo-venv/bin/python benchmarks/side_by_side.py [--steps 10]
    python benchmarks/side_by_side.py --quick --only train_ctc   # 2 steps, smoke test

Expected: about 9 minutes on 2 CPU cores with the defaults (10 steps; 4 for the
HiFi-GAN step, 10-16 s each); the --quick run takes about 2.5 minutes. NeMo's
default RNN-T loss on CPU (warprnnt_numba) is most of NeMo's transducer step.
"""

import argparse
import os
import time
import warnings
from functools import partial
from importlib.metadata import version

import nemo_shapes as shapes
import nemo_task_shapes as tasks
import torch
from common import ENGINE, add_scopes, breakdown, conformer_group, median_ms
from torch.profiler import ProfilerActivity, profile, record_function

TASKS = tuple(f"train_{name}" for name in tasks.TASKS)
BENCHMARKS = ("train_ctc", "train_rnnt", *TASKS, "infer", "profile")
N_VOCAB = 28  # the recipes' characters; blank is index 28
N_LABELS = 48  # 12 characters per second of the 4 s audio
GAN_STEPS = 4  # a HiFi-GAN step with the paper's discriminators takes 10-16 s
LABELS = {"ctc": "Conformer-CTC small", "rnnt": "FastConformer-RNNT small"}


def import_nemo():
    """NeMo's ASR model classes, or None when NeMo is not installed here."""
    try:
        from nemo.collections.asr import models
        from nemo.utils import logging
    except ImportError:
        return None
    logging.setLevel(logging.ERROR)
    print(f"NeMo {version('nemo_toolkit')} and minispeech, alternating step by step")
    return models


def load() -> float:
    return os.getloadavg()[0]


def report(rows: list, name: str, unit: str, times: dict, load_before: float) -> None:
    """Append a row to the summary table: time per side, ratio, load."""
    nemo, ours = times.get("NeMo"), times["minispeech"]
    ratio = f"{ours / nemo:.2f}" if nemo else "-"
    nemo_cell = f"{nemo:.3f}" if nemo else "not installed"
    rows.append(
        f"| {name:<45} | {unit:<7} | {nemo_cell:>13} | {ours:10.3f} | {ratio:>6} "
        f"| {load_before:4.2f} -> {load():4.2f} |"
    )


def bench_train(name: str, nemo_models, args, rows: list) -> None:
    label = LABELS[name]
    nemo, ours = shapes.build_pair(name, nemo_models)
    print(shapes.describe_params(label, nemo, ours))
    batch = shapes.make_batch(8, args.seconds, N_LABELS, N_VOCAB, seed=1)
    fns = {}
    if nemo is not None:
        fns["NeMo"] = shapes.train_step(
            nemo, lambda: shapes.nemo_loss(nemo, batch, name)
        )
    fns["minispeech"] = shapes.train_step(
        ours, lambda: ours.training_step(batch)["loss"], shapes.adamw(ours.parameters())
    )
    before = load()
    times = median_ms(fns, args.steps, warmup=args.warmup)
    seconds = {side: ms / 1e3 for side, ms in times.items()}
    report(
        rows, f"{label} train step, B8 x {args.seconds:g} s", "s/step", seconds, before
    )


def bench_task(name: str, nemo_models, args, rows: list) -> None:
    label = tasks.TASKS[name]
    nemo, ours = tasks.build_task_pair(name, nemo_models is not None)
    print(shapes.describe_params(label, nemo, ours))
    batch = tasks.task_batch(name, ours)
    fns = {}
    if nemo is not None:
        fns["NeMo"] = tasks.nemo_step(name, nemo, batch)
    fns["minispeech"] = tasks.ours_step(name, ours, batch)
    steps = min(args.steps, GAN_STEPS) if name == "hifigan" else args.steps
    before = load()
    times = median_ms(fns, steps, warmup=args.warmup)
    seconds = {side: ms / 1e3 for side, ms in times.items()}
    note = f" ({steps} steps)" if steps != args.steps else ""
    report(rows, f"{label} train step{note}", "s/step", seconds, before)


def bench_infer(nemo_models, args, rows: list) -> None:
    for name, label in LABELS.items():
        nemo, ours = shapes.build_pair(name, nemo_models)
        for model in filter(None, (nemo, ours)):
            model.eval()
        if name == "rnnt":
            probe = shapes.make_batch(4, args.seconds, N_LABELS, N_VOCAB, seed=3)
            rate = shapes.calibrate_blank(ours, nemo, probe)
            print(f"{label}: blank bias raised, greedy emits {rate:.2f} labels/frame")
        # batch 16 first: its passes leave both sides' allocator warm, so batch 1 is
        # timed in the steady state (a fresh process's first large allocations
        # page-fault, which costs the side with more intermediate copies more)
        for n in (16, 1):
            batch = shapes.make_batch(n, args.seconds, N_LABELS, N_VOCAB, seed=2)
            audio, lens = batch["audio"], batch["audio_lens"]
            fns = {}
            if nemo is not None:
                fns["NeMo"] = partial(shapes.nemo_transcribe, nemo, audio, lens, name)
            fns["minispeech"] = partial(ours.decode, audio, lens)
            with torch.no_grad():
                texts = {side: fn() for side, fn in fns.items()}
                before = load()
                times = median_ms(fns, args.steps, warmup=args.warmup)
            if nemo is not None:
                same = texts["NeMo"] == texts["minispeech"]
                print(f"{label} B{n}: same transcripts on both sides: {same}")
            rtf = {side: ms / 1e3 / (n * args.seconds) for side, ms in times.items()}
            report(
                rows, f"{label} greedy, B{n} x {args.seconds:g} s", "RTF", rtf, before
            )


# ---------------------------------------------------------------- profile
FRONT, LOSS = "front end (mel, SpecAugment)", "head, log-softmax, CTC loss"
OPTIM = "AdamW"
TOP_GROUPS = {"preprocessor": FRONT, "spec_augment": FRONT, "head": LOSS}


def group_of(name: str) -> str | None:
    """The profile group of a CTCModel's submodule `name` (None: its parent's)."""
    return TOP_GROUPS.get(name) or conformer_group(name, prefix="encoder.")


def profile_step(args) -> None:
    _, model = shapes.build_pair("ctc", None)
    batch = shapes.make_batch(8, args.seconds, N_LABELS, N_VOCAB, seed=1)
    optimizer = shapes.adamw(model.parameters())
    model.training_step(batch)["loss"].backward()  # warm-up: allocations, and
    optimizer.step()  # AdamW's state, so that the profiled step is a steady one
    optimizer.zero_grad(set_to_none=True)
    handles = add_scopes(model, group_of)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        with record_function("group::" + LOSS):  # what no module claims: the loss
            loss = model.training_step(batch)["loss"]
        with record_function("phase::backward"):
            loss.backward()
        with record_function("group::" + OPTIM):
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        wall_ms = (time.perf_counter() - start) * 1e3
    for handle in handles:
        handle.remove()
    table = breakdown(prof.events())
    backward_ms = sum(
        e.time_range.elapsed_us() / 1e3
        for e in prof.events()
        if e.name == "phase::backward"
    )
    engine = table.setdefault(ENGINE, [0.0, 0.0])
    engine[1] += backward_ms - sum(row[1] for row in table.values())  # between nodes
    print_profile(table, wall_ms)


def print_profile(table: dict, wall_ms: float) -> None:
    total = sum(sum(row) for row in table.values())
    print(
        "\nminispeech Conformer-CTC small, one train step by module (torch.profiler, "
        "CPU).\nMethod: forward hooks (benchmark only) open a record_function per "
        "module group;\nforward time = the group's scopes less the scopes nested in "
        "them; backward time =\neach autograd node's time, given to the group whose "
        "forward op made it (same\nsequence number). The profiler adds per-op "
        f"overhead: this step took {wall_ms:.0f} ms."
    )
    print(f"| {'group':<36} | fwd/step ms | backward ms | total ms |     % |")
    print(f"|{'-' * 38}|------------:|------------:|---------:|------:|")
    for group, (fwd, bwd) in sorted(table.items(), key=lambda kv: -sum(kv[1])):
        print(
            f"| {group:<36} | {fwd:11.1f} | {bwd:11.1f} | {fwd + bwd:8.1f} "
            f"| {100 * (fwd + bwd) / total:5.1f} |"
        )
    print(f"| {'sum':<36} |             |             | {total:8.1f} | 100.0 |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per side")
    parser.add_argument("--warmup", type=int, default=2, help="untimed first steps")
    parser.add_argument("--only", choices=BENCHMARKS, action="append")
    parser.add_argument("--quick", action="store_true", help="2 steps, 1 warm-up")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=4.0, help="utterance length")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.warmup = 2, 1
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    start_load, nemo_models = load(), import_nemo()
    if nemo_models is None:
        print(
            "NeMo is not installed in this Python: timing minispeech alone. For both, "
            "run\n  bash benchmarks/nemo_env.sh && "
            "benchmarks/out/nemo-venv/bin/python benchmarks/side_by_side.py"
        )
    print(
        f"torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} cores, "
        f"median of {args.steps} after {args.warmup} warm-up; load {start_load:.2f}"
    )
    rows, only = [], args.only or BENCHMARKS
    if "train_ctc" in only:
        bench_train("ctc", nemo_models, args, rows)
    if "train_rnnt" in only:
        bench_train("rnnt", nemo_models, args, rows)
    for name in tasks.TASKS:
        if f"train_{name}" in only:
            bench_task(name, nemo_models, args, rows)
    if "infer" in only:
        bench_infer(nemo_models, args, rows)
    if rows:
        print(
            f"\n| {'benchmark':<45} | unit    |          NeMo | minispeech |  ratio |"
            " load (1 min) |"
        )
        print(
            f"|{'-' * 47}|---------|--------------:|-----------:|-------:|"
            "--------------|"
        )
        print("\n".join(rows))
        print("ratio = minispeech / NeMo (below 1: minispeech is faster)")
    if "profile" in only:
        profile_step(args)
    print(f"load average (1, 5, 15 min) at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
