"""Derived sets: noise at an SNR, conversations with RTTM, verification trials."""

import json
import random

import numpy as np
import pytest

from minispeech.data.derived import (
    Segment,
    conversations,
    make_conversation,
    noisy_examples,
    pink_noise,
    read_rttm,
    rttm_lines,
    scale_to_snr,
    snr_db,
    verification_trials,
    white_noise,
    write_rttm,
    write_trials,
)


def _rows(corpus_dir, name="test", limit=None):
    rows = [json.loads(line) for line in open(corpus_dir / f"{name}.jsonl")]
    rows = rows[:limit] if limit else rows
    for row in rows:
        row["audio_filepath"] = str(corpus_dir / row["audio_filepath"])
    return rows


def _snr_reference(clean, noise) -> float:
    """The textbook definition, as a float64 loop."""
    p_clean = sum(float(c) ** 2 for c in clean) / len(clean)
    p_noise = sum(float(n) ** 2 for n in noise) / len(noise)
    return 10.0 * np.log10(p_clean / p_noise)


def test_scale_to_snr_hits_target():
    rng = np.random.default_rng(0)
    clean = rng.standard_normal(4000).astype(np.float32)
    for target in (-5.0, 0.0, 7.3, 20.0):
        noise = scale_to_snr(clean, 3.0 * white_noise(4000, rng), target)
        assert abs(_snr_reference(clean, noise) - target) < 1e-3
        assert abs(snr_db(clean, noise) - target) < 1e-3


def test_pink_noise_spectrum_falls_by_3db_per_octave():
    rng = np.random.default_rng(1)
    x = pink_noise(2**16, rng)
    power = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x))
    slope = np.polyfit(np.log10(freqs[10:]), np.log10(power[10:]), 1)[0]
    assert abs(slope + 1.0) < 0.05  # power ~ f^-1
    white = np.abs(np.fft.rfft(white_noise(2**16, rng))) ** 2
    assert abs(np.polyfit(np.log10(freqs[10:]), np.log10(white[10:]), 1)[0]) < 0.05


def test_noisy_examples_reach_snr_for_every_kind(corpus_dir):
    rows = _rows(corpus_dir, limit=12)
    examples = noisy_examples(rows, seed=3, snr_range=(0.0, 10.0))
    assert {e.kind for e in examples} == {"white", "pink", "babble"}
    for e in examples:
        assert abs(_snr_reference(e.clean, e.noisy - e.clean) - e.snr_db) < 0.1
    again = noisy_examples(rows, seed=3)
    assert all(np.array_equal(a.noisy, b.noisy) for a, b in zip(examples, again))


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
    rows = _rows(corpus_dir)
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


def test_verification_trials_balanced_and_correct(corpus_dir, tmp_path):
    rows = _rows(corpus_dir)
    speaker_of = {r["audio_filepath"]: r["speaker"] for r in rows}
    trials = verification_trials(rows, n_trials=200, seed=9)
    assert sum(label for label, _, _ in trials) == 100 and len(trials) == 200
    for label, a, b in trials:
        assert a != b
        assert label == int(speaker_of[a] == speaker_of[b])
    assert trials == verification_trials(rows, n_trials=200, seed=9)
    assert trials != verification_trials(rows, n_trials=200, seed=10)
    write_trials(tmp_path / "trials.txt", trials)
    first = (tmp_path / "trials.txt").read_text().splitlines()[0].split()
    assert first[0] in ("0", "1") and len(first) == 3
