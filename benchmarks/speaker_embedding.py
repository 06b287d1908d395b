"""Speaker embedding extraction speed: TitaNet vs ECAPA tiny, real-time factor on CPU.

Times `SpeakerModel.get_embeddings` (features, encoder, pooling, embedding layer; no
file decoding) for the shapes of configs/speaker/titanet_tiny.yaml and ecapa_tiny.yaml
on utterances of a few seconds, one at a time (batch 1, a verification request) and
16 at a time (batch scoring of a manifest). The weights are the recipes' random
initialisation: speed does not depend on their values.

RTF = compute seconds / audio seconds (lower is faster); RTFx = 1 / RTF, seconds of
audio embedded per second. The last column is the ratio to TitaNet's time.

Usage: python benchmarks/speaker_embedding.py [--threads 2] [--seconds 4] [--repeat 5]
Expected: under a minute on 2 CPU threads; the numbers depend on the machine.
"""

import argparse
from pathlib import Path

import torch
from common import median_ms

from minispeech.core.config import load_recipe
from minispeech.speaker import SpeakerModel

REPO = Path(__file__).resolve().parents[1]
RECIPES = {"TitaNet tiny": "titanet_tiny", "ECAPA tiny": "ecapa_tiny"}


def build(name: str) -> SpeakerModel:
    cfg = load_recipe(REPO / f"configs/speaker/{name}.yaml", REPO, "unused")
    labels = [f"speaker{i}" for i in range(120)]  # the recipes' 120 classes
    return SpeakerModel({**cfg["model"], "labels": labels}).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    samples = int(16000 * args.seconds)
    waves = [0.1 * torch.randn(samples) for _ in range(16)]  # (S,) each
    models = {label: build(name) for label, name in RECIPES.items()}
    print(
        f"{args.threads} threads, {args.seconds:g} s utterances, median of "
        f"{args.repeat} rounds"
    )
    print(
        f"{'model':<14} {'params':>8} {'batch':>5} {'ms/utt':>8} {'RTF':>7} "
        f"{'RTFx':>7} {'vs TitaNet':>10}"
    )
    for batch in (1, 16):
        fns = {
            label: (lambda m=model, b=batch: m.get_embeddings(waves[:b], batch_size=b))
            for label, model in models.items()
        }
        times = median_ms(fns, args.repeat)  # ms per call of `batch` utterances
        for label, model in models.items():
            per_utt = times[label] / batch
            rtf = per_utt / 1e3 / args.seconds
            ratio = times[label] / times["TitaNet tiny"]
            print(
                f"{label:<14} {model.num_parameters():>8,} {batch:>5} "
                f"{per_utt:>8.1f} {rtf:>7.4f} {1 / rtf:>7.0f} {ratio:>9.2f}x"
            )


if __name__ == "__main__":
    main()
