"""VAD training data: short sessions of corpus utterances and silence, built on the fly.

A session joins 2-4 manifest utterances with gaps of digital silence (0.2-1.5 s),
adds leading and trailing silence, and optionally adds white or pink noise over the
whole session at an SNR measured over the whole session (minispeech/audio/noise.py).
Labels are turn-level, as diarization wants them: each utterance is speech from its
first word's start to its last word's end (the manifest's `words`, espeak-ng's word
timings; the tinyspeech files are trimmed, so this is nearly the whole file and the
short pauses between words count as speech); without `words`, the whole file.
Frame labels come from `frame_labels` at the model's frame rate (vad.py).

Randomness: with `seed: null` (training) every item draws its session from torch's
global generator, which the training loop seeds and saves, so a run resumes exactly
(as AudioAugmentor does); with an integer `seed` (validation, evaluation) the
sessions are drawn once, at construction, from a generator with that seed, so every
validation scores the same audio.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from minispeech.audio.noise import pink_noise, scale_to_snr, white_noise
from minispeech.data import AudioTextDataset
from minispeech.data.datasets import DATASET_KEYS
from minispeech.diarization.vad import frame_labels

# keys of a VAD train_ds / validation_ds section: the generic ones + the session's
SESSION_KEYS = (
    "n_utterances",
    "gap_s",
    "edge_s",
    "noise_prob",
    "noise_snr_db",
    "noise_kinds",
    "sessions",
    "seed",
)
VAD_DATASET_KEYS = tuple(k for k in DATASET_KEYS if k != "augmentor") + SESSION_KEYS


@dataclass(frozen=True)
class SessionPlan:
    """Everything random about one session."""

    rows: tuple[int, ...]  # manifest rows, in speaking order
    silences: tuple[float, ...]  # seconds before each utterance (the first: leading)
    trailing: float  # seconds of silence after the last utterance
    noise: str | None  # "white", "pink" or None (clean)
    snr_db: float  # of the noise over the whole session
    noise_seed: int  # seeds the numpy generator that makes the noise


def _uniform(bounds, generator) -> float:
    low, high = float(bounds[0]), float(bounds[1])
    return low + (high - low) * float(torch.rand((), generator=generator))


def _randint(low: int, high: int, generator) -> int:
    """An integer in [low, high], both included."""
    return int(torch.randint(low, high + 1, (), generator=generator))


def draw_plan(
    anchor: int,
    n_rows: int,
    n_utterances=(2, 4),
    gap_s=(0.2, 1.5),
    edge_s=(0.0, 1.0),
    noise_prob: float = 0.5,
    noise_snr_db=(5.0, 25.0),
    noise_kinds=("white", "pink"),
    generator: torch.Generator | None = None,
) -> SessionPlan:
    """A session starting with row `anchor`, the others drawn from all `n_rows`
    (from `generator`, or torch's global one when None)."""
    n = _randint(n_utterances[0], n_utterances[1], generator)
    others = [_randint(0, n_rows - 1, generator) for _ in range(n - 1)]
    silences = [_uniform(edge_s, generator)]
    silences += [_uniform(gap_s, generator) for _ in range(n - 1)]
    trailing = _uniform(edge_s, generator)
    noise, snr, noise_seed = None, 0.0, 0
    if float(torch.rand((), generator=generator)) < noise_prob:
        noise = noise_kinds[_randint(0, len(noise_kinds) - 1, generator)]
        snr = _uniform(noise_snr_db, generator)
        noise_seed = _randint(0, 2**31 - 2, generator)
    return SessionPlan(
        (anchor, *others), tuple(silences), trailing, noise, snr, noise_seed
    )


def turn_span(row: dict) -> tuple[float, float]:
    """Seconds [first word start, last word end] of a row; the whole file
    (0, duration) when it has no `words`."""
    words = row.get("words") or []
    if not words:
        return 0.0, float(row["duration"])
    return float(words[0][1]), float(words[-1][2])


def build_session(
    waves: Sequence[Tensor],
    spans: Sequence[tuple[float, float]],
    plan: SessionPlan,
    sample_rate: int = 16000,
) -> tuple[Tensor, list[tuple[float, float]]]:
    """Utterance waves (S_i,) with their turn spans (seconds) -> the session wave
    (S,) and its speech segments (seconds), as `plan` says."""
    pieces, segments, position = [], [], 0
    for wave, (start, end), silence in zip(waves, spans, plan.silences):
        gap = round(silence * sample_rate)
        pieces += [torch.zeros(gap), wave.float()]
        position += gap
        segments.append((position / sample_rate + start, position / sample_rate + end))
        position += wave.numel()
    pieces.append(torch.zeros(round(plan.trailing * sample_rate)))
    session = torch.cat(pieces)  # (S,)
    if plan.noise is not None:
        session = add_session_noise(session, plan)  # (S,)
    return session, segments


def add_session_noise(session: Tensor, plan: SessionPlan) -> Tensor:
    """session (S,) + white or pink noise at plan.snr_db over the whole session.
    The noise is made at the next power of two and cut to S: the same noise, and
    an FFT (pink noise) of a length with large prime factors is 10x slower."""
    rng = np.random.default_rng(plan.noise_seed)
    makers = {"white": white_noise, "pink": pink_noise}
    n = session.numel()
    noise = makers[plan.noise](1 << max(0, n - 1).bit_length(), rng)[:n]  # (S,)
    clean = session.double().numpy()
    noise = scale_to_snr(clean, noise, plan.snr_db)  # (S,)
    return torch.from_numpy(clean + noise).float()


class VADSessionDataset(torch.utils.data.Dataset):
    """`dataset[i] -> {"audio": (S,), "labels": (T,), "segments": [(s, e)], "id"}`
    with T = S // hop frames of `frame_s`; session i starts with row i % rows."""

    def __init__(
        self,
        manifest: str | os.PathLike | Sequence[dict],
        sample_rate: int = 16000,
        frame_s: float = 0.01,
        n_utterances=(2, 4),
        gap_s=(0.2, 1.5),
        edge_s=(0.0, 1.0),
        noise_prob: float = 0.5,
        noise_snr_db=(5.0, 25.0),
        noise_kinds=("white", "pink"),
        sessions: int | None = None,
        seed: int | None = None,
        min_duration: float | None = None,
        max_duration: float | None = None,
        cache_audio: bool = False,
    ):
        self.audio = AudioTextDataset(
            manifest,
            sample_rate=sample_rate,
            min_duration=min_duration,
            max_duration=max_duration,
            cache_audio=cache_audio,
        )
        unknown = sorted(set(noise_kinds) - {"white", "pink"})
        if unknown:
            raise ValueError(f"noise_kinds {unknown}: use white and/or pink")
        self.sample_rate, self.frame_s = sample_rate, frame_s
        self.spans = [turn_span(row) for row in self.audio.rows]
        self.options = {
            "n_utterances": tuple(n_utterances),
            "gap_s": tuple(gap_s),
            "edge_s": tuple(edge_s),
            "noise_prob": float(noise_prob),
            "noise_snr_db": tuple(noise_snr_db),
            "noise_kinds": tuple(noise_kinds),
        }
        self.n_sessions = int(sessions) if sessions else len(self.audio)
        self.plans = None  # drawn per item from the global generator
        if seed is not None:  # fixed sessions, drawn once
            generator = torch.Generator().manual_seed(int(seed))
            self.plans = [self._plan(i, generator) for i in range(self.n_sessions)]

    def _plan(self, index: int, generator=None) -> SessionPlan:
        anchor = index % len(self.audio)
        return draw_plan(anchor, len(self.audio), **self.options, generator=generator)

    @property
    def durations(self) -> list[float]:
        """Seconds per session: exact for fixed sessions, else the anchor row's
        duration (sessions are drawn when loaded; bucketing by it means little)."""
        if self.plans is None:
            return [self.audio.durations[i % len(self.audio)] for i in range(len(self))]
        rows = self.audio.durations
        return [
            sum(rows[r] for r in plan.rows) + sum(plan.silences) + plan.trailing
            for plan in self.plans
        ]

    def __len__(self) -> int:
        return self.n_sessions

    def __getitem__(self, index: int) -> dict:
        plan = self.plans[index] if self.plans is not None else self._plan(index)
        waves = [self.audio[r]["audio"] for r in plan.rows]  # (S_i,) each
        spans = [self.spans[r] for r in plan.rows]
        wave, segments = build_session(waves, spans, plan, self.sample_rate)
        n_frames = wave.numel() // round(self.frame_s * self.sample_rate)  # T
        return {
            "audio": wave,  # (S,)
            "labels": frame_labels(segments, n_frames, self.frame_s),  # (T,)
            "segments": segments,
            "id": f"session{index:05d}",
        }


def collate_vad(items: Sequence[dict]) -> dict:
    """-> {"audio": (B, S), "audio_lens": (B,), "labels": (B, T) zero-padded,
    "label_lens": (B,), "segments": list, "ids": list[str]}."""
    if not items:
        raise ValueError("cannot collate an empty batch")
    audio_lens = torch.tensor([item["audio"].numel() for item in items])  # (B,)
    label_lens = torch.tensor([item["labels"].numel() for item in items])  # (B,)
    audio = torch.zeros(len(items), int(audio_lens.max()))  # (B, S)
    labels = torch.zeros(len(items), int(label_lens.max()))  # (B, T)
    for b, item in enumerate(items):
        audio[b, : audio_lens[b]] = item["audio"]
        labels[b, : label_lens[b]] = item["labels"]
    return {
        "audio": audio,
        "audio_lens": audio_lens,
        "labels": labels,
        "label_lens": label_lens,
        "segments": [item["segments"] for item in items],
        "ids": [item["id"] for item in items],
    }
