"""Verification trial lists: balanced, labelled right, repeatable."""

from pathlib import Path

import pytest
from conftest import corpus_rows

from minispeech.speaker.trials import verification_trials, write_trials


def test_verification_trials_balanced_and_correct(corpus_dir, tmp_path):
    rows = corpus_rows(corpus_dir)
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


def test_trials_without_gender_and_relative_paths(corpus_dir, tmp_path):
    rows = [
        {k: v for k, v in r.items() if k != "gender"} for r in corpus_rows(corpus_dir)
    ]
    trials = verification_trials(rows, n_trials=40, seed=1, same_gender=1.0)
    assert sum(label for label, _, _ in trials) == 20
    path = write_trials(tmp_path / "sub" / "trials.txt", trials)
    for (label, a, b), line in zip(trials, path.read_text().splitlines()):
        fields = line.split()
        assert fields[0] == str(label)
        assert (path.parent / fields[1]).resolve() == Path(a).resolve()
        assert (path.parent / fields[2]).resolve() == Path(b).resolve()
    with pytest.raises(ValueError, match="cannot hold spaces"):
        write_trials(tmp_path / "t.txt", [(1, "a b.wav", "c.wav")])
