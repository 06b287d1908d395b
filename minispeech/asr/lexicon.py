"""Words of a label sequence, and the lexicon constraint of beam searches.

A beam search over characters or word pieces can spell anything; with a closed
vocabulary it should only spell known words. Lexicon-based decoding (Collobert et al.
2016, "Wav2Letter", arXiv:1609.03193, Sec. 2.4; the lexicon decoder of flashlight)
keeps a hypothesis only while its unfinished word is the beginning of a lexicon word
and every completed word is in the lexicon; a finished hypothesis must also end on a
whole word. CTC prefix beam search (`ctc_decoding.py`), transducer beam search
(`rnnt_decoding.py`) and the AED beam (`aed_decoding.py`) use this one `WordState`.

Words are split as the tokenizers write them: a " " token separates words, and a
SentencePiece piece that starts with "\u2581" (or " ") starts a new one.
"""

from typing import Iterable, Sequence

import torch

SP_SPACE = "\u2581"  # SentencePiece's word-start mark


def is_word_start(piece: str) -> bool:
    """Does this token begin a new word (or separate two)?"""
    return piece == " " or piece.startswith((" ", SP_SPACE))


class WordState:
    """The words of label sequences, built one token at a time from the parent's
    state and cached: tokens -> (completed words, unfinished word, allowed)."""

    def __init__(self, token_to_text: Sequence[str], lexicon: Iterable[str] | None):
        self.token_to_text = token_to_text
        self.lexicon = None if lexicon is None else frozenset(lexicon)
        self.starts = None  # every beginning of a lexicon word, "" included
        if self.lexicon is not None:
            self.starts = {w[:i] for w in self.lexicon for i in range(len(w) + 1)}
        self.states = {(): ((), "", True)}
        self.next_masks = {}  # unfinished word -> (V,) bool, see next_allowed

    def __call__(self, tokens: tuple) -> tuple[tuple, str, bool]:
        """(completed words, unfinished word, allowed by the lexicon so far)."""
        if tokens not in self.states:  # usually the parent is cached: one step
            words, partial, allowed = self(tokens[:-1])
            piece = self.token_to_text[tokens[-1]]
            if is_word_start(piece):
                words, allowed = self._complete(words, partial, allowed)
                partial = piece.lstrip(" " + SP_SPACE)
            else:
                partial += piece
            if self.starts is not None and partial not in self.starts:
                allowed = False
            self.states[tokens] = (words, partial, allowed)
        return self.states[tokens]

    def allows(self, tokens: tuple) -> bool:
        """Can this prefix still become a sequence of lexicon words?"""
        return self(tokens)[2]

    def next_allowed(self, tokens: tuple) -> torch.Tensor:
        """(V,) bool over token ids: does tokens + (v,) stay allowed? The same as
        `allows(tokens + (v,))` for every v, computed from the unfinished word alone
        (and cached by it), without building V new states."""
        words, partial, allowed = self(tokens)
        if not allowed:
            return torch.zeros(len(self.token_to_text), dtype=torch.bool)
        if partial not in self.next_masks:
            ends_word = not partial or self.lexicon is None or partial in self.lexicon
            self.next_masks[partial] = torch.tensor(
                [self._continues(partial, ends_word, p) for p in self.token_to_text],
                dtype=torch.bool,
            )
        return self.next_masks[partial]

    def _continues(self, partial: str, ends_word: bool, piece: str) -> bool:
        if self.starts is None:
            return True
        if is_word_start(piece):  # completes `partial`, starts a new word
            return ends_word and piece.lstrip(" " + SP_SPACE) in self.starts
        return partial + piece in self.starts

    def finished(self, tokens: tuple) -> tuple[tuple, bool]:
        """All words, the unfinished one completed, and whether they are all known."""
        words, partial, allowed = self(tokens)
        return self._complete(words, partial, allowed)

    def _complete(self, words: tuple, partial: str, allowed: bool):
        if not partial:
            return words, allowed
        if self.lexicon is not None and partial not in self.lexicon:
            allowed = False
        return words + (partial,), allowed


def drop_unfinished_word(tokens: tuple, token_to_text: Sequence[str]) -> tuple:
    """The tokens before the last word's start: when a lexicon search ends inside a
    word (too few frames to finish one), its completed words."""
    for i in range(len(tokens) - 1, -1, -1):
        if is_word_start(token_to_text[tokens[i]]):
            return tokens[:i]  # a " " before the word goes too
    return ()


def load_lexicon(path) -> frozenset:
    """The words of a lexicon file: an ARPA n-gram LM (its unigrams, without <s>,
    </s>, <unk>) or a word list, one word per line (only the first field is read,
    so a flashlight-style "word  spelling" lexicon works too)."""
    from minispeech.asr.ngram_lm import NGramLM

    with open(path, encoding="utf-8") as f:
        lines = [line.split() for line in f]
    first = next((fields for fields in lines if fields), None)
    if first is None:
        raise ValueError(f"{path}: the lexicon is empty")
    if first == ["\\data\\"]:
        return NGramLM.load(path).words()
    return frozenset(fields[0] for fields in lines if fields)


def read_lexicon(decoding: dict, cache: dict) -> frozenset | None:
    """The words of `decoding.lexicon` (a path; None when absent), read once into
    `cache` (the model's own dict): the file is not part of the model."""
    from minispeech.core.config import ConfigError

    path = decoding.get("lexicon")
    if not path:
        return None
    if path not in cache:
        try:
            cache[path] = load_lexicon(path)
        except (OSError, ValueError, UnicodeDecodeError) as error:
            raise ConfigError(f"model.decoding.lexicon: {error}") from None
    return cache[path]
