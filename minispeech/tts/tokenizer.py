"""English characters -> token ids, as NeMo's `EnglishCharsTokenizer` numbers them.

FastPitch (Lancucki 2021, "FastPitch: Parallel Text-to-speech with Pitch Prediction",
arXiv:2006.06873, Sec. 2) reads a sequence of input symbols; NeMo's character front
end (nemo/collections/common/tokenizers/text_to_speech/tts_tokenizers.py) lower-cases
the text and keeps one token per character. The ids are, in order:
    " " (0), "a".."z" (1..26), "'" (27, with `apostrophe`), the 15 punctuation marks
    , . ! ? - : ; / " ( ) [ ] { } (28..42, with `punct`), "<pad>" (43), "<oov>" (44)
which is 45 tokens with both options on. A run of whitespace becomes one space,
leading and trailing spaces are dropped, and `pad_with_space` adds one space at each
end ("hello world." -> [0, 8, 5, 12, 12, 15, 0, 23, 15, 18, 12, 4, 29, 0]).

Differs from NeMo: a character outside the vocabulary (a digit, an accented letter)
raises TokenizerError naming the character and its position, where NeMo logs a
warning and drops it; empty text raises too; any whitespace (tab, newline) counts as
a space, where NeMo drops all but " ". `<oov>` is kept only so the ids match NeMo's
(encode never emits it).
"""

from __future__ import annotations

import string

from minispeech.errors import MinispeechError

PUNCT = (",", ".", "!", "?", "-", ":", ";", "/", '"', "(", ")", "[", "]", "{", "}")
PAD, OOV = "<pad>", "<oov>"


class TokenizerError(MinispeechError, ValueError):
    """Text the tokenizer cannot encode; the message names the character and place."""


class EnglishCharsTokenizer:
    """`encode("Hello world.") -> [0, 8, 5, ...]`; `tokens`, `pad`, `space`, `oov`
    ids as NeMo's class with the same options."""

    def __init__(
        self, punct: bool = True, apostrophe: bool = True, pad_with_space: bool = False
    ):
        self.punct = punct
        self.apostrophe = apostrophe
        self.pad_with_space = pad_with_space
        chars = [" ", *string.ascii_lowercase]
        chars += ["'"] if apostrophe else []
        chars += list(PUNCT) if punct else []
        self.tokens = [*chars, PAD, OOV]
        self.space, self.pad, self.oov = 0, len(chars), len(chars) + 1
        self._ids = {c: i for i, c in enumerate(chars)}

    @property
    def vocab_size(self) -> int:
        """Number of tokens, <pad> and <oov> included (45 with every option)."""
        return len(self.tokens)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> list[int]:
        """Text -> ids (U,); raises TokenizerError on empty text or a character the
        vocabulary lacks (the first one, with its 0-based position)."""
        chars = []
        for position, char in enumerate(text.lower()):
            if char.isspace():
                if chars and chars[-1] != " ":  # one space per run, none at the start
                    chars.append(" ")
            elif char in self._ids:
                chars.append(char)
            else:
                raise TokenizerError(self._unknown(text, position))
        while chars and chars[-1] == " ":
            chars.pop()
        if not chars:
            raise TokenizerError(f"nothing to speak: the text {text!r} is empty")
        if self.pad_with_space:
            chars = [" ", *chars, " "]
        return [self._ids[c] for c in chars]

    def _unknown(self, text: str, position: int) -> str:
        char = text[position]
        allowed = "a-z, space" + (", '" if self.apostrophe else "")
        allowed += f", {''.join(PUNCT)}" if self.punct else ""
        return (
            f"character {char!r} (U+{ord(char):04X}) at position {position} of "
            f"{text!r} is not in the tokenizer's vocabulary ({allowed}); spell "
            "numbers and symbols out as words"
        )

    def id_to_char(self, token: int) -> str:
        """One id -> its token ("<pad>" and "<oov>" for those two)."""
        if not 0 <= int(token) < len(self.tokens):
            raise TokenizerError(f"id {token} outside 0..{len(self.tokens) - 1}")
        return self.tokens[int(token)]

    def decode(self, ids) -> str:
        """Ids -> text, <pad> dropped (the inverse of encode up to case/spacing)."""
        return "".join(self.id_to_char(i) for i in ids if int(i) != self.pad)
