"""Simulated conversations: corpus utterances of 2-3 speakers placed turn by turn.

Silence-trimmed utterances follow each other with a gap drawn from an interval that
includes negative values (overlap); the exact extent of every turn is the reference
(written as RTTM by minispeech/diarization/rttm.py).
"""

import random

import numpy as np

from minispeech.audio.io import load_audio
from minispeech.diarization.rttm import Segment


def make_conversation(
    turns: list[tuple[np.ndarray, str]],
    rng: random.Random,
    gap_range=(-0.4, 0.8),
    sample_rate: int = 16000,
):
    """Place (wave, speaker) turns one after another with random gaps; a negative
    gap overlaps the previous turn (never by more than half of it).

    Returns the mixed wave (S,) and one Segment per turn (its exact extent)."""
    starts, end = [], 0  # end: where the latest turn so far stops
    for k, (wave, _) in enumerate(turns):
        start = 0
        if k > 0:
            gap = int(round(rng.uniform(*gap_range) * sample_rate))
            gap = max(gap, -len(turns[k - 1][0]) // 2)
            start = max(starts[-1] + 1, end + gap)
        starts.append(start)
        end = max(end, start + len(wave))
    mix = np.zeros(max(s + len(w) for s, (w, _) in zip(starts, turns)), np.float32)
    segments = []
    for start, (wave, speaker) in zip(starts, turns):
        mix[start : start + len(wave)] += wave
        segments.append(Segment(start / sample_rate, len(wave) / sample_rate, speaker))
    return mix, segments


def conversations(
    rows: list[dict],
    n_recordings: int,
    seed: int,
    n_speakers=(2, 3),
    n_turns=(8, 12),
    gap_range=(-0.4, 0.8),
) -> list:
    """`n_recordings` conversations from `rows` (absolute paths, a `speaker` field):
    list of (recording id, wave (S,), [Segment, ...]). No speaker talks twice in a
    row, so every overlap is between two different speakers."""
    rng = random.Random(seed)
    by_speaker: dict[str, list[dict]] = {}
    for row in rows:
        by_speaker.setdefault(row["speaker"], []).append(row)
    names = sorted(by_speaker)
    out = []
    for r in range(n_recordings):
        chosen = rng.sample(names, rng.randint(*n_speakers))
        order, previous = [], None
        for _ in range(rng.randint(*n_turns)):
            previous = rng.choice([s for s in chosen if s != previous])
            order.append(previous)
        paths = [rng.choice(by_speaker[s])["audio_filepath"] for s in order]
        turns = [(load_audio(path)[0].numpy(), s) for path, s in zip(paths, order)]
        wave, segments = make_conversation(turns, rng, gap_range)
        out.append((f"conv{r:03d}", wave, segments))
    return out
