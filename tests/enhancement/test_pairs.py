"""Noisy/clean pairs reach their SNR for every noise kind and repeat with the seed;
babble comes from other speakers; `corpus noisy` writes a pairs manifest."""

import json

import numpy as np
import pytest
import soundfile as sf
from conftest import corpus_rows

from minispeech.audio.noise import NOISE_KINDS
from minispeech.data.manifest import read_manifest
from minispeech.enhancement.commands import noisy_verb
from minispeech.enhancement.pairs import (
    check_kinds,
    noisy_examples,
    pick_babble,
    speaker_groups,
    speaker_keys,
)


def _snr_reference(clean, noise) -> float:
    """The textbook definition, as a float64 loop."""
    p_clean = sum(float(c) ** 2 for c in clean) / len(clean)
    p_noise = sum(float(n) ** 2 for n in noise) / len(noise)
    return 10.0 * np.log10(p_clean / p_noise)


def test_noisy_examples_reach_snr_for_every_kind(corpus_dir):
    rows = corpus_rows(corpus_dir, limit=12)
    examples = noisy_examples(rows, seed=3, snr_range=(0.0, 10.0))
    assert {e.kind for e in examples} == {"white", "pink", "babble"}
    for e in examples:
        assert abs(_snr_reference(e.clean, e.noisy - e.clean) - e.snr_db) < 0.1
    again = noisy_examples(rows, seed=3)
    assert all(np.array_equal(a.noisy, b.noisy) for a, b in zip(examples, again))


def test_noisy_examples_of_the_new_kinds(corpus_dir):
    rows = corpus_rows(corpus_dir, limit=4)
    for kind in ("brown", "modulated", "bursts", "hum"):
        (e,) = noisy_examples(rows[:1], seed=1, snr_range=(5.0, 5.0), kinds=[kind])
        assert e.kind == kind and e.noisy.shape == e.clean.shape
        assert abs(_snr_reference(e.clean, e.noisy - e.clean) - 5.0) < 0.01
    with pytest.raises(ValueError, match="red"):
        check_kinds(["white", "red"])


def test_babble_picks_other_speakers_only():
    rows = [{"speaker": s} for s in "aaabbccd"] + [{}]  # the last: a speaker alone
    keys = speaker_keys(rows)
    groups = speaker_groups(keys)
    assert list(groups) == ["a", "b", "c", "d", "#row8"]
    rng = np.random.default_rng(0)
    for _ in range(50):
        picks = pick_babble(groups, "a", 3, rng)
        speakers = [keys[j] for j in picks]
        assert "a" not in speakers and len(set(speakers)) == 3
    assert len(pick_babble(groups, "b", 10, rng)) == 4  # all other speakers, once
    with pytest.raises(ValueError, match="other speakers"):
        pick_babble({"a": [0, 1]}, "a", 2, rng)


def test_corpus_noisy_accepts_new_kinds_and_writes_pairs(corpus_dir, tmp_path):
    manifest = tmp_path / "three.jsonl"
    rows = corpus_rows(corpus_dir, limit=3)
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "noisy"
    argv = [str(manifest), "--out", str(out), "--kinds", "hum", "bursts", "brown"]
    assert noisy_verb(argv + ["--snr", "5", "15", "--seed", "2"]) == 0
    written = read_manifest(out / "noisy.jsonl")
    assert {row["noise"] for row in written} <= {"hum", "bursts", "brown"}
    for row, clean_row in zip(written, rows):
        assert 5.0 <= row["snr_db"] <= 15.0
        assert (out / row["noisy_filepath"]).resolve() == (
            out / "audio" / f"{clean_row['audio_filepath'].split('/')[-1][:-5]}.wav"
        ).resolve()
        clean_path = (out / row["clean_filepath"]).resolve()
        assert str(clean_path) == clean_row["audio_filepath"]
        noisy, clean = sf.read(out / row["noisy_filepath"])[0], sf.read(clean_path)[0]
        assert noisy.shape == clean.shape
        # 16-bit quantization moves the SNR by far less than 0.1 dB at 5-15 dB
        assert abs(_snr_reference(clean, noisy - clean) - row["snr_db"]) < 0.1
    assert set(NOISE_KINDS) == {
        "white", "pink", "brown", "babble", "modulated", "bursts", "hum"
    }  # fmt: skip
