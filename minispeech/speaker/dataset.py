"""Audio + speaker label dataset over a manifest with a `speaker` field.

As NeMo's AudioToSpeechLabelDataset: one manifest row per utterance, the label is the
row's `speaker` (NeMo calls it `label`; both are read, `speaker` first) mapped to an
integer by the model's `labels` list (the class order of the final layer, stored in
the model config so a model file knows its speakers). A speaker outside `labels` gets
label -1: a verification set of held-out speakers still gives embeddings and an EER;
training refuses such items (SpeakerModel.training_step). Audio loading, segments,
duration filters, caching and augmentation are AudioTextDataset's.

Speakers made by speed (`new_speaker_speeds`): Yamamoto et al. 2019, "Speaker
augmentation and bandwidth extension for deep speaker embedding", Interspeech, Sec. 2:
an utterance resampled by a factor a (speed and pitch x a, formants x a) sounds like
another person, so it is trained as a new class. Each factor adds one copy of every
utterance, labelled `<speaker>@speed<a>` (`speed_name`): 120 speakers and factors
(0.9, 1.1) give 360 classes. NeMo's small perturbation (`augmentor.speed`, 0.95-1.05)
is a different thing: it keeps the label.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from minispeech.audio.perturb import speed_perturb
from minispeech.data import AudioTextDataset, ManifestError, read_manifest


def row_speaker(row: dict):
    """The row's speaker name: `speaker`, else NeMo's `label`; None when absent."""
    return row.get("speaker", row.get("label"))


def speed_name(name: str, factor: float) -> str:
    """The name of a speaker (its class) or an utterance id resampled by `factor`
    (e.g. "f001@speed0.9")."""
    return f"{name}@speed{factor:g}"


def speaker_labels(
    manifest: str | os.PathLike | Sequence[dict],
    new_speaker_speeds: Sequence[float] = (),
) -> list[str]:
    """The sorted speaker names of a manifest (a model's `labels` list), then, per
    factor of `new_speaker_speeds`, the same speakers resampled (`speed_name`)."""
    rows = (
        read_manifest(manifest)
        if isinstance(manifest, (str, os.PathLike))
        else manifest
    )
    names = sorted(
        {str(row_speaker(row)) for row in rows if row_speaker(row) is not None}
    )
    made = [speed_name(name, a) for a in new_speaker_speeds for name in names]
    return names + made


class SpeakerDataset(torch.utils.data.Dataset):
    """`dataset[i] -> {"audio": (S,), "label": int, "speaker": str, "id": str}`.

    With `new_speaker_speeds` (k factors) it holds (k + 1) N items: item j * N + i is
    utterance i resampled by factor j (j = 0: as recorded), speaker
    `speed_name(speaker, factor)`.
    """

    def __init__(
        self,
        manifest: str | os.PathLike | Sequence[dict],
        labels: Sequence[str],
        sample_rate: int | None = 16000,
        min_duration: float | None = None,
        max_duration: float | None = None,
        cache_audio: bool = False,
        augmentor=None,
        new_speaker_speeds: Sequence[float] = (),
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
        self.factors = [1.0, *new_speaker_speeds]  # copy j is resampled by factors[j]
        names = [str(row_speaker(row)) for row in self.audio.rows]
        self.speakers = names + [
            speed_name(name, a) for a in new_speaker_speeds for name in names
        ]
        self.targets = [index.get(name, -1) for name in self.speakers]

    @property
    def durations(self) -> list[float]:
        return [d / a for a in self.factors for d in self.audio.durations]

    def __len__(self) -> int:
        return len(self.audio) * len(self.factors)

    def __getitem__(self, index: int) -> dict:
        copy, utterance = divmod(index, len(self.audio))
        item = self.audio[utterance]
        audio = item["audio"]  # (S,)
        if copy:
            audio = speed_perturb(audio, self.factors[copy])  # (~S / factor,)
        return {
            "audio": audio,
            "label": self.targets[index],
            "speaker": self.speakers[index],
            "id": speed_name(item["id"], self.factors[copy]) if copy else item["id"],
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
