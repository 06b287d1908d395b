"""Tokenizers: round trips on corpus-like text, files, unknown characters."""

import json
import pickle
import random

import pytest

from minispeech.data.tokenizers import (
    CharTokenizer,
    SentencePieceTokenizer,
    load_tokenizer,
)

WORDS = "turn the light on off call it's don't monday red blue seven o'clock".split()


def corpus_like(n: int, seed: int = 0) -> list[str]:
    """Lowercase words, digit strings and apostrophes, like the bundled corpus."""
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(1, 6))]
        if rng.random() < 0.5:
            words.insert(rng.randint(0, len(words)), str(rng.randint(0, 99999)))
        texts.append(" ".join(words))
    return texts


def test_char_round_trip_and_sorted_vocab():
    texts = corpus_like(200)
    tok = CharTokenizer.from_texts(texts)
    assert tok.tokens == sorted(set("".join(texts)))
    assert tok.vocab_size == len(tok.tokens)
    for text in texts + ["  turn  on "]:
        ids = tok.encode(text)
        assert len(ids) == len(text) and max(ids) < tok.vocab_size
        assert tok.decode(ids) == text


def test_char_save_load_keeps_space_and_order(tmp_path):
    labels = [" "] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["'"]  # NeMo's
    tok = CharTokenizer(labels)
    files = tok.save(tmp_path)
    assert files == [tmp_path / "vocab.txt"]
    lines = (tmp_path / "vocab.txt").read_text().splitlines()
    assert lines[0] == "<space>" and lines[1] == "a" and lines[-1] == "'"
    loaded = load_tokenizer(tmp_path)
    assert isinstance(loaded, CharTokenizer) and loaded.tokens == labels
    assert loaded.encode("it's a") == [9, 20, 27, 19, 0, 1]


def test_char_errors():
    tok = CharTokenizer.from_texts(["abc d"])
    with pytest.raises(ValueError, match=r"'é' \(U\+00E9\) in 'cé' is not in"):
        tok.encode("cé")
    with pytest.raises(ValueError, match=r"ids \[5, -1\] outside 0..4"):
        tok.decode([0, 5, -1])
    with pytest.raises(ValueError, match="duplicate"):
        CharTokenizer(["a", "a"])
    with pytest.raises(ValueError, match="single chars"):
        CharTokenizer(["ab", "\n"])
    with pytest.raises(ValueError, match="empty"):
        CharTokenizer.from_texts(["", ""])


@pytest.mark.parametrize("model_type", ["bpe", "unigram"])
def test_sentencepiece_round_trip_files_and_determinism(tmp_path, model_type):
    texts = corpus_like(300)
    tok = SentencePieceTokenizer.train(texts, tmp_path / "a", 48, model_type=model_type)
    assert tok.vocab_size == 48 and tok.tokens[0] == "<unk>"
    for text in texts + corpus_like(50, seed=1):  # unseen sentences, seen characters
        assert tok.decode(tok.encode(text)) == text
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "tokenizer.model",
        "vocab.txt",
    ]
    assert (tmp_path / "a" / "vocab.txt").read_text().splitlines() == tok.tokens
    again = SentencePieceTokenizer.train(texts, tmp_path / "b", 48, model_type)
    assert again.model_proto == tok.model_proto  # deterministic training
    loaded = load_tokenizer(tmp_path / "a")
    assert isinstance(loaded, SentencePieceTokenizer)
    assert loaded.encode(texts[0]) == tok.encode(texts[0])
    unpickled = pickle.loads(pickle.dumps(tok))  # DataLoader workers pickle it
    assert unpickled.encode(texts[1]) == tok.encode(texts[1])


def test_sentencepiece_subwords_shorten_sequences(tmp_path):
    texts = corpus_like(300)
    tok = SentencePieceTokenizer.train(texts, tmp_path, 64)
    chars = CharTokenizer.from_texts(texts)
    n_sub = sum(len(tok.encode(t)) for t in texts)
    assert n_sub < 0.7 * sum(len(chars.encode(t)) for t in texts)


def test_sentencepiece_errors(tmp_path):
    tok = SentencePieceTokenizer.train(corpus_like(100), tmp_path, 40)
    with pytest.raises(ValueError, match=r"never seen in training: 'x' \(U\+0078\)"):
        tok.encode("turn x on")
    with pytest.raises(ValueError, match="outside 0..39"):
        tok.decode([40])
    with pytest.raises(ValueError, match="Vocabulary size too high"):
        SentencePieceTokenizer.train(["ab ba"], tmp_path / "big", 500)
    with pytest.raises(ValueError, match="bpe or unigram"):
        SentencePieceTokenizer.train(["ab"], tmp_path, 10, model_type="word")
    with pytest.raises(FileNotFoundError, match="neither tokenizer.model nor vocab"):
        load_tokenizer(tmp_path / "nothing")


def test_round_trip_on_bundled_corpus(corpus_dir, tmp_path):
    lines = (corpus_dir / "train.jsonl").read_text().splitlines()
    texts = [json.loads(line)["text"] for line in lines if line.strip()]
    chars = CharTokenizer.from_texts(texts)
    sub = SentencePieceTokenizer.train(texts, tmp_path, 128)
    for text in texts:
        assert chars.decode(chars.encode(text)) == text
        assert sub.decode(sub.encode(text)) == text
