"""The SpeechLM's tokenizer: a SentencePiece BPE for text plus chat special tokens.

A chat turn, as SALM builds it (NeMo speechlm2; Chen et al. 2024, "SALM:
Speech-augmented Language Model with In-context Learning", arXiv:2310.09424, Sec. 2):
    <|bos|> <|user|> ...prompt with one <|audio|>... <|assistant|> answer <|eos|>
`<|audio|>` is a placeholder: the model replaces its one embedding by the audio frames.
`<|female|>` and `<|male|>` are voice tokens: the text stage writes one before the
transcript where the audio goes, so the LM learns to read the voice from that slot (one
token whatever the text pieces spell "female" with, so one adapted frame can say it).
Text ids come first (0 .. V_text-1, <unk> = 0, from `SentencePieceTokenizer`), the
special tokens after them (V_text ..), so the text model is reused unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from minispeech.data.tokenizers import SentencePieceTokenizer

AUDIO = "<|audio|>"
VOICE_TOKENS = {"female": "<|female|>", "male": "<|male|>"}
SPECIAL_TOKENS = ("<|pad|>", "<|bos|>", "<|eos|>", "<|user|>", "<|assistant|>", AUDIO)
SPECIAL_TOKENS += tuple(VOICE_TOKENS.values())
VOICE_PATTERN = re.compile("(" + "|".join(map(re.escape, VOICE_TOKENS.values())) + ")")


class ChatTokenizer:
    """Text pieces (SentencePiece) then SPECIAL_TOKENS; `chat_prompt` builds a turn."""

    def __init__(self, text: SentencePieceTokenizer):
        self.text = text
        base = text.vocab_size
        self.special = {token: base + k for k, token in enumerate(SPECIAL_TOKENS)}

    @classmethod
    def train(cls, texts: Iterable[str], out_dir: str | Path, vocab_size: int):
        """A BPE of `vocab_size` pieces on `texts` (saved in `out_dir`) + specials."""
        return cls(SentencePieceTokenizer.train(texts, out_dir, vocab_size))

    @classmethod
    def load(cls, directory: str | Path) -> ChatTokenizer:
        return cls(SentencePieceTokenizer.load(directory))

    @property
    def vocab_size(self) -> int:
        """V: text pieces + special tokens."""
        return self.text.vocab_size + len(SPECIAL_TOKENS)

    def token_id(self, token: str) -> int:
        return self.special[token]

    @property
    def pad_id(self) -> int:
        return self.special["<|pad|>"]

    @property
    def eos_id(self) -> int:
        return self.special["<|eos|>"]

    @property
    def audio_id(self) -> int:
        return self.special[AUDIO]

    def encode(self, text: str) -> list[int]:
        """Text -> ids: voice tokens written in it become their ids, the rest text
        pieces (ValueError on unseen characters)."""
        ids = []
        for k, part in enumerate(VOICE_PATTERN.split(text)):
            if k % 2:  # a voice token
                ids.append(self.special[part])
            elif part.strip():
                ids += self.text.encode(part.strip())
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text, special tokens dropped."""
        return self.text.decode([i for i in ids if i < self.text.vocab_size])

    def chat_prompt(self, prompt: str) -> list[int]:
        """The user turn up to the answer: <|bos|><|user|> prompt <|assistant|>, the
        prompt's one `<|audio|>` as the placeholder id. ValueError when the prompt has
        no placeholder, more than one, or no words."""
        parts = prompt.split(AUDIO)
        if len(parts) != 2:
            count = len(parts) - 1
            raise ValueError(
                f"a prompt needs exactly one {AUDIO} placeholder, found {count}: "
                f"{prompt!r}"
            )
        if not "".join(parts).strip():
            raise ValueError(f"the prompt has no question besides {AUDIO}: {prompt!r}")
        before, after = (self.encode(part.strip()) for part in parts)
        head = [self.special["<|bos|>"], self.special["<|user|>"]]
        return head + before + [self.audio_id] + after + [self.special["<|assistant|>"]]

    def text_prompt(self, prompt: str, text: str) -> list[int]:
        """`chat_prompt` with the words of `text` where the <|audio|> id was (the
        text-only stage: a transcript stands in for the recording)."""
        ids = self.chat_prompt(prompt)
        at = ids.index(self.audio_id)
        return ids[:at] + self.encode(text) + ids[at + 1 :]

    def answer_ids(self, answer: str) -> list[int]:
        """The assistant turn: answer ids + <|eos|>."""
        return self.encode(answer) + [self.eos_id]

    def save(self, directory: str | Path) -> list[Path]:
        return self.text.save(directory)


def tokenizer_texts(rows: Sequence[dict]) -> list[str]:
    """What the BPE learns from: each QA row's question and answer."""
    return [text for row in rows for text in (row["prompt"], row["answer"])]
