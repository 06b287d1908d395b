"""Simulated conversations and RTTM round trips."""

import random

import numpy as np
import pytest
from conftest import corpus_rows

from minispeech.diarization.rttm import Segment, read_rttm, rttm_lines, write_rttm
from minispeech.diarization.simulate import conversations, make_conversation


def test_conversation_segments_match_audio():
    rng = random.Random(0)
    turns = []
    for k in range(10):
        n = rng.randint(8000, 24000)
        tone = 0.3 * np.sin(2 * np.pi * (200 + 50 * k) * np.arange(n) / 16000)
        turns.append((tone.astype(np.float32), f"s{k % 3}"))
    wave, segments = make_conversation(turns, rng, gap_range=(-0.4, 0.8))
    inside = np.zeros(len(wave), bool)
    for s in segments:
        a, b = round(s.start * 16000), round((s.start + s.duration) * 16000)
        inside[a:b] = True
        assert np.sqrt(np.mean(wave[a:b] ** 2)) > 0.1  # speech energy in every turn
    assert np.all(wave[~inside] == 0.0) and (~inside).any()  # silence outside
    starts = [s.start for s in segments]
    assert starts == sorted(starts)
    pairs = zip(segments, segments[1:])
    overlap = sum(1 for x, y in pairs if y.start < x.start + x.duration)
    assert overlap > 0  # the gap range includes overlaps


def test_conversations_from_corpus_and_rttm_roundtrip(corpus_dir, tmp_path):
    rows = corpus_rows(corpus_dir)
    recs = conversations(rows, n_recordings=2, seed=5)
    for rec, wave, segments in recs:
        assert 2 <= len({s.speaker for s in segments}) <= 3
        assert all(a.speaker != b.speaker for a, b in zip(segments, segments[1:]))
        end = max(s.start + s.duration for s in segments)
        assert abs(end - len(wave) / 16000) < 1e-6
        write_rttm(tmp_path / f"{rec}.rttm", rec, segments)
        back = read_rttm(tmp_path / f"{rec}.rttm")[rec]
        assert [(b.speaker, round(b.start, 3)) for b in back] == [
            (s.speaker, round(s.start, 3)) for s in segments
        ]
    line = rttm_lines("conv", [Segment(1.5, 2.25, "m21")])[0]
    assert line == "SPEAKER conv 1 1.500 2.250 <NA> <NA> m21 <NA> <NA>"
    (tmp_path / "bad.rttm").write_text("SPEAKER x 1 0.0\n")
    with pytest.raises(ValueError, match="bad.rttm:1"):
        read_rttm(tmp_path / "bad.rttm")
