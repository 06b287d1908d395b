"""Noisy/clean pair dataset for speech enhancement, and the collate that pads a batch.

Two sources, chosen by the manifest's first line:

1. Audio-to-audio pairs, as NeMo's AudioToTargetDataset: each line names a noisy
   input (`input_key`, default `noisy_filepath`) and its clean target (`target_key`,
   default `clean_filepath`), paths relative to the manifest. Both are resampled to
   the model's rate; a pair whose durations differ (by more than one sample) fails at
   construction, naming the manifest line, never misaligned in silence. The line's
   `noise` and `snr_db` fields, when present, become the item's kind and SNR.
2. Mixing on the fly: a clean corpus manifest (`audio_filepath`); each item adds
   noise of a kind drawn from `noise_kinds` at an SNR drawn from `snr_db` [lo, hi],
   scaled exactly over the clean samples the item returns (enhancement/pairs.py).
   Babble sums utterances of `babble_speakers` other speakers of the same manifest,
   so a dev or test set never hears training speakers.

The random choices (crop offset, kind, SNR, babble utterances and their offsets, the
noise itself) come from one np.random.Generator per item. Training (`fixed: false`)
seeds it from torch's global generator, which the loop seeds and saves, so a run is
reproducible and resumes exactly (as audio/perturb.py AudioAugmentor); `fixed: true`
(validation, test) seeds it with (`seed`, index), so every evaluation scores the same
mixtures. `crop_seconds` cuts a random window of each pair (the same for input and
target); a window with no speech in it moves to centre on the loudest sample.

A silent clean target (peak below SILENCE_PEAK) raises an error naming its line:
SI-SDR against a silent target is undefined. `min_duration` / `max_duration` filter
rows as in minispeech/data/datasets.py.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import torch

from minispeech.audio.io import AudioError, load_audio
from minispeech.audio.noise import NOISE_KINDS
from minispeech.core.config import ConfigError, check_keys
from minispeech.data.datasets import DATASET_KEYS, AudioTextDataset
from minispeech.data.manifest import ManifestError, filter_by_duration
from minispeech.enhancement.pairs import (
    check_kinds,
    pick_babble,
    read_pair_rows,
    scaled_noise,
    speaker_groups,
    speaker_keys,
)

SILENCE_PEAK = 1e-4  # -80 dBFS, about 3 steps of 16-bit audio: a silent target
# the loop's sampler and loader keys; PairDataset takes the others
SAMPLER_KEYS = ("batch_size", "max_seconds", "shuffle", "drop_last", "num_buckets")
SAMPLER_KEYS += ("num_workers",)
PAIR_DATASET_KEYS = tuple(key for key in DATASET_KEYS if key != "augmentor") + (
    "noise_kinds",
    "snr_db",
    "babble_speakers",
    "crop_seconds",
    "fixed",
    "seed",
    "input_key",
    "target_key",
)


class PairDataset(torch.utils.data.Dataset):
    """`dataset[i] -> {"input": noisy (S,), "target": clean (S,), "id": str,
    "kind": str, "snr_db": float}` at `sample_rate` (module docstring)."""

    def __init__(
        self,
        manifest_filepath: str | os.PathLike,
        sample_rate: int = 16000,
        noise_kinds=NOISE_KINDS,
        snr_db=(0.0, 20.0),
        babble_speakers: int = 5,
        crop_seconds: float | None = None,
        fixed: bool = False,
        seed: int = 0,
        input_key: str = "noisy_filepath",
        target_key: str = "clean_filepath",
        min_duration: float | None = None,
        max_duration: float | None = None,
        cache_audio: bool = False,
    ):
        self.source, self.sample_rate = str(manifest_filepath), int(sample_rate)
        self.kinds = check_kinds(noise_kinds, "noise_kinds")
        self.snr_db = _check_range(snr_db)
        self.babble_speakers = int(babble_speakers)
        if crop_seconds is not None and not crop_seconds > 0:
            raise ConfigError(f"crop_seconds: must be > 0 or null, got {crop_seconds}")
        self.crop = None if crop_seconds is None else round(crop_seconds * sample_rate)
        self.fixed, self.seed = bool(fixed), int(seed)
        self.input_key, self.target_key = input_key, target_key
        self.mixing = input_key not in _first_row(manifest_filepath)
        if self.mixing:  # rows, places and audio loading of the clean corpus
            self.corpus = AudioTextDataset(
                manifest_filepath,
                sample_rate=sample_rate,
                min_duration=min_duration,
                max_duration=max_duration,
            )
            self.rows, self.places = self.corpus.rows, self.corpus.places
            self.target_key = "audio_filepath"
            self._check_babble()
        else:
            rows, places = read_pair_rows(manifest_filepath, input_key, target_key)
            kept = filter_by_duration(rows, min_duration, max_duration, self.source)
            place_of = {id(row): place for row, place in zip(rows, places)}
            self.rows, self.places = kept, [place_of[id(row)] for row in kept]
        self.cache: dict[int, tuple] | None = {} if cache_audio else None

    def _check_babble(self) -> None:
        """Babble needs a second speaker in the manifest."""
        self.speakers = speaker_keys(self.rows)
        self.groups = speaker_groups(self.speakers)
        if "babble" in self.kinds and len(self.groups) < 2:
            raise ConfigError(
                f"{self.source}: babble noise needs utterances of other speakers; "
                f"all {len(self.rows)} are of {self.speakers[0]!r}"
            )

    @property
    def durations(self) -> list[float]:
        """Seconds per item (after cropping), for the bucketing sampler."""
        crop = math.inf if self.crop is None else self.crop / self.sample_rate
        return [min(float(row["duration"]), crop) for row in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        rng = self._rng(index)
        if not self.mixing:
            noisy, clean = _crop(self._load(index), self.crop, rng)  # (S,), (S,)
            row = self.rows[index]
            snr = row.get("snr_db")  # a number where the manifest says how noisy
            kind, snr = str(row.get("noise", "")), _number(snr)
        else:
            (clean,) = _crop(self._load(index), self.crop, rng)  # (S,)
            kind = self.kinds[int(rng.integers(len(self.kinds)))]
            snr = float(rng.uniform(*self.snr_db))
            waves = []
            if kind == "babble":
                speaker, n = self.speakers[index], self.babble_speakers
                picks = pick_babble(self.groups, speaker, n, rng)
                waves = [self._load(j)[0].numpy() for j in picks]
            clean64 = clean.double().numpy()
            noise = scaled_noise(clean64, kind, snr, rng, self.sample_rate, waves)
            noisy = torch.from_numpy(clean64 + noise).float()  # (S,)
        return {
            "input": noisy,
            "target": clean,
            "id": self._id(index),
            "kind": kind,
            "snr_db": snr,
        }

    def _rng(self, index: int) -> np.random.Generator:
        """Fixed: seeded by (seed, index); training: by torch's global generator."""
        if self.fixed:
            return np.random.default_rng([self.seed, index])
        return np.random.default_rng(int(torch.randint(2**62, ())))

    def _id(self, index: int) -> str:
        row = self.rows[index]
        if "id" in row:
            return str(row["id"])
        key = "audio_filepath" if self.mixing else self.input_key
        stem = Path(row[key]).stem
        return f"{stem}@{row['offset']:g}" if "offset" in row else stem

    def _load(self, index: int) -> tuple:
        """(clean,) when mixing, else (noisy, clean); each (S,), cached if asked."""
        if self.cache is not None and index in self.cache:
            return self.cache[index]
        if self.mixing:
            waves = (self.corpus[index]["audio"],)
        else:
            waves = self._load_pair(index)
        _check_not_silent(waves[-1], self.places[index], self.target_key)
        if self.cache is not None:
            self.cache[index] = waves
        return waves

    def _load_pair(self, index: int) -> tuple:
        row, place = self.rows[index], self.places[index]
        waves = []
        for key in (self.input_key, self.target_key):
            try:
                waves.append(load_audio(row[key], self.sample_rate)[0])  # (S,)
            except AudioError as err:
                raise AudioError(f"{place}: {key}: {err}") from None
        n = min(w.numel() for w in waves)  # resampled rates round apart by <= 2
        if max(w.numel() for w in waves) - n > 2:  # the file changed since __init__
            lengths = [w.numel() for w in waves]
            raise ManifestError(
                [f"{place}: input and target lengths differ: {lengths}"]
            )
        return waves[0][:n], waves[1][:n]


def _number(value) -> float:
    """A manifest's number as a float; NaN when absent or not a number."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    return float(value) if ok else math.nan


def _first_row(manifest) -> dict:
    """The first line of a manifest as a dict, {} when it cannot be read (the
    manifest reader then names the problem)."""
    try:
        with open(manifest, encoding="utf-8-sig") as file:
            line = next((line for line in file if line.strip()), "{}")
        row = json.loads(line)
    except (OSError, ValueError):
        return {}
    return row if isinstance(row, dict) else {}


def _check_range(snr_db) -> tuple[float, float]:
    """`snr_db` as (lo, hi), lo <= hi, both finite."""
    try:
        lo, hi = (float(v) for v in snr_db)
    except (TypeError, ValueError):
        raise ConfigError(f"snr_db: must be [lo, hi] in dB, got {snr_db!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
        raise ConfigError(
            f"snr_db: must be finite [lo, hi] with lo <= hi, got {snr_db}"
        )
    return lo, hi


def _check_not_silent(clean: torch.Tensor, place: str, key: str) -> None:
    peak = float(clean.abs().max()) if clean.numel() else 0.0
    if peak < SILENCE_PEAK:
        raise ManifestError(
            [
                f"{place}: {key}: the clean target is silent (peak {peak:.1e} < "
                f"{SILENCE_PEAK:g}); SI-SDR against a silent target is undefined"
            ]
        )


def _crop(waves: tuple, crop: int | None, rng: np.random.Generator) -> tuple:
    """The same random window of `crop` samples of every wave (S,) -> (crop,); the
    last wave is the clean target: a silent window moves to its loudest sample."""
    n = waves[-1].numel()
    if crop is None or n <= crop:
        return waves
    offset = int(rng.integers(n - crop + 1))
    clean = waves[-1]
    if float(clean[offset : offset + crop].abs().max()) < SILENCE_PEAK:
        loudest = int(clean.abs().argmax())
        offset = min(max(loudest - crop // 2, 0), n - crop)
    return tuple(w[offset : offset + crop] for w in waves)


def build_pair_dataset(ds_cfg: dict, sample_rate: int) -> PairDataset:
    """A PairDataset from a `train_ds` / `validation_ds` / `test_ds` section (keys:
    PAIR_DATASET_KEYS; the sampler keys are the loop's)."""
    check_keys(
        "dataset section",
        ds_cfg,
        PAIR_DATASET_KEYS,
        "PairDataset",
        required=("manifest_filepath",),
    )
    args = {key: value for key, value in ds_cfg.items() if key not in SAMPLER_KEYS}
    return PairDataset(sample_rate=sample_rate, **args)


def collate_pairs(items) -> dict:
    """Zero-pad items into a batch (NeMo's AudioToTargetDataset names) ->
    {"input_signal": (B, S), "input_length": (B,), "target_signal": (B, S),
     "ids": [str], "kinds": [str], "snr_db": (B,)}."""
    if not items:
        raise ValueError("cannot collate an empty batch")
    lens = torch.tensor([item["input"].shape[-1] for item in items])  # (B,)
    inputs = torch.zeros(len(items), int(lens.max()))  # (B, S)
    targets = torch.zeros(len(items), int(lens.max()))  # (B, S)
    for b, item in enumerate(items):
        assert item["input"].shape == item["target"].shape, (item["id"], b)
        inputs[b, : lens[b]] = item["input"]
        targets[b, : lens[b]] = item["target"]
    return {
        "input_signal": inputs,
        "input_length": lens,
        "target_signal": targets,
        "ids": [item["id"] for item in items],
        "kinds": [item["kind"] for item in items],
        "snr_db": torch.tensor([float(item["snr_db"]) for item in items]),  # (B,)
    }
