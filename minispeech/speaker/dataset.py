"""Audio + speaker label dataset over a manifest with a `speaker` field.

As NeMo's AudioToSpeechLabelDataset: one manifest row per utterance, the label is the
row's `speaker` (NeMo calls it `label`; both are read, `speaker` first) mapped to an
integer by the model's `labels` list (the class order of the final layer, stored in
the model config so a model file knows its speakers). A speaker outside `labels` gets
label -1: a verification set of held-out speakers still gives embeddings and an EER;
training refuses such items (SpeakerModel.training_step). Audio loading, segments,
duration filters, caching and augmentation are AudioTextDataset's.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from minispeech.data import AudioTextDataset, ManifestError, read_manifest


def row_speaker(row: dict):
    """The row's speaker name: `speaker`, else NeMo's `label`; None when absent."""
    return row.get("speaker", row.get("label"))


def speaker_labels(manifest: str | os.PathLike | Sequence[dict]) -> list[str]:
    """The sorted speaker names of a manifest (a model's `labels` list)."""
    rows = (
        read_manifest(manifest)
        if isinstance(manifest, (str, os.PathLike))
        else manifest
    )
    return sorted(
        {str(row_speaker(row)) for row in rows if row_speaker(row) is not None}
    )


class SpeakerDataset(torch.utils.data.Dataset):
    """`dataset[i] -> {"audio": (S,), "label": int, "speaker": str, "id": str}`."""

    def __init__(
        self,
        manifest: str | os.PathLike | Sequence[dict],
        labels: Sequence[str],
        sample_rate: int | None = 16000,
        min_duration: float | None = None,
        max_duration: float | None = None,
        cache_audio: bool = False,
        augmentor=None,
    ):
        self.audio = AudioTextDataset(
            manifest,
            tokenizer=None,
            sample_rate=sample_rate,
            min_duration=min_duration,
            max_duration=max_duration,
            cache_audio=cache_audio,
            augmentor=augmentor,
        )
        missing = [
            f"{place}: speaker: missing"
            for row, place in zip(self.audio.rows, self.audio.places)
            if row_speaker(row) is None
        ]
        if missing:
            raise ManifestError(missing)
        index = {str(name): k for k, name in enumerate(labels)}
        self.speakers = [str(row_speaker(row)) for row in self.audio.rows]
        self.targets = [index.get(name, -1) for name in self.speakers]

    @property
    def durations(self) -> list[float]:
        return self.audio.durations

    def __len__(self) -> int:
        return len(self.audio)

    def __getitem__(self, index: int) -> dict:
        item = self.audio[index]
        return {
            "audio": item["audio"],  # (S,)
            "label": self.targets[index],
            "speaker": self.speakers[index],
            "id": item["id"],
        }


def collate_speaker(items: Sequence[dict]) -> dict:
    """-> {"audio": (B, S) zero-padded, "audio_lens": (B,), "labels": (B,),
    "speakers": list[str], "ids": list[str]}."""
    if not items:
        raise ValueError("cannot collate an empty batch")
    audio_lens = torch.tensor([item["audio"].shape[-1] for item in items])  # (B,)
    audio = torch.zeros(len(items), int(audio_lens.max()))  # (B, S)
    for b, item in enumerate(items):
        audio[b, : audio_lens[b]] = item["audio"]
    return {
        "audio": audio,
        "audio_lens": audio_lens,
        "labels": torch.tensor([item["label"] for item in items]),  # (B,)
        "speakers": [item["speaker"] for item in items],
        "ids": [item["id"] for item in items],
    }
