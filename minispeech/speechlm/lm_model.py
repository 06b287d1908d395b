"""TextLMModel: the SpeechLM's language model, pretrained on text before it hears audio.

The first stage of the SALM recipe (the LLM of SALM, Chen et al. 2024,
arXiv:2310.09424, arrives pretrained; here it is made in minutes): the GPT-style
TransformerLM (lm.py) learns the chat turns of the question-answer manifests with the
recording's transcript standing where the audio will be,
    <|bos|><|user|> call bob at nine what name is mentioned <|assistant|> bob <|eos|>
by next-token cross-entropy over every real position (Radford et al. 2019, Eq. 1). It
learns the questions, the answer vocabulary and how an answer follows from the words;
the second stage (salm_model.py) teaches an adapter to make audio look like those words.
Validation answers the dev questions from the transcript: the accuracy a perfect
adapter would allow.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from minispeech.core.config import ConfigError, check_arguments, check_keys
from minispeech.core.model import SpeechModel
from minispeech.data.manifest import read_numbered_manifest
from minispeech.speechlm.dataset import QA_FIELDS, QADataset, collate_qa, transcripts
from minispeech.speechlm.generation import generate, left_pad
from minispeech.speechlm.lm import TransformerLM
from minispeech.speechlm.scoring import qa_metrics, qa_stats
from minispeech.speechlm.text_data import SyntheticChats
from minispeech.speechlm.tokenizer import AUDIO, ChatTokenizer, tokenizer_texts

MODEL_KEYS = (
    "_target_",
    "tokenizer",
    "prompt_format",
    "lm",
    "loss_on",
    "voice_word",
    "generation",
    "train_ds",
    "validation_ds",
    "test_ds",
    "optim",
)
TOKENIZER_KEYS = ("dir", "vocab_size", "train_manifest")
DATASET_KEYS = ("manifest_filepath", "batch_size", "max_seconds", "shuffle")
DATASET_KEYS += ("drop_last", "num_buckets", "num_workers", "cache_audio")
DATASET_KEYS += ("transcripts_manifest",)
TEXT_DATASET_KEYS = (*DATASET_KEYS, "synthetic", "seed", "exclude_manifests")
GENERATION_DEFAULTS = {
    "max_new_tokens": 32,
    "strategy": "greedy",
    "temperature": 1.0,
    "top_k": 0,
    "top_p": 1.0,
}
DEFAULT_FORMAT = AUDIO + " {question}"


def next_token_loss(logits: Tensor, targets: Tensor, scored: Tensor) -> Tensor:
    """Mean -ln p(target) over the scored positions: logits (B, L, V), targets (B, L),
    scored (B, L) bool."""
    nll = F.cross_entropy(logits.float().transpose(1, 2), targets, reduction="none")
    return nll.masked_fill(~scored, 0.0).sum() / scored.sum().clamp_min(1)  # (B, L)


def answer_from_embeds(lm, tokenizer, embeds: list[Tensor], gen_cfg: dict) -> list[str]:
    """Generate each prompt's answer: embeds [(L_i, D)] -> texts (left-padded batch)."""
    inputs, mask = left_pad(embeds)  # (B, L, D), (B, L)
    ids = generate(lm, inputs, mask, stop_ids={tokenizer.eos_id}, **gen_cfg)
    return [tokenizer.decode(seq) for seq in ids]


class TextLMModel(SpeechModel):
    """Chat tokenizer + TransformerLM, trained on QA chats with transcripts as input."""

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        check_keys("model", self.cfg, MODEL_KEYS, type(self).__name__)
        check_keys("model.tokenizer", self.section("tokenizer"), TOKENIZER_KEYS)
        check_arguments(TransformerLM, self.section("lm"), "model.lm", ("vocab_size",))
        self.gen_cfg = generation_config(self.section("generation"))
        self.prompt_format = str(self.cfg.get("prompt_format", DEFAULT_FORMAT))
        # "all": language modelling of the whole chat; "answer": the answers only
        self.loss_on = self.cfg.get("loss_on", "all")
        if self.loss_on not in ("all", "answer"):
            raise ConfigError(f"model.loss_on: all or answer, not {self.loss_on!r}")
        # the text stage writes the speaker's gender before the transcript where the
        # audio goes: the LM learns that the voice, too, is read from that slot
        self.voice_word = self.cfg.get("voice_word", False)
        if not isinstance(self.voice_word, bool):
            raise ConfigError(
                f"model.voice_word: true or false, not {self.voice_word!r}"
            )
        heard = self.section("train_ds").get("transcripts_manifest")
        self._train_tokenizer_if_missing(self.section("tokenizer"), heard)
        self.tokenizer = ChatTokenizer.load(self.register_artifact("tokenizer.dir"))
        self.lm = TransformerLM(self.tokenizer.vocab_size, **self.section("lm"))

    @staticmethod
    def _train_tokenizer_if_missing(tok_cfg: dict, transcripts_manifest=None) -> None:
        """Train the BPE on the QA questions and answers (and on the transcripts the
        text stage reads) unless `tokenizer.dir` exists."""
        if "dir" not in tok_cfg:
            raise ConfigError("model.tokenizer.dir: where the chat tokenizer lives")
        tok_dir = Path(str(tok_cfg["dir"]))
        if str(tok_cfg["dir"]).startswith("nemo:") or tok_dir.exists():
            return
        if "train_manifest" not in tok_cfg:
            raise ConfigError(
                f"model.tokenizer.dir {tok_dir} does not exist and there is no "
                "train_manifest to build it"
            )
        rows = read_numbered_manifest(
            tok_cfg["train_manifest"], QA_FIELDS, check_audio=False, allow_repeats=True
        )
        texts = tokenizer_texts([row for _, row in rows])
        if transcripts_manifest:
            texts += list(transcripts([], transcripts_manifest).values())
        ChatTokenizer.train(texts, tok_dir, int(tok_cfg.get("vocab_size", 256)))

    # ------------------------------------------------------------ data
    def build_dataset(self, ds_cfg: dict) -> QADataset | SyntheticChats:
        """A QA manifest read as text (the transcript where the audio goes), or, with
        `synthetic: N`, N chats about new sentences of the corpus grammar."""
        check_keys("dataset section", ds_cfg, TEXT_DATASET_KEYS)
        if ds_cfg.get("synthetic"):
            return SyntheticChats(
                int(ds_cfg["synthetic"]),
                self.tokenizer,
                self.prompt_format,
                int(ds_cfg.get("seed", 0)),
                held_out_texts(ds_cfg.get("exclude_manifests") or []),
                voice_word=self.voice_word,
            )
        if "manifest_filepath" not in ds_cfg:
            raise ConfigError("dataset section: manifest_filepath or synthetic: N")
        return QADataset(
            ds_cfg["manifest_filepath"],
            self.tokenizer,
            self.prompt_format,
            text_only=True,
            transcripts_manifest=ds_cfg.get("transcripts_manifest"),
            voice_word=self.voice_word,
        )

    def collate(self, items: list) -> dict:
        """+ `sequence` (B, L) = prompt + answer, right-padded, `lens` (B,) and
        `prompt_lens` (B,)."""
        batch = collate_qa(items)
        seqs = [p + a for p, a in zip(batch["prompt_ids"], batch["answer_ids"])]
        lens = torch.tensor([len(s) for s in seqs])  # (B,)
        sequence = torch.full((len(seqs), int(lens.max())), self.tokenizer.pad_id)
        for b, seq in enumerate(seqs):
            sequence[b, : len(seq)] = torch.tensor(seq)
        prompt_lens = torch.tensor([len(p) for p in batch["prompt_ids"]])  # (B,)
        batch.update(sequence=sequence, lens=lens, prompt_lens=prompt_lens)
        return batch

    # ------------------------------------------------------------ steps
    def training_step(self, batch: dict) -> dict:
        seq, lens = batch["sequence"], batch["lens"]  # (B, L), (B,)
        j = torch.arange(seq.size(1), device=seq.device)  # (L,)
        mask = j < lens.unsqueeze(1)  # (B, L) real tokens
        logits, _ = self.lm(seq[:, :-1], attention_mask=mask[:, :-1])  # (B, L-1, V)
        scored = mask[:, 1:]  # (B, L-1): position j predicts token j+1
        if self.loss_on == "answer":  # targets from the first answer token on
            scored = scored & (j[1:] >= batch["prompt_lens"].unsqueeze(1))
        return {"loss": next_token_loss(logits, seq[:, 1:], scored)}

    def validation_step(self, batch: dict) -> dict:
        """The loss, and the answers generated from each prompt, scored."""
        loss = float(self.training_step(batch)["loss"])
        embeds = [
            self.lm.embed(torch.tensor([p])).squeeze(0) for p in batch["prompt_ids"]
        ]
        device = batch["sequence"].device
        hyps = answer_from_embeds(
            self.lm, self.tokenizer, [e.to(device) for e in embeds], self.gen_cfg
        )
        stats = qa_stats(batch["type"], batch["answer"], hyps, batch["phrasing"])
        n = len(hyps)
        return {**stats, "loss_sum": loss * n, "count": n}

    def validation_metrics(self, stats: dict) -> dict:
        return {"val_loss": stats["loss_sum"] / stats["count"], **qa_metrics(stats)}


def held_out_texts(manifests) -> set[str]:
    """The `text` of every row of `manifests` (what synthetic chats must not say)."""
    texts = set()
    for manifest in manifests:
        rows = read_numbered_manifest(manifest, ("text",), check_audio=False)
        texts.update(row["text"] for _, row in rows)
    return texts


def generation_config(values: dict) -> dict:
    """The `generation` section over its defaults, checked."""
    check_keys("model.generation", values, tuple(GENERATION_DEFAULTS))
    cfg = {**GENERATION_DEFAULTS, **values}
    if cfg["strategy"] not in ("greedy", "sample"):
        raise ConfigError(
            f"model.generation.strategy: greedy or sample, not {cfg['strategy']!r}"
        )
    if int(cfg["max_new_tokens"]) < 1:
        raise ConfigError("model.generation.max_new_tokens: at least 1")
    return cfg
