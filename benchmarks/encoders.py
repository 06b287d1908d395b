"""Conformer vs FastConformer: forward+backward time at equal width and depth, on CPU.

Rekesh et al. 2023, "Fast Conformer", arXiv:2305.05084, report FastConformer about 2.8x
faster than Conformer (8x depthwise-separable subsampling, 256 channels, kernel 9, vs 4x
striding, kernel 31). This script times one training step (forward, sum of outputs,
backward) of minispeech's `ConformerEncoder` in both configurations on a batch of 10 s
utterances (100 feature frames per second, 80 mels), and prints parameter counts of the
shapes the recipes use.

Then it explains the speed-up by module group: forward FLOPs counted by
torch.utils.flop_counter (a train step is about 3x the forward), and the time of one
forward + backward by group from torch.profiler (the same grouping as
side_by_side.py's profile). Where a group's time shrinks less than its FLOPs, the
group runs at fewer FLOP/s in the FastConformer; the summary names those groups and
prints the FLOP ratio of the paper's Large shape (d_model 512, 17 layers) for scale.

Usage: python benchmarks/encoders.py [--threads 2] [--batch 2] [--repeat 2]
Expected: a few minutes on 2 CPU threads; the ratio depends on the machine.
"""

import argparse

import torch
from common import SUBSAMPLING, add_scopes, breakdown, conformer_group, median_ms
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from minispeech.nn import ConformerEncoder

CONFORMER = dict(subsampling="striding", subsampling_factor=4, conv_kernel_size=31)
FAST = dict(
    subsampling="dw_striding",
    subsampling_factor=8,
    subsampling_conv_channels=256,
    conv_kernel_size=9,
)
SHAPES = {  # name -> (d_model, n_layers, n_heads, architecture)
    "Conformer d176 x16": (176, 16, 4, CONFORMER),
    "FastConformer small d176 x16": (176, 16, 4, FAST),
    "Conformer tiny d144 x6": (144, 6, 4, CONFORMER),
    "FastConformer tiny d144 x6": (144, 6, 4, FAST),
    "FastConformer tiny d96 x4": (96, 4, 4, FAST),
}


def build(d_model: int, n_layers: int, n_heads: int, arch: dict) -> ConformerEncoder:
    return ConformerEncoder(
        feat_in=80, n_layers=n_layers, d_model=d_model, n_heads=n_heads, **arch
    )


def time_step(encoder, batch: int, frames: int, repeat: int) -> float:
    """Median seconds of forward + backward (one warm-up step first)."""
    feats = torch.randn(batch, 80, frames)  # (B, M, T)
    lens = torch.full((batch,), frames)

    def step():
        enc, _ = encoder(feats, lens)
        enc.sum().backward()
        encoder.zero_grad(set_to_none=True)

    return median_ms({"step": step}, repeat)["step"] / 1e3


def forward_flops(encoder, batch: int, frames: int) -> dict[str, float]:
    """Group -> forward FLOPs of the group's own modules (nested groups excluded);
    "other" holds what no group claims."""
    feats, lens = torch.randn(batch, 80, frames), torch.full((batch,), frames)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        encoder(feats, lens)
    counts = counter.get_flop_counts()  # "Root.child..." -> {op: flops}, cumulative
    root = type(encoder).__name__ + "."
    per_module = {
        name[len(root) :]: sum(ops.values())
        for name, ops in counts.items()
        if name.startswith(root)
    }
    groups = {n: g for n, _ in encoder.named_modules() if (g := conformer_group(n))}
    table = {}
    for name, group in groups.items():
        nested = sum(per_module.get(n, 0) for n in groups if n.startswith(name + "."))
        table[group] = table.get(group, 0) + per_module.get(name, 0) - nested
    table["other"] = sum(counts["Global"].values()) - sum(table.values())
    return table


def group_ms(encoder, batch: int, frames: int) -> dict[str, float]:
    """Group -> ms of one profiled forward + backward (after a warm-up step)."""
    feats, lens = torch.randn(batch, 80, frames), torch.full((batch,), frames)
    encoder(feats, lens)[0].sum().backward()
    encoder.zero_grad(set_to_none=True)
    handles = add_scopes(encoder, conformer_group)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        encoder(feats, lens)[0].sum().backward()
    for handle in handles:
        handle.remove()
    encoder.zero_grad(set_to_none=True)
    return {group: sum(ms) for group, ms in breakdown(prof.events()).items()}


def explain(args, frames: int) -> None:
    """The per-group table of FLOPs, time and FLOP/s for both encoders, a summary of
    where the time ratio falls short of the FLOP ratio, and the Large shape's FLOPs."""
    flops, ms = {}, {}
    for name, arch in (("Conformer", CONFORMER), ("FastConformer", FAST)):
        encoder = build(args.d_model, args.n_layers, 4, arch).train()
        flops[name] = forward_flops(encoder, args.batch, frames)
        ms[name] = group_ms(encoder, args.batch, frames)
    c, f = "Conformer", "FastConformer"
    groups = sorted(set(ms[c]) | set(flops[c]), key=lambda g: -ms[c].get(g, 0.0))
    print(
        "\nby module group (GFLOP: forward, counted; ms: one profiled forward + "
        "backward;\nGFLOP/s: 3x forward FLOPs / time; the profiler adds per-op "
        "overhead)"
    )
    print(
        "| group | Conformer GFLOP | FastConformer GFLOP | FLOP ratio "
        "| Conformer ms | FastConformer ms | time ratio "
        "| Conformer GFLOP/s | FastConformer GFLOP/s |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    )

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}x" if b > 0 else "-"

    def rate(fl: float, t: float) -> str:
        return f"{3 * fl / t / 1e6:.1f}" if fl > 0 and t > 0 else "-"

    for g in groups:
        fc, ff = flops[c].get(g, 0.0), flops[f].get(g, 0.0)
        tc, tf = ms[c].get(g, 0.0), ms[f].get(g, 0.0)
        print(
            f"| {g} | {fc / 1e9:.2f} | {ff / 1e9:.2f} | {ratio(fc, ff)} | {tc:.0f} "
            f"| {tf:.0f} | {ratio(tc, tf)} | {rate(fc, tc)} | {rate(ff, tf)} |"
        )
    total = {k: (sum(flops[k].values()), sum(ms[k].values())) for k in (c, f)}
    print(
        f"| total | {total[c][0] / 1e9:.2f} | {total[f][0] / 1e9:.2f} "
        f"| {ratio(total[c][0], total[f][0])} | {total[c][1]:.0f} | {total[f][1]:.0f} "
        f"| {ratio(total[c][1], total[f][1])} | {rate(*total[c])} | {rate(*total[f])} |"
    )
    # the time the FastConformer would save if each group ran at the Conformer's FLOP/s
    lost = {
        g: ms[f][g] - ms[c][g] * flops[f][g] / flops[c][g]
        for g in groups
        if flops[c].get(g, 0) > 0 and flops[f].get(g, 0) > 0 and g in ms[f]
    }
    no_flops = [g for g in groups if flops[f].get(g, 0) == 0 and g in ms[f]]
    print(
        f"\nFLOPs predict {ratio(total[c][0], total[f][0])}; measured "
        f"{ratio(total[c][1], total[f][1])} (profiled). Where the FastConformer loses "
        "against the FLOPs\n(its ms minus the Conformer's ms scaled by the FLOP ratio):"
    )
    for g, extra in sorted(lost.items(), key=lambda kv: -kv[1])[:3]:
        print(f"  {g}: {extra:+.0f} ms ({100 * extra / total[f][1]:.0f}% of its step)")
    print(
        "  groups without matmul/conv FLOPs (memory-bound elementwise work, the "
        "autograd\n  engine): "
        + ", ".join(f"{g} {ms[f][g]:.0f} ms" for g in no_flops)
        + f" ({100 * sum(ms[f][g] for g in no_flops) / total[f][1]:.0f}% of its step)"
    )
    large = {
        name: forward_flops(build(512, 17, 8, arch).eval(), 1, frames)
        for name, arch in (("Conformer", CONFORMER), ("FastConformer", FAST))
    }
    big = {k: sum(v.values()) for k, v in large.items()}
    print(
        "At the paper's Large shape (d_model 512, 17 layers, 8 heads) the FLOP ratio "
        f"is {ratio(big[c], big[f])};\nthe FastConformer's subsampling is "
        f"{100 * large[f][SUBSAMPLING] / big[f]:.0f}% of its FLOPs there, "
        f"{100 * flops[f][SUBSAMPLING] / total[f][0]:.0f}% here: its 256 channels "
        "do not grow\nwith the width, while the layers, which halve with the frame "
        "rate, do."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--d-model", type=int, default=176)
    parser.add_argument("--n-layers", type=int, default=16)
    parser.add_argument("--no-explain", action="store_true", help="timing only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    print("| encoder | parameters |\n|---|---:|")
    for name, shape in SHAPES.items():
        n = sum(p.numel() for p in build(*shape).parameters())
        print(f"| {name} | {n / 1e6:.2f} M |")

    frames = int(args.seconds * 100)  # 10 ms hop: 10 s -> 1000 frames
    print(
        f"\nforward+backward, batch {args.batch} x {args.seconds:g} s, "
        f"d_model {args.d_model}, {args.n_layers} layers, {args.threads} threads"
    )
    print("| encoder | T' | seconds/step | speed-up |\n|---|---:|---:|---:|")
    baseline = None
    for name, arch in (
        ("Conformer (4x, k31)", CONFORMER),
        ("FastConformer (8x, k9)", FAST),
    ):
        encoder = build(args.d_model, args.n_layers, 4, arch).train()
        t_out = int(encoder.output_length(torch.tensor([frames])))
        seconds = time_step(encoder, args.batch, frames, args.repeat)
        baseline = baseline or seconds
        print(f"| {name} | {t_out} | {seconds:.3f} | {baseline / seconds:.2f}x |")
    if not args.no_explain:
        explain(args, frames)


if __name__ == "__main__":
    main()
