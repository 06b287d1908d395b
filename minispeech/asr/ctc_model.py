"""CTCModel: encoder + linear head trained with CTC (Graves et al. 2006, ICML).

audio (B, S) -> ASRModel.encode -> enc (B, D, T') -> linear -> log_probs (B, T', V), the
blank at index V-1. Training minimizes `ctc_loss` (minispeech/nn/ctc.py); decoding is
greedy by default, or prefix beam search with an optional word n-gram LM
(minispeech/asr/ctc_decoding.py). Long recordings are cut into overlapping chunks whose
centres are stitched together, so memory stays bounded by the chunk length.
Intermediate CTC (Lee & Watanabe 2021, arXiv:2102.03216, eq. 6), NeMo's `interctc`
section: the same head reads the outputs of earlier encoder layers too, and
L = (1 - sum_k w_k) L_ctc + sum_k w_k L_ctc(layer_k). With `use_conditioning` (ESPnet's
`interctc_use_conditioning`), self-conditioned CTC (Nozaki & Komatsu 2021,
arXiv:2104.02724, eq. 9): the next layer reads x_k + Linear(softmax(head(x_k))), in
training and in inference.
Differs from NeMo: the head is an nn.Linear (NeMo's is a 1x1 Conv1d; the importer
squeezes its kernel).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from minispeech.asr.alignment import ctc_forced_align_single, word_spans
from minispeech.asr.asr_model import ASRModel
from minispeech.asr.config_sections import CHUNK_KEYS, check_decoding
from minispeech.asr.ctc_decoding import ctc_greedy_decode, ctc_prefix_beam_search
from minispeech.asr.lexicon import read_lexicon
from minispeech.asr.ngram_lm import NGramLM, read_lm
from minispeech.core.config import ConfigError
from minispeech.nn.ctc import ctc_loss

DECODING_KEYS = ("strategy", "beam_size", "lm_path", "lm_alpha", "lm_beta", "lexicon")
INTERCTC_KEYS = ("loss_weights", "apply_at_layers", "use_conditioning")


class CTCModel(ASRModel):
    """Conformer/FastConformer (or any encoder) + linear head + CTC loss."""

    extra_keys = frozenset(
        {
            "ctc_reduction",
            "strip_space_before_punctuation",
            "chunk",
            "decoding",
            "interctc",
            "freeze",
        }
    )

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        self.head = nn.Linear(self.encoder.d_model, self.num_classes)  # D -> V
        # NeMo's names: mean_batch = sum / B, mean_volume = sum / total target length;
        # "mean" is F.ctc_loss's (the batch mean of loss / target length)
        self.reduction = self.cfg.get("ctc_reduction", "mean_batch")
        if self.reduction not in ("mean_batch", "mean_volume", "mean", "sum"):
            raise ConfigError(
                f"model.ctc_reduction {self.reduction!r}: use mean_batch, "
                "mean_volume, mean or sum"
            )
        self.decoding = {"strategy": "greedy", **self.section("decoding")}
        check_decoding(self.decoding)
        self.interctc = dict(self._interctc_layers())  # layer index -> loss weight
        self.inter_log_probs: dict[int, Tensor] = {}  # of the last training forward
        self.conditioning = None
        if self.interctc:
            self.encoder.intermediate = self.intermediate_ctc
            if self.section("interctc").get("use_conditioning", False):
                d_model = self.encoder.d_model
                self.conditioning = nn.Linear(self.num_classes, d_model)  # V -> D
        self.lm_cache = {}  # decoding.lm_path -> its LM, read on first use
        self.lexicon_cache = {}  # decoding.lexicon path -> words, read on first use
        self.frozen = self.freeze_from_config()  # after every module is built

    def config_sections(self) -> dict:
        return {
            **super().config_sections(),
            "decoding": (DECODING_KEYS, (), ()),
            "chunk": (CHUNK_KEYS, (), ()),
            "interctc": (INTERCTC_KEYS, (), INTERCTC_KEYS[:2]),
        }

    def _interctc_layers(self) -> list[tuple[int, float]]:
        """The checked `interctc` section: [(0-based layer index, loss weight)]."""
        section = self.section("interctc")
        if not section:
            return []
        weights, layers = section["loss_weights"], section["apply_at_layers"]

        def numbers(values, kinds) -> bool:  # YAML true/false are not numbers
            return isinstance(values, list) and all(
                isinstance(v, kinds) and not isinstance(v, bool) for v in values
            )

        if not (numbers(weights, (int, float)) and numbers(layers, int)):
            raise ConfigError(
                "model.interctc: loss_weights is a list of numbers and apply_at_layers "
                f"a list of layer indices, got {weights!r} and {layers!r}"
            )
        if not hasattr(self.encoder, "intermediate"):
            raise ConfigError(
                f"model.interctc: {type(self.encoder).__name__} has no intermediate "
                "layer outputs to read (ConformerEncoder has)"
            )
        n_layers = len(self.encoder.layers)
        if len(weights) != len(layers) or not weights:
            raise ConfigError(
                "model.interctc: loss_weights and apply_at_layers need the same "
                f"non-zero length, got {len(weights)} and {len(layers)}"
            )
        if min(weights) <= 0 or sum(weights) >= 1:
            raise ConfigError(
                f"model.interctc.loss_weights {weights}: each > 0, sum < 1 (the rest "
                "weighs the final layer's loss)"
            )
        if len(set(layers)) != len(layers) or not all(
            0 <= i < n_layers - 1 for i in layers
        ):
            raise ConfigError(
                f"model.interctc.apply_at_layers {layers}: distinct layer indices "
                f"below the last one (0..{n_layers - 2})"
            )
        if not isinstance(section.get("use_conditioning", False), bool):
            raise ConfigError("model.interctc.use_conditioning: true or false")
        if getattr(self.encoder, "out_proj", None) is not None:
            raise ConfigError(
                "model.interctc: the head reads layer outputs, so no encoder.feat_out"
            )
        return list(zip(layers, weights))

    def intermediate_ctc(self, layer: int, x: Tensor) -> Tensor:
        """The encoder's call after `layer`, x (B, T', D) -> x: the head's log-probs
        kept for the intermediate loss (training), and with conditioning, the next
        layer's input moved by the predicted token distribution."""
        if layer not in self.interctc or (
            not self.training and self.conditioning is None
        ):
            return x  # plain intermediate CTC leaves inference alone
        log_probs = self.head_log_probs(x.transpose(1, 2))  # (B, T', V)
        if self.training:
            self.inter_log_probs[layer] = log_probs
        if self.conditioning is not None:
            x = x + self.conditioning(log_probs.exp().to(x.dtype))  # (B, T', D)
        return x

    def forward(self, audio: Tensor, audio_lens: Tensor) -> tuple[Tensor, Tensor]:
        """audio (B, S), audio_lens (B,) -> log_probs (B, T', V), enc_lens (B,)."""
        enc, enc_lens = self.encode(audio, audio_lens)  # (B, D, T')
        return self.head_log_probs(enc), enc_lens

    def head_log_probs(self, enc: Tensor) -> Tensor:
        """enc (B, D, T') -> log_probs (B, T', V), float32."""
        logits = self.head(enc.transpose(1, 2))  # (B, T', D) -> (B, T', V)
        return logits.float().log_softmax(dim=-1)

    def training_step(self, batch: dict) -> dict:
        log_probs, enc_lens = self(batch["audio"], batch["audio_lens"])  # (B, T', V)
        loss = self.ctc_loss(log_probs, enc_lens, batch)
        if self.training and self.interctc:  # validation: the final layer's loss
            inter = [
                w * self.ctc_loss(self.inter_log_probs.pop(i), enc_lens, batch)
                for i, w in self.interctc.items()
            ]
            loss = (1 - sum(self.interctc.values())) * loss + sum(inter)
        return {"loss": loss}

    def ctc_loss(self, log_probs: Tensor, enc_lens: Tensor, batch: dict) -> Tensor:
        """The CTC loss of log_probs (B, T', V) against the batch's tokens, reduced
        as `ctc_reduction` says."""
        reduction = "sum" if self.reduction != "mean" else "mean"
        loss = ctc_loss(
            log_probs,
            batch["tokens"],
            enc_lens,
            batch["token_lens"],
            blank=self.blank,
            reduction=reduction,
            zero_infinity=True,
        )
        if self.reduction == "mean_batch":
            loss = loss / log_probs.shape[0]
        elif self.reduction == "mean_volume":
            loss = loss / batch["token_lens"].sum().clamp_min(1)
        return loss

    def ids_to_text(self, ids: list[int]) -> str:
        """Token ids (no blanks) -> text, with NeMo's punctuation spacing when asked."""
        text = self.tokenizer.decode(ids)
        if self.cfg.get("strip_space_before_punctuation", False):
            text = strip_space_before_punctuation(text)
        return text

    @torch.inference_mode()
    def decode(self, audio: Tensor, audio_lens: Tensor) -> list[str]:
        """Transcripts of a batch: audio (B, S) -> B strings, by `decoding.strategy`
        (greedy, or prefix beam search with an optional word n-gram LM)."""
        log_probs, enc_lens = self.log_probs(audio, audio_lens)  # (B, T', V)
        if self.decoding["strategy"] == "greedy":
            ids = ctc_greedy_decode(log_probs, enc_lens, self.blank)
        else:
            ids = ctc_prefix_beam_search(
                log_probs.cpu(),
                enc_lens.cpu(),
                self.blank,
                int(self.decoding.get("beam_size", 8)),
                lm=self.language_model(),
                alpha=float(self.decoding.get("lm_alpha", 0.5)),
                beta=float(self.decoding.get("lm_beta", 1.0)),
                token_to_text=self.tokenizer.tokens,
                lexicon=self.lexicon(),
            )
        return [self.ids_to_text(seq) for seq in ids]

    def lexicon(self) -> frozenset | None:
        """The `decoding.lexicon` words (read on first use), the only words the beam
        may spell; None when unconstrained."""
        return read_lexicon(self.decoding, self.lexicon_cache)

    def language_model(self) -> NGramLM | None:
        """The `decoding.lm_path` n-gram LM, read on first use (None without one)."""
        return read_lm(self.decoding, self.lm_cache)

    @torch.inference_mode()
    def transcribe_with_timestamps(self, inputs, batch_size: int = 8) -> list[dict]:
        """Like transcribe, plus word times: [{"text", "words": [(word, start, end)]}].

        The greedy transcript is force-aligned to the CTC posteriors (Viterbi); a word
        starts at its first token's first frame and ends after its last token's frames.
        """
        was_training = self.training
        self.eval()
        device, results = next(self.parameters()).device, []
        for wave in self.load_inputs(inputs):
            lens = torch.tensor([wave.numel()], device=device)
            log_probs, enc_lens = self.log_probs(
                wave[None].to(device), lens
            )  # (1, T', V)
            frames = log_probs[0, : int(enc_lens[0])]  # (T', V)
            ids = ctc_greedy_decode(frames[None], enc_lens[:1], self.blank)[0]
            words = []
            if ids:
                spans = ctc_forced_align_single(frames, ids, blank=self.blank).spans
                frame_s = self.frame_shift / self.sample_rate
                texts = list(self.tokenizer.tokens)  # SentencePiece keeps its "▁" marks
                words = [
                    (w.word, w.start, w.end) for w in word_spans(spans, texts, frame_s)
                ]
            results.append({"text": self.ids_to_text(ids), "words": words})
        self.train(was_training)
        return results

    def log_probs(self, audio: Tensor, audio_lens: Tensor) -> tuple[Tensor, Tensor]:
        """Like forward, but long inputs go through `chunk` windows (`encode_long`:
        the head is per frame, so stitching frames stitches log-probs)."""
        enc, enc_lens = self.encode_long(audio, audio_lens)  # (B, D, T')
        return self.head_log_probs(enc), enc_lens  # (B, T', V)


def strip_space_before_punctuation(text: str, punctuation: str = "'.,?!") -> str:
    """NeMo's char decoding drops the space before a punctuation label:
    "vj '" -> "vj'"."""
    for mark in punctuation:
        text = text.replace(" " + mark, mark)
    return text
