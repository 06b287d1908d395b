"""Diarization speed: the real-time factor of each step of the pipeline on CPU.

Times minispeech/diarization/pipeline.py on a few simulated conversations of a
tinyspeech split (simulate.conversations, 2-4 speakers, 20-50 s each), step by step:
energy VAD, the multi-scale windows, the embeddings of every window (5 scales: each
scale covers the speech about twice, so ~10x the speech goes through the speaker
model), the NME-SC clustering of the base segments and the turns, then diarize()
end to end. The speaker model is --model (a trained TitaNet, e.g.
experiments/titanet_tiny/titanet_tiny.nemo) or, by default, configs/speaker/
titanet_tiny.yaml at its random initialisation: speed does not depend on the
weights (but the clustering's work does a little, through the speaker count).

RTFx = audio seconds / compute seconds (higher is faster); the target is > 20x on
2 cores. Audio decoding and simulation are not timed.

Usage: python benchmarks/diarization.py [--model M] [--threads 2] [--n 3]
Expected: under a minute on 2 CPU threads; the numbers depend on the machine.
"""

import argparse
import json
from pathlib import Path

import torch
from common import median_ms

from minispeech.core.config import load_recipe
from minispeech.core.model import restore_from
from minispeech.diarization import pipeline
from minispeech.diarization.simulate import conversations
from minispeech.speaker import SpeakerModel

REPO = Path(__file__).resolve().parents[1]


def build(model_path: str | None) -> SpeakerModel:
    """The trained model file, or TitaNet tiny at random initialisation."""
    if model_path:
        return restore_from(model_path).eval()
    cfg = load_recipe(REPO / "configs/speaker/titanet_tiny.yaml", REPO, "unused")
    labels = [f"speaker{i}" for i in range(120)]  # the recipe's 120 classes
    return SpeakerModel({**cfg["model"], "labels": labels}).eval()


def corpus(split: str) -> list[dict]:
    folder = REPO / "data/tinyspeech"
    rows = [json.loads(line) for line in open(folder / f"{split}.jsonl")]
    return [
        {**row, "audio_filepath": str(folder / row["audio_filepath"])} for row in rows
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="speaker model file (default: random tiny)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n", type=int, default=3, help="conversations")
    parser.add_argument("--split", default="dev")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build(args.model)
    recs = conversations(corpus(args.split), args.n, seed=0)
    waves = [torch.from_numpy(wave) for _, wave, _ in recs]  # (S,) each
    audio_s = sum(len(w) for w in waves) / 16000
    # each step's inputs, computed once, so every step is timed alone
    regions = [pipeline.speech_regions(w, 16000) for w in waves]
    segments = [pipeline.multiscale_segments(r) for r in regions]
    embs = [pipeline.mapped_embeddings(w, s, model) for w, s in zip(waves, segments)]
    labels = [pipeline.cluster(e) for e in embs]
    steps = {
        "energy VAD": lambda: [pipeline.speech_regions(w, 16000) for w in waves],
        "windows": lambda: [pipeline.multiscale_segments(r) for r in regions],
        "embeddings": lambda: [
            pipeline.mapped_embeddings(w, s, model) for w, s in zip(waves, segments)
        ],
        "clustering": lambda: [pipeline.cluster(e) for e in embs],
        "turns": lambda: [
            pipeline.labels_to_turns(s[-1], k.tolist())
            for s, k in zip(segments, labels)
        ],
        "diarize()": lambda: [pipeline.diarize(w, model) for w in waves],
    }
    times = median_ms(steps, args.repeat)
    n_windows = sum(len(w) for s in segments for w in s)
    n_base = sum(len(s[-1]) for s in segments)
    speakers = [len(set(k.tolist())) for k in labels]
    print(
        f"{args.threads} threads, {len(recs)} conversations of {args.split} speakers, "
        f"{audio_s:.1f} s of audio, {n_windows} windows ({n_base} base segments), "
        f"speakers found {speakers}, median of {args.repeat} rounds"
    )
    print(f"{'step':<12} {'ms':>9} {'share':>7} {'RTFx':>8}")
    total = sum(ms for name, ms in times.items() if name != "diarize()")
    for name, ms in [*times.items(), ("sum of steps", total)]:
        share = f"{100 * ms / total:>6.1f}%" if name != "diarize()" else f"{'':>7}"
        print(f"{name:<12} {ms:>9.1f} {share} {audio_s / (ms / 1e3):>7.0f}x")


if __name__ == "__main__":
    main()
