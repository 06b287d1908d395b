"""Audio-only data for a vocoder: random fixed-length segments to train, whole files
to validate (NeMo's VocoderDataset; the model computes mels itself).

A NeMo manifest (`audio_filepath` relative to the manifest, `duration`) is read with
minispeech.data's AudioTextDataset (no tokenizer), which decodes and resamples each
file and, with `cache_audio`, keeps it in memory (the tinyspeech TTS voice: 248 files
of about 4 s, 63 MB at 16 kHz). With `n_segments` set, an item is a random window of
that many samples (HiFi-GAN trains on 8192-sample windows, Kong et al. 2020);
a shorter file is zero-padded and keeps its real length. The offset is drawn from
torch's global generator, which the training loop seeds and saves, so a resumed run
draws the same windows. With `n_segments: null` an item is the whole file.
"""

from __future__ import annotations

import os

import torch

from minispeech.core.config import ConfigError
from minispeech.data.datasets import DATASET_KEYS, AudioTextDataset

# keys of a vocoder train_ds / validation_ds / test_ds section (the loop reads the
# sampler's: batch_size, max_seconds, shuffle, drop_last, num_buckets, num_workers)
VOCODER_DATASET_KEYS = tuple(k for k in DATASET_KEYS if k != "augmentor")
VOCODER_DATASET_KEYS += ("n_segments", "rows")


class VocoderDataset(torch.utils.data.Dataset):
    """`dataset[i] -> {"audio": (S,), "length": int, "id": str}` (module doc)."""

    def __init__(
        self,
        manifest_filepath: str | os.PathLike,
        sample_rate: int = 16000,
        n_segments: int | None = None,
        min_duration: float | None = None,
        max_duration: float | None = None,
        cache_audio: bool = False,
        rows: list | None = None,
    ):
        if n_segments is not None and (
            not isinstance(n_segments, int) or n_segments <= 0
        ):
            raise ConfigError(
                f"n_segments: must be a positive int or null, got {n_segments!r}"
            )
        self.n_segments = n_segments
        self.corpus = AudioTextDataset(
            manifest_filepath,
            sample_rate=sample_rate,
            min_duration=min_duration,
            max_duration=max_duration,
            cache_audio=cache_audio,
            rows=rows,  # [start, stop] of the manifest (a held-out tail)
        )

    @property
    def durations(self) -> list[float]:
        """Manifest durations in seconds (for the batch sampler)."""
        return self.corpus.durations

    def __len__(self) -> int:
        return len(self.corpus)

    def __getitem__(self, index: int) -> dict:
        item = self.corpus[index]
        audio, n = item["audio"], self.n_segments  # (S,)
        if n is None:
            return {"audio": audio, "length": audio.numel(), "id": item["id"]}
        length = min(audio.numel(), n)
        if audio.numel() > n:  # a random window of n samples
            start = int(torch.randint(audio.numel() - n + 1, ()))
            audio = audio[start : start + n]  # (n,)
        else:  # too short: zero-pad, keep the real length
            audio = torch.nn.functional.pad(audio, (0, n - audio.numel()))  # (n,)
        return {"audio": audio, "length": length, "id": item["id"]}


def collate_vocoder(items: list[dict]) -> dict:
    """Zero-pad items into {"audio": (B, S), "audio_lens": (B,), "ids": [...]}."""
    if not items:
        raise ValueError("cannot collate an empty batch")
    audio_lens = torch.tensor([item["length"] for item in items])  # (B,)
    width = max(item["audio"].numel() for item in items)
    audio = torch.zeros(len(items), width)  # (B, S)
    for b, item in enumerate(items):
        audio[b, : item["audio"].numel()] = item["audio"]
    return {"audio": audio, "audio_lens": audio_lens, "ids": [i["id"] for i in items]}
