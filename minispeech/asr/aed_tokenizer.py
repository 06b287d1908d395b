"""The aggregate tokenizer of a prompted AED model: special tokens + one BPE a language.

Canary (Puvvada et al. 2024, "Less is More: Accurate Speech Recognition & Translation
without Web-Scale Data", arXiv:2406.19674, Sec. 2) tells one decoder what to do with a
prompt of special tokens, as Whisper does (Radford et al. 2022, arXiv:2212.04356,
Sec. 2.3, Fig. 1):
    <|startoftranscript|> <|src_lang|> <|task|> <|tgt_lang|> <|pnc|>|<|nopnc|>
then the text and <|endoftext|>. The special tokens live in their own SentencePiece
model (`spl_tokens`, id 0 = <unk>, one user-defined piece per token, then "▁") and each
language's text in a SentencePiece BPE (Sennrich et al. 2016, arXiv:1508.07909); the ids
are concatenated, each model shifted by the sizes of the models before it (NeMo's
AggregateTokenizer offsets: spl_tokens at 0, then the languages in order).

Files: one flat folder holding `spl_tokens.model` and `<lang>.model` per language (+ a
readable `<name>.vocab.txt`, one piece a line), so a model file carries it as one
artifact. Differences from NeMo: `ids_to_text` drops every special-token id (NeMo
decodes them and strips `<|...|>` afterwards); unknown characters in a text raise
ValueError (SentencePieceTokenizer) instead of becoming <unk>.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import sentencepiece as spm

from minispeech.data.tokenizers import SentencePieceTokenizer
from minispeech.errors import ConfigError

SPECIAL = "spl_tokens"  # NeMo's name of the special-token model (always first)
EOS, BOS, PAD = "<|endoftext|>", "<|startoftranscript|>", "<pad>"
# NeMo's canary special tokens, in id order after <unk>; then one <|lang|> a language
SPECIAL_TOKENS = (
    "<|nospeech|>",
    PAD,
    EOS,
    BOS,
    "<|pnc|>",
    "<|nopnc|>",
    "<|translate|>",
    "<|transcribe|>",
)
# task names a prompt accepts -> task token (NeMo's canary prompt takes all of these)
TASKS = {
    "transcribe": "<|transcribe|>",
    "asr": "<|transcribe|>",
    "translate": "<|translate|>",
    "ast": "<|translate|>",
    "s2t_translation": "<|translate|>",
}
PNC = {True: "<|pnc|>", "yes": "<|pnc|>", "pnc": "<|pnc|>"}
NOPNC = {False: "<|nopnc|>", "no": "<|nopnc|>", "nopnc": "<|nopnc|>"}


class AggregateTokenizer:
    """Special tokens at ids 0..N-1, then each language's BPE pieces (offset ids)."""

    def __init__(self, special_proto: bytes, lang_protos: Mapping[str, bytes]):
        if not lang_protos:
            raise ValueError("an aggregate tokenizer needs at least one language")
        self.special = spm.SentencePieceProcessor(model_proto=bytes(special_proto))
        self.special_proto = bytes(special_proto)
        self.texts = {
            lang: SentencePieceTokenizer(p) for lang, p in lang_protos.items()
        }
        self.langs = list(self.texts)
        self.offsets = {SPECIAL: 0}  # sub-tokenizer -> id of its first piece
        offset = self.special.get_piece_size()
        for lang, tokenizer in self.texts.items():
            self.offsets[lang], offset = offset, offset + tokenizer.vocab_size
        self.vocab_size = offset  # all pieces of all models

    # ------------------------------------------------------------ files
    @classmethod
    def load(cls, directory: str | Path, langs: Sequence[str] = ("en",)):
        """Read `spl_tokens.model` and `<lang>.model` for each of `langs`, in order."""
        directory, protos = Path(directory), {}
        for name in (SPECIAL, *langs):
            path = directory / f"{name}.model"
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no {name} SentencePiece model")
            protos[name] = path.read_bytes()
        try:
            return cls(protos.pop(SPECIAL), protos)
        except RuntimeError as err:  # sentencepiece: "Internal: ... ParseFromArray"
            message = " ".join(str(err).split())
            raise ValueError(
                f"{directory}: not SentencePiece models ({message})"
            ) from None

    def save(self, directory: str | Path) -> list[Path]:
        """Write `<name>.model` and a readable `<name>.vocab.txt` per sub-tokenizer."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        protos = {SPECIAL: self.special_proto}
        protos.update({lang: tok.model_proto for lang, tok in self.texts.items()})
        paths = []
        for name, proto in protos.items():
            model, vocab = directory / f"{name}.model", directory / f"{name}.vocab.txt"
            model.write_bytes(proto)
            pieces = spm.SentencePieceProcessor(model_proto=proto)
            ids = range(pieces.get_piece_size())
            vocab.write_text("\n".join(map(pieces.id_to_piece, ids)) + "\n", "utf-8")
            paths += [model, vocab]
        return paths

    # ------------------------------------------------------------ ids
    @property
    def tokens(self) -> list[str]:
        """Every piece in id order (special tokens first)."""
        pieces = [
            self.special.id_to_piece(i) for i in range(self.offsets[self.langs[0]])
        ]
        for tokenizer in self.texts.values():
            pieces += tokenizer.tokens
        return pieces

    def token_to_id(self, token: str) -> int:
        """A special token ("<|en|>") -> its id; an unknown one raises ValueError."""
        index = self.special.piece_to_id(token)
        if index == self.special.unk_id() and token != self.special.id_to_piece(index):
            known = [
                self.special.id_to_piece(i)
                for i in range(1, self.offsets[self.langs[0]])
            ]
            raise ValueError(
                f"prompt token {token!r} is not a special token of this tokenizer "
                f"(known: {', '.join(known)})"
            )
        return index

    @property
    def eos_id(self) -> int:
        return self.token_to_id(EOS)

    @property
    def bos_id(self) -> int:
        return self.token_to_id(BOS)

    @property
    def pad_id(self) -> int:
        return self.token_to_id(PAD)

    def text_to_ids(self, text: str, lang: str) -> list[int]:
        """Text in language `lang` -> ids (the language's BPE ids + its offset)."""
        if lang not in self.texts:
            raise ValueError(f"language {lang!r} has no tokenizer (have {self.langs})")
        return [i + self.offsets[lang] for i in self.texts[lang].encode(text)]

    def ids_to_text(self, ids: Iterable[int]) -> str:
        """Ids -> text: special tokens dropped, each run of one language's ids decoded
        by its BPE, runs joined by a space; runs of spaces become one (a lone word-start
        piece, which a CTC beam may emit, would otherwise leave two)."""
        runs: list[tuple[str, list[int]]] = []
        for index in map(int, ids):
            lang = self.lang_of(index)
            if lang == SPECIAL:
                continue
            if not runs or runs[-1][0] != lang:
                runs.append((lang, []))
            runs[-1][1].append(index - self.offsets[lang])
        text = " ".join(self.texts[lang].decode(run) for lang, run in runs)
        return " ".join(text.split())

    def lang_of(self, index: int) -> str:
        """The sub-tokenizer an id belongs to; an id outside the vocabulary raises."""
        if not 0 <= index < self.vocab_size:
            raise ValueError(f"id {index} outside 0..{self.vocab_size - 1}")
        return [name for name, start in self.offsets.items() if index >= start][-1]

    def prompt_ids(
        self,
        source_lang: str = "en",
        task: str = "transcribe",
        target_lang: str = "en",
        pnc: bool | str = False,
    ) -> list[int]:
        """The canary prompt: BOS, <|source_lang|>, task, <|target_lang|>, (no)pnc."""
        if task not in TASKS:
            raise ValueError(f"prompt task {task!r}: use one of {sorted(TASKS)}")
        key = pnc.lower() if isinstance(pnc, str) else bool(pnc)
        if key not in PNC and key not in NOPNC:
            raise ValueError(f"prompt pnc {pnc!r}: use true/false, yes/no, pnc/nopnc")
        tokens = (BOS, f"<|{source_lang}|>", TASKS[task], f"<|{target_lang}|>")
        return [self.token_to_id(t) for t in tokens] + [
            self.token_to_id(PNC.get(key) or NOPNC[key])
        ]

    # the tokenizer interface AudioTextDataset and the ASR models use: text in the
    # first language, without prompt or EOS
    def encode(self, text: str) -> list[int]:
        return self.text_to_ids(text, self.langs[0])

    def decode(self, ids: Iterable[int]) -> str:
        return self.ids_to_text(ids)


def train_special_model(langs: Sequence[str]) -> bytes:
    """The special-token SentencePiece model: <unk>, SPECIAL_TOKENS, <|lang|>..., "▁"
    (NeMo's layout: each token a user-defined piece; "▁" is learned from the text)."""
    symbols = [*SPECIAL_TOKENS, *(f"<|{lang}|>" for lang in langs)]
    return _train([" ".join(symbols)], len(symbols) + 2, user_defined_symbols=symbols)


def _train(sentences: list[str], vocab_size: int, **options) -> bytes:
    """A deterministic SentencePiece BPE (one thread, no shuffling) -> its bytes."""
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="bpe",
        character_coverage=1.0,
        normalization_rule_name="identity",
        unk_id=0,
        bos_id=-1,
        eos_id=-1,
        pad_id=-1,
        num_threads=1,
        shuffle_input_sentence=False,
        minloglevel=2,
        **options,
    )
    return model.getvalue()


def build_aggregate_tokenizer(
    texts: Iterable[str] | Mapping[str, Iterable[str]],
    out_dir: str | Path,
    vocab_size: int,
    langs: Sequence[str] = ("en",),
) -> AggregateTokenizer:
    """Train the special-token model and one BPE of `vocab_size` pieces per language
    (`texts`: one list for every language, or {lang: texts}) and save them to
    `out_dir`. Deterministic: the same texts give the same files."""
    per_lang = texts if isinstance(texts, Mapping) else None
    shared = None if per_lang is not None else list(texts)
    protos = {}
    for lang in langs:
        lang_texts = list(per_lang[lang]) if per_lang is not None else shared
        with tempfile.TemporaryDirectory() as tmp:  # train() also writes files
            protos[lang] = SentencePieceTokenizer.train(
                lang_texts, tmp, vocab_size
            ).model_proto
    tokenizer = AggregateTokenizer(train_special_model(langs), protos)
    tokenizer.save(out_dir)
    return tokenizer


def aggregate_from_manifest(
    manifest: str | Path, out_dir: str | Path, vocab_size: int, langs: Sequence[str]
) -> AggregateTokenizer:
    """`build_aggregate_tokenizer` on a manifest's texts: `text`, and `text_pnc` (the
    written form) where a row has it, so one BPE serves both the <|nopnc|> and the
    <|pnc|> prompt."""
    from minispeech.data import read_manifest

    rows = read_manifest(manifest, required=("text",), check_audio=False)
    texts = [row["text"] for row in rows]
    texts += [row["text_pnc"] for row in rows if row.get("text_pnc")]
    return build_aggregate_tokenizer(texts, out_dir, vocab_size, langs)


def train_aggregate_if_missing(tok_cfg: dict, langs: list[str]) -> None:
    """Train the `tokenizer` section's aggregate tokenizer into its `dir` from its
    `train_manifest` unless the folder exists (or is a `nemo:` artifact)."""
    tok_dir = Path(str(tok_cfg["dir"]))
    if str(tok_cfg["dir"]).startswith("nemo:") or tok_dir.exists():
        return
    if "train_manifest" not in tok_cfg:
        raise ConfigError(
            f"model.tokenizer.dir {tok_dir} does not exist "
            "and there is no train_manifest to build it"
        )
    vocab_size = int(tok_cfg.get("vocab_size", 128))
    aggregate_from_manifest(tok_cfg["train_manifest"], tok_dir, vocab_size, langs)
