"""EnglishCharsTokenizer: NeMo's ids (shared/nemo_reference/fastpitch_tiny_io.json
`tokenizer`: the 45 tokens and the encodings of the two reference texts, written by
NeMo's own EnglishCharsTokenizer(punct, apostrophe, pad_with_space)) and the errors.
"""

import json
import pickle

import pytest

from minispeech.tts.tokenizer import EnglishCharsTokenizer, TokenizerError


@pytest.fixture
def tokenizer():
    return EnglishCharsTokenizer(punct=True, apostrophe=True, pad_with_space=True)


def test_matches_nemo_vocabulary_and_ids(nemo_ref, tokenizer):
    ref = json.loads((nemo_ref / "fastpitch_tiny_io.json").read_text())["tokenizer"]
    assert tokenizer.tokens == ref["tokens"]
    assert tokenizer.pad == ref["pad"] == 43
    assert tokenizer.oov == 44 and tokenizer.vocab_size == len(tokenizer) == 45
    for text, ids in zip(ref["texts"], ref["encoded"]):
        assert tokenizer.encode(text) == ids


def test_hand_worked_ids(tokenizer):
    # " " 0, h 8, i 9, ! 30, " " 0; upper case is lowered
    assert tokenizer.encode("Hi!") == [0, 8, 9, 30, 0]
    # runs of whitespace collapse, leading/trailing whitespace is dropped
    assert tokenizer.encode("  a \t\n b  ") == [0, 1, 0, 2, 0]
    plain = EnglishCharsTokenizer()  # NeMo's defaults: no space padding
    assert plain.encode("a b") == [1, 0, 2]
    assert plain.decode(plain.encode("don't, ok?")) == "don't, ok?"


def test_options_change_the_vocabulary():
    no_punct = EnglishCharsTokenizer(punct=False)
    assert no_punct.vocab_size == 30 and no_punct.pad == 28  # " ", a-z, ', pad, oov
    bare = EnglishCharsTokenizer(punct=False, apostrophe=False)
    assert bare.tokens[-3:] == ["z", "<pad>", "<oov>"]
    with pytest.raises(TokenizerError, match="','"):
        no_punct.encode("a, b")


@pytest.mark.parametrize(
    "text, char, position",
    [("route 66", "6", 6), ("café", "é", 3), ("a_b", "_", 1), ("50% off", "5", 0)],
)
def test_unknown_character_is_named_with_its_position(tokenizer, text, char, position):
    with pytest.raises(TokenizerError) as info:
        tokenizer.encode(text)
    message = str(info.value)
    assert repr(char) in message and f"position {position}" in message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text_raises(tokenizer, text):
    with pytest.raises(TokenizerError, match="empty"):
        tokenizer.encode(text)


def test_id_to_char_and_pickle(tokenizer):
    assert tokenizer.id_to_char(0) == " " and tokenizer.id_to_char(43) == "<pad>"
    with pytest.raises(TokenizerError):
        tokenizer.id_to_char(45)
    copy = pickle.loads(pickle.dumps(tokenizer))  # data loader workers pickle it
    assert copy.encode("hello") == tokenizer.encode("hello")
