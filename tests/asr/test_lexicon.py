"""Lexicon files and the word state of label sequences (characters and pieces)."""

import pytest

from minispeech.asr.lexicon import WordState, drop_unfinished_word, load_lexicon
from minispeech.asr.ngram_lm import NGramLM


def test_lexicon_files_word_list_flashlight_and_arpa(tmp_path):
    plain = tmp_path / "words.txt"
    plain.write_text("cat\n\ndog\ncat\n")
    assert load_lexicon(plain) == {"cat", "dog"}
    flashlight = tmp_path / "lexicon.txt"
    flashlight.write_text("cat c a t |\ndog d o g |\n")  # word, then its spelling
    assert load_lexicon(flashlight) == {"cat", "dog"}
    arpa = NGramLM.train(["the cat", "a dog"], order=2).save(tmp_path / "lm.arpa")
    assert load_lexicon(arpa) == {"the", "cat", "a", "dog"}  # no <s> </s> <unk>
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n")
    with pytest.raises(ValueError, match="empty.txt: the lexicon is empty"):
        load_lexicon(empty)


def test_word_state_characters():
    chars = ["", " ", "c", "a", "t", "s"]
    words = WordState(chars, {"cat", "cats", "sat"})
    ids = {c: i for i, c in enumerate(chars)}

    def spell(text):
        return tuple(ids[c] for c in text)

    assert words(spell(" cat  ca")) == (("cat",), "ca", True)
    assert words.allows(spell("cats sa"))
    assert not words.allows(spell("cast"))  # "cas" begins no word
    assert not words.allows(spell("ca sat"))  # "ca" completed, not a word
    assert words.finished(spell("cat sat")) == (("cat", "sat"), True)
    assert words.finished(spell("cat ca")) == (("cat", "ca"), False)
    assert drop_unfinished_word(spell("cat ca"), chars) == spell("cat")
    assert drop_unfinished_word(spell("ca"), chars) == ()


def test_word_state_sentencepiece_pieces():
    pieces = ["<blank>", "\u2581the", "\u2581ca", "t", "s"]
    words = WordState(pieces, {"the", "cat", "cats"})
    assert words((1, 2, 3, 4)) == (("the",), "cats", True)
    assert words.finished((1, 2, 3)) == (("the", "cat"), True)
    assert not words.allows((2, 4))  # "cas"
    assert drop_unfinished_word((1, 2), pieces) == (1,)
    unconstrained = WordState(pieces, None)
    assert unconstrained.finished((2, 4)) == (("cas",), True)
