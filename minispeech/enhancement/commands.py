"""Enhancement verbs of the `minispeech` command.

minispeech corpus noisy MANIFEST --out DIR [--snr MIN MAX] [--kinds ...] [--seed N]
"""

from __future__ import annotations

from minispeech.command_line import ArgumentParser

NOISE_KINDS = ("white", "pink", "babble")


def noisy_verb(argv: list[str]) -> int:
    """Write a noisy copy of a manifest: WAVs and `noisy.jsonl` in `--out`."""
    parser = ArgumentParser(
        prog="minispeech corpus noisy",
        description="write a noisy copy of a manifest (WAV + noisy.jsonl)",
    )
    parser.add_argument("manifest")
    parser.add_argument(
        "--out", required=True, help="folder for audio/ and noisy.jsonl"
    )
    parser.add_argument(
        "--snr", type=float, nargs=2, default=[10.0, 10.0], metavar=("MIN", "MAX")
    )
    parser.add_argument("--kinds", nargs="+", choices=NOISE_KINDS, default=NOISE_KINDS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.snr[0] > args.snr[1]:
        parser.error(f"argument --snr: MIN {args.snr[0]} is above MAX {args.snr[1]}")
    from minispeech.enhancement.pairs import write_noisy_copy

    out = write_noisy_copy(args.manifest, args.out, args.seed, args.snr, args.kinds)
    print(f"wrote {out}")
    return 0
