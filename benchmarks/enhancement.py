"""Enhancement speed: real-time factor of the models and the classic baselines on CPU.

Times `EnhancementModel.enhance` for the shapes of configs/enhancement/masking_tiny.yaml
(BLSTM mask estimator) and conformer_tiny.yaml (Conformer mask estimator) at their
random initialisation (speed does not depend on the weights), beside the Wiener
filter and spectral subtraction (minimum-statistics noise) of enhancement/classic.py,
on one utterance of --seconds seconds. The estimators look at the whole utterance
(bidirectional LSTM, full attention), so none of them streams; the table gives the
offline real-time factor only.

RTF = compute seconds / audio seconds (lower is faster); RTFx = 1 / RTF. The last
column is the ratio to the Wiener filter's time.

Usage: python benchmarks/enhancement.py [--threads 2] [--seconds 4] [--repeat 5]
Expected: under a minute on 2 CPU threads; the numbers depend on the machine.
"""

import argparse
from pathlib import Path

import torch
from common import median_ms

from minispeech.core.config import load_recipe
from minispeech.enhancement import EnhancementModel, spectral_subtraction, wiener_filter

REPO = Path(__file__).resolve().parents[1]


def build(name: str) -> EnhancementModel:
    cfg = load_recipe(REPO / f"configs/enhancement/{name}.yaml", REPO, "unused")
    return EnhancementModel(cfg["model"]).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    wave = 0.1 * torch.randn(int(16000 * args.seconds))  # (S,)
    masking, conformer = build("masking_tiny"), build("conformer_tiny")

    def enhance(model):
        with torch.no_grad():
            return model.enhance(wave)

    fns = {
        "Wiener (min. statistics)": lambda: wiener_filter(wave, 16000),
        "spectral subtraction": lambda: spectral_subtraction(wave, 16000),
        "masking_tiny (BLSTM)": lambda: enhance(masking),
        "conformer_tiny": lambda: enhance(conformer),
    }
    times = median_ms(fns, args.repeat)
    print(
        f"{args.threads} threads, one {args.seconds:g} s utterance, median of "
        f"{args.repeat} rounds"
    )
    print(f"{'method':<26} {'ms':>8} {'RTF':>8} {'RTFx':>7} {'vs Wiener':>10}")
    for name, ms in times.items():
        rtf = ms / 1e3 / args.seconds
        ratio = ms / times["Wiener (min. statistics)"]
        print(f"{name:<26} {ms:>8.1f} {rtf:>8.4f} {1 / rtf:>7.0f} {ratio:>9.2f}x")


if __name__ == "__main__":
    main()
