"""WER/CER against jiwer and a brute-force recursive edit distance."""

import functools
import importlib
import random

import jiwer
import pytest

from minispeech.metrics.wer import (
    ErrorCounts,
    cer,
    char_errors,
    edit_alignment,
    wer,
    word_errors,
)


def brute_distance(ref: tuple, hyp: tuple) -> int:
    """Levenshtein distance straight from its recursive definition (tiny inputs)."""

    @functools.lru_cache(maxsize=None)
    def dist(i: int, j: int) -> int:
        if i == 0 or j == 0:
            return i + j
        return min(
            dist(i - 1, j - 1) + (ref[i - 1] != hyp[j - 1]),
            dist(i - 1, j) + 1,
            dist(i, j - 1) + 1,
        )

    return dist(len(ref), len(hyp))


def random_sentence(rng: random.Random, words: list[str], max_len: int) -> str:
    return " ".join(rng.choice(words) for _ in range(rng.randint(0, max_len)))


def test_hand_worked_example():
    # ref "the cat sat on the mat" / hyp "big the cat sit on mat": "big" extra (I),
    # sat->sit (S), second "the" missing (D).
    counts = word_errors(["the cat sat on the mat"], ["big the cat sit on mat"])
    assert counts == ErrorCounts(substitutions=1, deletions=1, insertions=1, ref_len=6)
    assert counts.errors == 3 and counts.rate == pytest.approx(0.5)


def test_alignment_ops_in_reading_order():
    assert edit_alignment("ab", "b") == [("delete", "a", None), ("equal", "b", "b")]
    ops = edit_alignment(["a", "b", "c"], ["a", "x", "c", "d"])
    assert ops == [
        ("equal", "a", "a"),
        ("substitute", "b", "x"),
        ("equal", "c", "c"),
        ("insert", None, "d"),
    ]
    assert edit_alignment([], []) == []
    assert edit_alignment([], ["z"]) == [("insert", None, "z")]


def test_alignment_is_consistent_and_minimal_vs_brute_force():
    rng = random.Random(0)
    for _ in range(400):
        ref = tuple(rng.choice("abc") for _ in range(rng.randint(0, 6)))
        hyp = tuple(rng.choice("abc") for _ in range(rng.randint(0, 6)))
        ops = edit_alignment(ref, hyp)
        # The alignment spells out both sequences ...
        assert tuple(r for _, r, _ in ops if r is not None) == ref
        assert tuple(h for _, _, h in ops if h is not None) == hyp
        for op, r, h in ops:
            assert (op == "equal") == (r == h)
        # ... and its cost is the true edit distance.
        cost = sum(op != "equal" for op, _, _ in ops)
        assert cost == brute_distance(ref, hyp)


def test_hirschberg_split_is_a_minimal_alignment(monkeypatch):
    """Pairs too long for a full table (forced here by a tiny limit) are aligned in
    linear memory: the alignment still spells both sequences and costs the minimum."""
    wer_module = importlib.import_module("minispeech.metrics.wer")
    monkeypatch.setattr(wer_module, "MAX_TABLE_CELLS", 4)
    rng = random.Random(1)
    for _ in range(300):
        ref = tuple(rng.choice("abcd") for _ in range(rng.randint(0, 9)))
        hyp = tuple(rng.choice("abcd") for _ in range(rng.randint(0, 9)))
        ops = edit_alignment(ref, hyp)
        assert tuple(r for _, r, _ in ops if r is not None) == ref
        assert tuple(h for _, _, h in ops if h is not None) == hyp
        for op, r, h in ops:
            assert (op == "equal") == (r == h)
        assert sum(op != "equal" for op, _, _ in ops) == brute_distance(ref, hyp)


def test_long_transcripts_match_jiwer_total_errors():
    """A 3,000-character pair goes through the linear-memory path: the total number
    of errors equals jiwer's (the S/D/I split may differ where alignments tie)."""
    rng = random.Random(2)
    words = ["one", "two", "three", "blue", "monday", "nina", "open", "the"]
    ref = " ".join(rng.choice(words) for _ in range(600))
    hyp = " ".join(w for w in ref.split() if rng.random() > 0.1)
    hyp = "".join(c if rng.random() > 0.05 else rng.choice("abc ") for c in hyp)
    ours = char_errors([ref], [hyp])
    theirs = jiwer.process_characters(ref, hyp)
    expected = theirs.substitutions + theirs.deletions + theirs.insertions
    assert len(ref) * len(hyp) > 20 * 200_000
    assert ours.errors == expected and ours.ref_len == len(ref)


def test_word_counts_identical_to_jiwer_on_random_pairs():
    rng = random.Random(1)
    words = ["one", "two", "three", "red", "blue", "go", "stop", "it's"]
    refs = [random_sentence(rng, words, 9) or "go" for _ in range(300)]
    hyps = [random_sentence(rng, words[: rng.randint(2, 8)], 9) for _ in range(300)]
    for ref, hyp in zip(refs, hyps):  # per pair: S, D, I split, not only the total
        ours, theirs = word_errors([ref], [hyp]), jiwer.process_words(ref, hyp)
        split = (theirs.substitutions, theirs.deletions, theirs.insertions)
        assert (ours.substitutions, ours.deletions, ours.insertions) == split
    assert wer(refs, hyps) == pytest.approx(jiwer.wer(refs, hyps), abs=1e-12)


def test_cer_identical_to_jiwer_on_random_pairs():
    rng = random.Random(2)
    words = ["ab", "ba", "abc", "c", "9", "don't"]
    refs = [random_sentence(rng, words, 6) or "ab" for _ in range(200)]
    hyps = [random_sentence(rng, words, 6) for _ in range(200)]
    theirs = jiwer.process_characters(refs, hyps)
    ours = char_errors(refs, hyps)
    split = (theirs.substitutions, theirs.deletions, theirs.insertions)
    assert (ours.substitutions, ours.deletions, ours.insertions) == split
    assert cer(refs, hyps) == pytest.approx(jiwer.cer(refs, hyps), abs=1e-12)


def test_corpus_level_not_average_of_utterances():
    # 1 error in a 1-word sentence + 0 errors in a 3-word one: 1/4, not mean(1, 0).
    assert wer(["a", "b c d"], ["x", "b c d"]) == pytest.approx(0.25)


def test_whitespace_is_normalized_for_words_and_stripped_for_chars():
    assert wer(["  hello   world "], ["hello world"]) == 0.0
    assert cer([" ab c "], ["ab c"]) == 0.0
    assert cer(["ab  c"], ["ab c"]) == pytest.approx(1 / 5)  # inner space counts


def test_empty_references():
    # An empty sentence inside a non-empty corpus: hypothesis words are insertions.
    assert word_errors(["", "a b"], ["x y", "a b"]) == ErrorCounts(0, 0, 2, 2)
    assert wer(["", "a b"], ["x y", "a b"]) == pytest.approx(1.0)
    # A corpus with no reference tokens at all: 0.0 if nothing was said, else inf.
    assert wer([""], [""]) == 0.0 and cer(["", " "], ["", ""]) == 0.0
    assert wer([""], ["hello"]) == float("inf")
    assert cer([], []) == 0.0


def test_bad_arguments():
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        wer(["a", "b"], ["a"])
    with pytest.raises(TypeError, match="lists of strings"):
        wer("a b", "a b")
    with pytest.raises(TypeError, match="hyps must hold strings"):
        cer(["a"], [None])
