"""Text tokenizers: characters, or subwords learned with SentencePiece.

SentencePiece: Kudo & Richardson 2018, "SentencePiece: A simple and language
independent subword tokenizer and detokenizer for Neural Text Processing"
(arXiv:1808.06226); BPE (Sennrich et al. 2016, arXiv:1508.07909) or the unigram
language model (Kudo 2018, arXiv:1804.10959), trained by the sentencepiece library.

Both tokenizers number their tokens 0..vocab_size-1 and hold NO blank: CTC and RNN-T
models append the blank themselves at index vocab_size (NeMo's convention).

Unknown characters (never seen when the tokenizer was built) raise ``ValueError``
naming the character and the text, in both tokenizers: a silent ``<unk>`` would
train a model on targets that cannot be decoded back. SentencePiece still owns an
``<unk>`` piece (id 0), which the library requires; we refuse to emit it.

Files (so a checkpoint can carry them): ``vocab.txt`` for characters, one token per
line in id order, the space written as ``<space>`` (a line holding a bare space is
lost by editors and ``strip()``); ``tokenizer.model`` (+ a readable ``vocab.txt``
with one piece per line) for SentencePiece. ``load_tokenizer(dir)`` picks the class
from the files present.
"""

import io
from collections.abc import Iterable
from pathlib import Path

import sentencepiece as spm

__all__ = ["CharTokenizer", "SentencePieceTokenizer", "load_tokenizer"]

SPACE = "<space>"  # how the " " token is spelled in vocab.txt


def _describe(char: str) -> str:
    return f"{char!r} (U+{ord(char):04X})"


class CharTokenizer:
    """One token per character. ``tokens`` fixes the id order (e.g. NeMo's labels
    ``[" ", "a", ..., "z", "'"]``); ``from_texts`` builds it sorted from a corpus."""

    def __init__(self, tokens: Iterable[str]):
        self.tokens = list(tokens)
        problems = [t for t in self.tokens if len(t) != 1 or (t.isspace() and t != " ")]
        if problems:
            raise ValueError(f"tokens must be single chars, no newline: {problems}")
        if len(set(self.tokens)) != len(self.tokens):
            raise ValueError(f"duplicate tokens in {self.tokens}")
        self._ids = {t: i for i, t in enumerate(self.tokens)}

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> "CharTokenizer":
        """Every character that occurs in ``texts``, in sorted (code point) order."""
        chars = set()
        for text in texts:
            chars.update(text)
        if not chars:
            raise ValueError("no characters: the texts are empty")
        return cls(sorted(chars))

    @property
    def vocab_size(self) -> int:
        """Number of tokens (no blank)."""
        return len(self.tokens)

    def encode(self, text: str) -> list[int]:
        """Text -> ids, one per character; unknown characters raise ValueError."""
        try:
            return [self._ids[c] for c in text]
        except KeyError as err:
            raise ValueError(
                f"character {_describe(err.args[0])} in {text!r} is not in the "
                f"vocabulary of {self.vocab_size} characters"
            ) from None

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text; an id outside 0..vocab_size-1 raises ValueError."""
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"ids {bad} outside 0..{self.vocab_size - 1}")
        return "".join(self.tokens[i] for i in ids)

    def save(self, directory: str | Path) -> list[Path]:
        """Write ``vocab.txt`` (one token per line, space as <space>)."""
        path = Path(directory) / "vocab.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [SPACE if t == " " else t for t in self.tokens]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return [path]

    @classmethod
    def load(cls, directory: str | Path) -> "CharTokenizer":
        """Read ``vocab.txt`` written by ``save``."""
        path = Path(directory) / "vocab.txt"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no vocab.txt for a CharTokenizer")
        lines = path.read_text(encoding="utf-8-sig").split("\n")  # a BOM is no token
        if lines and lines[-1] == "":
            lines.pop()  # the final newline
        lines = [line.removesuffix("\r") for line in lines]  # CRLF from an editor
        try:
            return cls(" " if line == SPACE else line for line in lines)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None


class SentencePieceTokenizer:
    """Subword tokens from a trained SentencePiece model (its bytes are the state)."""

    def __init__(self, model_proto: bytes):
        self.model_proto = bytes(model_proto)
        self._sp = spm.SentencePieceProcessor(model_proto=self.model_proto)

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        out_dir: str | Path,
        vocab_size: int,
        model_type: str = "bpe",
    ) -> "SentencePieceTokenizer":
        """Learn a ``model_type`` ("bpe" or "unigram") vocabulary of ``vocab_size``
        pieces (<unk> included) from ``texts`` and save it to ``out_dir``.

        Deterministic: one thread, no input shuffling or sampling. The text is kept
        as given (identity normalization; cleaning text is the preparer's job) and
        every character seen is covered, so decode(encode(t)) == t on such text
        (runs of spaces collapse to one, as SentencePiece does; CharTokenizer keeps
        them).
        """
        if model_type not in ("bpe", "unigram"):
            raise ValueError(f"model_type must be bpe or unigram, not {model_type!r}")
        sentences = [t for t in texts if t.strip()]
        if not sentences:
            raise ValueError("cannot train a tokenizer on no text")
        model = io.BytesIO()
        try:
            cls._run_trainer(sentences, model, vocab_size, model_type)
        except RuntimeError as err:  # e.g. "Vocabulary size too high (40) ... <= 31"
            raise ValueError(f"sentencepiece training failed: {err}") from None
        tokenizer = cls(model.getvalue())
        tokenizer.save(out_dir)
        return tokenizer

    @staticmethod
    def _run_trainer(
        sentences: list[str], model: io.BytesIO, vocab_size: int, model_type: str
    ) -> None:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_writer=model,
            vocab_size=vocab_size,
            model_type=model_type,
            character_coverage=1.0,
            normalization_rule_name="identity",
            unk_id=0,
            bos_id=-1,  # no <s> / </s> / <pad>: models add their own specials
            eos_id=-1,
            pad_id=-1,
            num_threads=1,
            shuffle_input_sentence=False,
            minloglevel=2,
        )

    @property
    def vocab_size(self) -> int:
        """Number of pieces, <unk> (id 0) included (no blank)."""
        return self._sp.get_piece_size()

    def encode(self, text: str) -> list[int]:
        """Text -> piece ids; characters unseen in training raise ValueError."""
        ids = self._sp.encode(text)
        unk = self._sp.unk_id()
        if unk in ids:
            chars = sorted(c for c in set(text) if unk in self._sp.encode(c))
            chars = ", ".join(_describe(c) for c in chars)
            raise ValueError(f"{text!r} has characters never seen in training: {chars}")
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Piece ids -> text; an id outside 0..vocab_size-1 raises ValueError."""
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"ids {bad} outside 0..{self.vocab_size - 1}")
        return self._sp.decode(ids)

    @property
    def tokens(self) -> list[str]:
        """The pieces in id order ("▁" marks a word start)."""
        return [self._sp.id_to_piece(i) for i in range(self.vocab_size)]

    def save(self, directory: str | Path) -> list[Path]:
        """Write ``tokenizer.model`` and a readable ``vocab.txt`` (one piece a line)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        model, vocab = directory / "tokenizer.model", directory / "vocab.txt"
        model.write_bytes(self.model_proto)
        vocab.write_text("\n".join(self.tokens) + "\n", encoding="utf-8")
        return [model, vocab]

    @classmethod
    def load(cls, directory: str | Path) -> "SentencePieceTokenizer":
        """Read ``tokenizer.model`` (vocab.txt is for people; it is not read)."""
        path = Path(directory) / "tokenizer.model"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no tokenizer.model in {directory}")
        try:
            return cls(path.read_bytes())
        except RuntimeError as err:  # sentencepiece: "Internal: ... ParseFromArray"
            message = " ".join(str(err).split())
            raise ValueError(f"{path}: not a SentencePiece model ({message})") from None

    def __getstate__(self) -> dict:
        return {"model_proto": self.model_proto}  # the C++ processor does not pickle

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["model_proto"])


def load_tokenizer(directory: str | Path) -> CharTokenizer | SentencePieceTokenizer:
    """``tokenizer.model`` present -> SentencePiece, else ``vocab.txt`` -> chars."""
    directory = Path(directory)
    if (directory / "tokenizer.model").is_file():
        return SentencePieceTokenizer.load(directory)
    if (directory / "vocab.txt").is_file():
        return CharTokenizer.load(directory)
    raise FileNotFoundError(f"{directory}: neither tokenizer.model nor vocab.txt found")
