"""Word n-gram LM (interpolated modified Kneser-Ney): hand-worked counts and
probabilities, normalisation, ARPA round trip."""

import json
import math

import pytest

from minispeech.asr.ngram_lm import (
    NGramLM,
    adjusted_counts,
    count_ngrams,
    kneser_ney_discounts,
)

CORPUS = [
    "the cat sat on the mat",
    "the dog sat on the log",
    "a cat and a dog",
    "the cat ate",
    "on the mat the cat sat",
]


def _total(lm, context):
    words = sorted(lm.vocab)  # every word + </s> + <unk>
    return sum(math.exp(lm.score(w, context)) for w in words)


def test_counts_on_a_hand_worked_corpus():
    counts = count_ngrams(["a b", "b"], order=2)  # <s> a b </s>, <s> b </s>
    bigrams = {("<s>", "a"): 1, ("a", "b"): 1, ("b", "</s>"): 2, ("<s>", "b"): 1}
    assert counts[2] == bigrams
    assert counts[1] == {("<s>",): 2, ("a",): 1, ("b",): 2, ("</s>",): 2}
    # unigrams use continuation counts: b follows <s> and a; </s> only follows b
    lower = adjusted_counts(counts, 1, order=2)
    assert {g: c for g, c in lower.items() if g != ("<s>",)} == {
        ("a",): 1,
        ("b",): 2,
        ("</s>",): 1,
    }
    assert adjusted_counts(counts, 2, order=2) == counts[2]  # highest order: raw


def test_probabilities_on_a_hand_worked_corpus():
    """D = 0.5 everywhere. Unigrams: continuation counts a=1, b=2, </s>=1 (sum 4),
    gamma = 0.5 * 3 / 4 = 0.375 spread over |V| = 4 words (a, b, </s>, <unk>)."""
    lm = NGramLM.train(["a b", "b"], order=2, discounts=(0.5, 0.5, 0.5))
    p = {w: math.exp(lm.score(w)) for w in ("a", "b", "</s>", "<unk>")}
    assert p == pytest.approx(
        {"a": 0.21875, "b": 0.46875, "</s>": 0.21875, "<unk>": 0.09375}
    )
    # after <s>: a and b seen once each, gamma = 0.5 * 2 / 2 = 0.5
    assert math.exp(lm.score("a", ["<s>"])) == pytest.approx(0.25 + 0.5 * 0.21875)
    assert math.exp(lm.score("</s>", ["<s>"])) == pytest.approx(0.5 * 0.21875)
    # after b: </s> twice (D = 0.5), gamma = 0.5 / 2
    assert math.exp(lm.score("</s>", ["b"])) == pytest.approx(0.75 + 0.25 * 0.21875)
    # an unseen word is <unk>; an unseen context backs off with weight 1
    assert lm.score("zebra", ["a"]) == lm.score("<unk>", ["a"])
    assert lm.score("b", ["zebra"]) == pytest.approx(lm.score("b"))


def test_modified_kneser_ney_discounts():
    # n1..n4 = 4, 2, 1, 1: Y = 4 / 8; D1 = 1 - 2Y 2/4, D2 = 2 - 3Y 1/2, D3+ = 3 - 4Y
    d = kneser_ney_discounts({1: 4, 2: 2, 3: 1, 4: 1})
    assert d == pytest.approx((0.5, 1.25, 1.0))
    assert kneser_ney_discounts({1: 3}) == pytest.approx((1.0, 1.0, 1.5))  # fallbacks


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_distributions_sum_to_one(order):
    lm = NGramLM.train(CORPUS, order=order)
    contexts = [
        (),
        ("<s>",),
        ("<s>", "the"),
        ("the", "cat"),
        ("on", "the"),
        ("cat", "zebra"),
        ("zebra",),
        ("a", "dog", "sat"),
    ]
    for context in contexts:
        assert _total(lm, context) == pytest.approx(1.0, abs=1e-9), context


def test_seen_continuations_beat_unseen_ones():
    lm = NGramLM.train(CORPUS, order=3)
    assert lm.score("mat", ["on", "the"]) > lm.score("dog", ["on", "the"])
    assert lm.sentence_score("the cat sat on the mat") > lm.sentence_score(
        "mat the on sat cat the"
    )


def test_arpa_round_trip(tmp_path):
    lm = NGramLM.train(CORPUS, order=3)
    path = lm.save(tmp_path / "lm.arpa")
    text = path.read_text()
    assert text.startswith("\\data\\\nngram 1=") and "\\3-grams:" in text
    loaded = NGramLM.load(path)
    assert loaded.order == 3 and loaded.vocab == lm.vocab
    for context in [(), ("<s>",), ("the", "cat"), ("zebra", "on")]:
        for word in sorted(lm.vocab):
            assert loaded.score(word, context) == pytest.approx(
                lm.score(word, context), abs=1e-8
            )


def test_save_that_fails_keeps_the_old_file(tmp_path, monkeypatch):
    path = NGramLM.train(CORPUS, order=2).save(tmp_path / "lm.arpa")
    before = path.read_bytes()

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        NGramLM.train(CORPUS, order=3).save(path)
    assert path.read_bytes() == before  # still the complete 2-gram file
    assert [p.name for p in tmp_path.iterdir()] == ["lm.arpa"]  # no temporary left


def test_load_names_the_bad_line(tmp_path):
    path = tmp_path / "bad.arpa"
    path.write_text("\\data\\\nngram 1=1\n\n\\1-grams:\n-1.0\n")
    with pytest.raises(ValueError, match=r"bad.arpa:5"):
        NGramLM.load(path)


def test_from_manifest(tmp_path):
    manifest = tmp_path / "train.jsonl"
    rows = [
        {"audio_filepath": f"{i}.wav", "duration": 1.0, "text": t}
        for i, t in enumerate(CORPUS)
    ]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    lm = NGramLM.from_manifest(manifest, order=2)
    reference = NGramLM.train(CORPUS, order=2)
    assert lm.score("cat", ["the"]) == reference.score("cat", ["the"])
