"""Verification trial lists: balanced, labelled right, repeatable."""

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
