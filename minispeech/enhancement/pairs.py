"""Noisy/clean pairs made from clean speech and a seed (enhancement data, noisy tests).

Each clean utterance gets noise of a kind drawn from `kinds` (white, pink, babble of
other utterances; minispeech/audio/noise.py) at an SNR drawn from `snr_range`, scaled
exactly. Nothing is stored: the same rows and seed give the same pairs.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from minispeech.audio.io import load_audio
from minispeech.audio.noise import babble_noise, pink_noise, scale_to_snr, white_noise
from minispeech.data.manifest import read_manifest, write_manifest


@dataclass(frozen=True)
class NoisyExample:
    """One clean utterance with added noise at an exact SNR."""

    id: str  # the clean utterance's file name stem
    clean: np.ndarray  # (S,) float32
    noisy: np.ndarray  # (S,) clean + noise
    kind: str  # "white", "pink" or "babble"
    snr_db: float  # the target SNR, reached to float32 precision


def noisy_examples(
    rows: list[dict],
    seed: int,
    snr_range=(0.0, 10.0),
    kinds=("white", "pink", "babble"),
    n_babble: int = 5,
) -> list:
    """A NoisyExample for every row (absolute `audio_filepath`), kind and SNR drawn
    from `seed`. Babble sums `n_babble` other utterances of the same rows."""
    rng = np.random.default_rng(seed)
    out = []
    for i, row in enumerate(rows):
        clean = load_audio(row["audio_filepath"])[0].numpy()
        kind = kinds[int(rng.integers(len(kinds)))]
        target = float(rng.uniform(*snr_range))
        if kind == "white":
            noise = white_noise(len(clean), rng)
        elif kind == "pink":
            noise = pink_noise(len(clean), rng)
        else:
            others = [j for j in range(len(rows)) if j != i]
            picks = rng.choice(others, size=min(n_babble, len(others)), replace=False)
            noise = babble_noise(
                [load_audio(rows[j]["audio_filepath"])[0].numpy() for j in picks],
                len(clean),
                rng,
            )
        noise = scale_to_snr(clean, noise, target)
        stem = Path(row["audio_filepath"]).stem
        out.append(NoisyExample(stem, clean, clean + noise, kind, target))
    return out


def write_noisy_copy(
    manifest,
    out_dir,
    seed: int = 0,
    snr_range=(10.0, 10.0),
    kinds=("white", "pink", "babble"),
) -> Path:
    """A noisy copy of a manifest: 16-bit WAVs and `noisy.jsonl` in `out_dir`, the same
    texts, noise of a kind and SNR drawn per utterance from `seed`.
    Returns the manifest.
    """
    rows = read_manifest(manifest)
    out_dir = Path(out_dir)
    (out_dir / "audio").mkdir(parents=True, exist_ok=True)
    out_rows = []
    for row, example in zip(rows, noisy_examples(rows, seed, snr_range, kinds)):
        path = out_dir / "audio" / f"{example.id}.wav"
        info = sf.info(row["audio_filepath"])
        sf.write(
            path, np.clip(example.noisy, -1.0, 1.0), info.samplerate, subtype="PCM_16"
        )
        out_rows.append(
            {
                **row,
                "audio_filepath": str(path),
                "noise": example.kind,
                "snr_db": round(example.snr_db, 2),
            }
        )
    write_manifest(out_dir / "noisy.jsonl", out_rows, relative_to=out_dir)
    return out_dir / "noisy.jsonl"
