"""Audio + transcript dataset over a manifest, and the collate that pads a batch.

Follows NeMo's AudioToCharDataset / AudioToBPEDataset: one manifest row per item,
audio read from ``audio_filepath`` (only the ``offset``/``duration`` segment when the
row has an ``offset``; otherwise the whole file, since manifest durations are
rounded), text turned into token ids by the tokenizer. Differs from NeMo: features
are not computed here (the model's MelSpectrogram does that on the batch), and
texts are tokenized and segments checked against their audio headers once at
construction, so an untokenizable transcript or a segment past the end of its file
fails before training starts, named ``manifest:line``, rather than in a worker halfway
through an epoch.

Everything here is plain data (rows, ints, a picklable tokenizer) and top-level
functions, so DataLoader workers can pickle the dataset and the collate.
"""

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from minispeech.audio.io import AudioError, audio_info, load_audio
from minispeech.data.manifest import (
    DURATION_TOLERANCE,
    ManifestError,
    filter_by_duration,
    read_numbered_manifest,
)

# keys of a train_ds / validation_ds / test_ds section of any task (the loop reads the
# sampler's: batch_size, max_seconds, shuffle, drop_last, num_buckets, num_workers)
DATASET_KEYS = (
    "manifest_filepath",
    "batch_size",
    "max_seconds",
    "shuffle",
    "drop_last",
    "num_buckets",
    "num_workers",
    "min_duration",
    "max_duration",
    "cache_audio",
    "augmentor",
)

__all__ = ["AudioTextDataset", "collate_audio_text"]


def _pick_rows(rows: list, places: list, pick: Sequence, source: str):
    """rows[start:stop] and their places, e.g. [228, None] for a held-out tail."""
    if len(pick) != 2:
        raise ValueError(f"rows must be [start, stop], got {list(pick)!r}")
    window = slice(*pick)
    if not rows[window]:
        raise ValueError(f"{source}: rows {list(pick)} selects no row")
    return rows[window], places[window]


def _utterance_id(row: dict) -> str:
    """The row's ``id`` field, else the file name stem (+ @offset for a segment)."""
    if "id" in row:
        return str(row["id"])
    stem = Path(row["audio_filepath"]).stem
    return f"{stem}@{row['offset']:g}" if "offset" in row else stem


def _check_rows(rows: list[dict], required: Sequence[str]) -> None:
    """Rows given directly (not read from a file) must still have the fields."""
    missing = [(k, f) for k, row in enumerate(rows) for f in required if f not in row]
    if missing:
        raise ManifestError([f"rows[{k}]: {field}: missing" for k, field in missing])
    if not rows:
        raise ManifestError(["rows: no utterances"])


class AudioTextDataset(torch.utils.data.Dataset):
    """``dataset[i] -> {"audio": (S,), "tokens": (U,), "id": str, "text": str}``.

    ``manifest`` is a manifest path or a list of rows (as ``read_manifest`` returns).
    ``sample_rate``: audio is resampled to it when a file differs; ``None`` keeps
    each file's own rate (then do not batch files of different rates).
    ``tokenizer=None`` gives empty token tensors and makes ``text`` optional.
    ``rows=[start, stop]`` keeps that slice of the manifest's rows first (Python
    slice rules; ``[228, None]``: a held-out tail as a dev set).
    ``min_duration``/``max_duration`` drop rows via ``filter_by_duration`` (which
    prints what it dropped and refuses to keep nothing).
    ``cache_audio=True`` keeps each decoded waveform in memory after its first read
    (4 bytes a sample: an hour at 16 kHz is 230 MB), so later epochs skip decoding.
    ``augmentor``: a callable wave (S,) -> wave (S',) applied to every item after
    loading (e.g. ``minispeech.audio.AudioAugmentor``); the cache keeps clean audio.
    """

    def __init__(
        self,
        manifest: str | os.PathLike | Sequence[dict],
        tokenizer=None,
        sample_rate: int | None = 16000,
        min_duration: float | None = None,
        max_duration: float | None = None,
        cache_audio: bool = False,
        augmentor=None,
        rows: Sequence[int | None] | None = None,
    ):
        text = ("text",) if tokenizer is not None else ()
        required = ("audio_filepath", "duration") + text
        if isinstance(manifest, (str, os.PathLike)):
            self.source = str(manifest)
            numbered = read_numbered_manifest(manifest, required=required)
            picked = [row for _, row in numbered]
            places = [f"{manifest}:{line}" for line, _ in numbered]
        else:
            self.source = "rows"
            picked = [dict(row) for row in manifest]
            _check_rows(picked, required)
            places = [f"rows[{k}]" for k in range(len(picked))]
        if rows is not None:  # rows[0]:rows[1] of the manifest (Python slice rules)
            picked, places = _pick_rows(picked, places, rows, self.source)
        rows = picked
        name = Path(self.source).name
        self.rows = filter_by_duration(rows, min_duration, max_duration, name=name)
        place_of = {id(row): place for row, place in zip(rows, places)}
        # "manifest:line" (or "rows[k]") of each kept row, for error messages
        self.places = [place_of[id(row)] for row in self.rows]
        _check_segments(self.rows, self.places)
        self.tokenizer = tokenizer
        self.sample_rate = sample_rate
        self.tokens = self._tokenize_all()
        self.cache: dict[int, torch.Tensor] | None = {} if cache_audio else None
        self.augmentor = augmentor
        if hasattr(augmentor, "babble_source"):  # babble noise: other utterances
            augmentor.babble_source = self.random_waves

    def _tokenize_all(self) -> list[list[int]]:
        """Encode every text now; all failures are reported together."""
        if self.tokenizer is None:
            return [[] for _ in self.rows]
        tokens, problems = [], []
        for k, (row, place) in enumerate(zip(self.rows, self.places)):
            try:
                tokens.append(self.tokenizer.encode(row["text"]))
            except (ValueError, KeyError, TypeError) as err:
                utterance = f"utterance {k} ({_utterance_id(row)})"
                problems.append(f"{place}: text: {utterance}: {err}")
        if problems:
            raise ManifestError(problems)
        return tokens

    @property
    def durations(self) -> list[float]:
        """Manifest durations in seconds, in dataset order (for the batch sampler)."""
        return [float(row["duration"]) for row in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        row = self.rows[index]
        if self.cache is not None and index in self.cache:
            audio = self.cache[index]
        else:
            audio = self._load(index)  # (S,)
            if self.cache is not None:
                self.cache[index] = audio
        if self.augmentor is not None:
            audio = self.augmentor(audio)  # (S',)
        return {
            "audio": audio,
            "tokens": torch.tensor(self.tokens[index], dtype=torch.long),  # (U,)
            "id": _utterance_id(row),
            "text": row.get("text", ""),
        }

    def random_waves(self, n: int) -> list[torch.Tensor]:
        """n waves (S_i,) of utterances drawn at random (torch's generator, so a
        resumed run draws the same), cached like the items."""
        picks = torch.randint(len(self.rows), (n,)).tolist()
        waves = []
        for index in picks:
            if self.cache is not None and index in self.cache:
                waves.append(self.cache[index])
            else:
                waves.append(self._load(index))
                if self.cache is not None:
                    self.cache[index] = waves[-1]
        return waves

    def _load(self, index: int) -> torch.Tensor:
        row, segment = self.rows[index], "offset" in self.rows[index]
        try:
            audio, _ = load_audio(
                row["audio_filepath"],
                sample_rate=self.sample_rate,
                offset=row["offset"] if segment else 0.0,
                duration=row["duration"] if segment else None,
            )
        except AudioError as err:  # e.g. the file changed since construction
            raise AudioError(f"{self.places[index]}: {err}") from None
        return audio  # (S,)


def _check_segments(rows: list[dict], places: list[str]) -> None:
    """A segment (a row with an ``offset``) must lie inside its audio file: a
    segment past the end would load less audio than its transcript says."""
    lengths, problems = {}, []  # audio path -> seconds (header read once per file)
    for row, place in zip(rows, places):
        if "offset" not in row:
            continue
        path, offset, duration = row["audio_filepath"], row["offset"], row["duration"]
        try:
            if path not in lengths:
                lengths[path] = audio_info(path).duration
        except AudioError as err:
            problems.append(f"{place}: audio_filepath: {err}")
            continue
        if offset >= lengths[path]:
            problems.append(
                f"{place}: offset: {offset} s is past the end of {path} "
                f"({lengths[path]:.3f} s)"
            )
        elif offset + duration > lengths[path] + DURATION_TOLERANCE:
            problems.append(
                f"{place}: duration: segment {offset} + {duration} s ends after "
                f"{path} ({lengths[path]:.3f} s)"
            )
    if problems:
        raise ManifestError(problems)


def collate_audio_text(items: Sequence[dict]) -> dict:
    """Zero-pad a list of dataset items into a batch with lengths.

    -> {"audio": (B, S), "audio_lens": (B,), "tokens": (B, U), "token_lens": (B,),
        "ids": list[str], "texts": list[str]}
    """
    if not items:
        raise ValueError("cannot collate an empty batch")
    audio_lens = torch.tensor([item["audio"].shape[-1] for item in items])  # (B,)
    token_lens = torch.tensor([item["tokens"].shape[-1] for item in items])  # (B,)
    audio = torch.zeros(len(items), int(audio_lens.max()))  # (B, S)
    tokens = torch.zeros(len(items), int(token_lens.max()), dtype=torch.long)  # (B, U)
    for b, item in enumerate(items):
        audio[b, : audio_lens[b]] = item["audio"]
        tokens[b, : token_lens[b]] = item["tokens"]
    return {
        "audio": audio,
        "audio_lens": audio_lens,
        "tokens": tokens,
        "token_lens": token_lens,
        "ids": [item["id"] for item in items],
        "texts": [item["text"] for item in items],
    }
