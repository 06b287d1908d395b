"""TransducerModel: encoder + prediction network + joint network,
trained with RNN-T or TDT.

Graves 2012, "Sequence Transduction with Recurrent Neural Networks",
arXiv:1211.3711: the
encoder (the paper's transcription network) gives f_t, the prediction network gives g_u
from the labels so far, and the joint scores every (t, u) pair: logits (B, T', U+1, V).
The RNN-T loss sums over all monotonic paths through that lattice
(minispeech/asr/rnnt.py). TDT (Xu et al. 2023, arXiv:2304.06795) adds duration logits
to the joint so that decoding
can skip frames (minispeech/asr/tdt.py). Blank is the last token, as in NeMo.
"""

from __future__ import annotations

import torch
from torch import Tensor

from minispeech.asr.asr_model import ASRModel
from minispeech.asr.config_sections import CHUNK_KEYS, check_decoding
from minispeech.asr.lexicon import WordState, drop_unfinished_word, read_lexicon
from minispeech.asr.rnnt import rnnt_loss
from minispeech.asr.rnnt_decoding import rnnt_beam_search, rnnt_greedy_decode
from minispeech.asr.tdt import tdt_loss
from minispeech.asr.tdt_decoding import tdt_beam_search, tdt_greedy_decode
from minispeech.asr.transducer_nets import JointNetwork, PredictionNetwork
from minispeech.core.config import ConfigError

LOSS_KEYS = ("name", "reduction", "fastemit_lambda", "durations", "sigma", "omega")
DECODING_KEYS = ("strategy", "max_symbols", "beam_size", "lexicon")
# JointNetwork arguments the model passes itself (from the encoder, decoder and loss)
JOINT_FIXED = ("encoder_hidden", "pred_hidden", "vocab_size", "num_extra_outputs")


class TransducerModel(ASRModel):
    """RNN-T (`loss.name: rnnt`) or TDT (`loss.name: tdt`, with `durations`)."""

    extra_keys = frozenset({"decoder", "joint", "loss", "decoding", "chunk", "freeze"})

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        self.loss_cfg = {
            "name": "rnnt",
            "reduction": "mean_volume",
            **self.section("loss"),
        }
        self.decoding_cfg = {
            "strategy": "greedy",
            "max_symbols": 10,
            **self.section("decoding"),
        }
        self.durations = list(self.loss_cfg.get("durations") or [])
        if self.loss_cfg["name"] not in ("rnnt", "tdt"):
            raise ConfigError(f"model.loss.name {self.loss_cfg['name']!r}: rnnt or tdt")
        if (self.loss_cfg["name"] == "tdt") != bool(self.durations):
            raise ConfigError(
                "model.loss: name tdt needs durations (and durations need tdt)"
            )
        self.lexicon_cache = {}  # decoding.lexicon path -> words, read on first use
        check_decoding(self.decoding_cfg, ("greedy", "beam"))
        vocab = self.tokenizer.vocab_size
        self.decoder = PredictionNetwork(vocab, **self.section("decoder"))
        self.joint = JointNetwork(
            self.encoder.d_model,
            self.decoder.pred_hidden,
            vocab_size=vocab,
            num_extra_outputs=len(self.durations),
            **self.section("joint"),
        )
        self.frozen = self.freeze_from_config()  # after every module is built

    def config_sections(self) -> dict:
        return {
            **super().config_sections(),
            "decoder": (PredictionNetwork, ("vocab_size",), ()),
            "joint": (JointNetwork, JOINT_FIXED, ()),
            "loss": (LOSS_KEYS, (), ()),
            "decoding": (DECODING_KEYS, (), ()),
            "chunk": (CHUNK_KEYS, (), ()),
        }

    def forward(self, audio: Tensor, audio_lens: Tensor) -> tuple[Tensor, Tensor]:
        """audio (B, S), audio_lens (B,) -> enc (B, D, T'), enc_lens (B,)."""
        return self.encode(audio, audio_lens)

    def training_step(self, batch: dict) -> dict:
        enc, enc_lens = self(batch["audio"], batch["audio_lens"])  # (B, D, T')
        pred, _ = self.decoder(batch["tokens"])  # (B, U+1, Dh)
        logits = self.joint(enc.transpose(1, 2), pred).float()  # (B, T', U+1, V)
        args = (logits, batch["tokens"], enc_lens, batch["token_lens"])
        if self.durations:
            loss = tdt_loss(
                *args,
                durations=self.durations,
                blank=self.blank,
                sigma=self.loss_cfg.get("sigma", 0.0),
                omega=self.loss_cfg.get("omega", 0.0),
                reduction=self.loss_cfg["reduction"],
            )
        else:
            loss = rnnt_loss(
                *args,
                blank=self.blank,
                reduction=self.loss_cfg["reduction"],
                fastemit_lambda=self.loss_cfg.get("fastemit_lambda", 0.0),
            )
        return {"loss": loss}

    def decode_ids(self, enc: Tensor, enc_lens: Tensor) -> list[list[int]]:
        """enc (B, D, T') -> label ids per utterance, by `decoding.strategy`."""
        enc = enc.transpose(1, 2)  # (B, T', D)
        max_symbols = int(self.decoding_cfg["max_symbols"])
        if self.decoding_cfg["strategy"] == "beam":
            beam = int(self.decoding_cfg.get("beam_size", 4))
            lexicon = read_lexicon(self.decoding_cfg, self.lexicon_cache)
            words = (
                None if lexicon is None else WordState(self.tokenizer.tokens, lexicon)
            )
            best = []
            for b in range(enc.shape[0]):
                args = (self.decoder, self.joint, enc[b, : enc_lens[b]])
                if self.durations:
                    hyps = tdt_beam_search(
                        *args, self.durations, beam, max_symbols, words=words
                    )
                else:
                    hyps = rnnt_beam_search(
                        *args, beam_size=beam, max_symbols=max_symbols, words=words
                    )
                tokens = hyps[0].tokens
                if words is not None and not words.finished(tokens)[1]:
                    tokens = drop_unfinished_word(tokens, self.tokenizer.tokens)
                best.append(list(tokens))
            return best
        if self.durations:
            return tdt_greedy_decode(
                self.decoder, self.joint, enc, enc_lens, self.durations, max_symbols
            )
        return rnnt_greedy_decode(self.decoder, self.joint, enc, enc_lens, max_symbols)

    @torch.inference_mode()
    def decode(self, audio: Tensor, audio_lens: Tensor) -> list[str]:
        """Transcripts of a batch: audio (B, S) -> B strings. Inputs longer than
        `chunk.length` seconds are encoded in stitched windows (`encode_long`); the
        decoder then runs over all frames, its state carried across windows."""
        enc, enc_lens = self.encode_long(audio, audio_lens)  # (B, D, T')
        return [self.tokenizer.decode(ids) for ids in self.decode_ids(enc, enc_lens)]
