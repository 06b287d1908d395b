"""Convolutional subsampling: forward + backward time in the default and the
channels-last memory layout, on CPU.

`ConvSubsampling` keeps its convolutions channels-last (B, T, M, C in memory), the
layout oneDNN's CPU kernels prefer; this script times one forward + backward of the
same weights in both layouts, in the shapes of the Conformer-CTC small benchmark (4x
striding, 176 channels, batch 8 x 4 s, 80 mels) and of the main job (4x dw_striding,
64 channels, 64 s of audio in 34 utterances, 64 mels).

Usage: python benchmarks/subsampling.py [--threads 2] [--repeats 7]
Expected: about half a minute on 2 CPU threads.
"""

import argparse

import torch
from common import median_ms

from minispeech.nn.subsampling import ConvSubsampling

SHAPES = {  # name -> (kind, channels, mels, d_model, frames, batch)
    "Conformer-CTC small (striding x4, C176)": ("striding", 176, 80, 176, 401, 8),
    "main job (dw_striding x4, C64)": ("dw_striding", 64, 64, 128, 188, 34),
}


def step(module: ConvSubsampling, x: torch.Tensor, lens: torch.Tensor):
    def run():
        y, _ = module(x, lens)
        y.sum().backward()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.threads} threads, median of {args.repeats}, forward + backward")
    print("| shape | default layout ms | channels-last ms | ratio |\n|---|---|---|---|")
    for name, (kind, channels, mels, width, frames, batch) in SHAPES.items():
        torch.manual_seed(0)
        fast = ConvSubsampling(mels, width, kind, 4, channels)  # channels-last
        plain = ConvSubsampling(mels, width, kind, 4, channels)
        plain.set_memory_format(torch.contiguous_format)
        plain.load_state_dict(fast.state_dict())
        x = torch.randn(batch, frames, mels)  # (B, T, M)
        lens = torch.full((batch,), frames)
        ms = median_ms(
            {"plain": step(plain, x, lens), "fast": step(fast, x, lens)}, args.repeats
        )
        ratio = ms["fast"] / ms["plain"]
        print(f"| {name} | {ms['plain']:.0f} | {ms['fast']:.0f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
