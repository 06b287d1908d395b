"""Conformer vs FastConformer: forward+backward time at equal width and depth, on CPU.

Rekesh et al. 2023, "Fast Conformer", arXiv:2305.05084, report FastConformer about 2.8x
faster than Conformer (8x depthwise-separable subsampling, 256 channels, kernel 9, vs 4x
striding, kernel 31). This script times one training step (forward, sum of outputs,
backward) of minispeech's `ConformerEncoder` in both configurations on a batch of 10 s
utterances (100 feature frames per second, 80 mels), and prints parameter counts of the
shapes the recipes use.

Usage: python benchmarks/encoders.py [--threads 2] [--batch 2] [--repeat 2]
Expected: a few minutes on 2 CPU threads; the ratio depends on the machine.
"""

import argparse

import torch
from common import median_ms

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--d-model", type=int, default=176)
    parser.add_argument("--n-layers", type=int, default=16)
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


if __name__ == "__main__":
    main()
