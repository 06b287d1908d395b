"""AEDModel: attention encoder-decoder ASR told what to do by a Canary-style prompt.

An encoder (FastConformer; Rekesh et al. 2023, arXiv:2305.05084) and an autoregressive
Transformer decoder (Vaswani et al. 2017, "Attention Is All You Need", arXiv:1706.03762,
Sec. 3.1) that models P(y | x) = prod_u P(y_u | y_<u, x) after a prompt
<|startoftranscript|> <|src|> <|task|> <|tgt|> <|(no)pnc|> (aed_tokenizer.py), as NeMo's
Canary (EncDecMultiTaskModel; Puvvada et al. 2024, arXiv:2406.19674):
    audio (B, S) -> encoder -> (B, D, T') -> projection -> memory (B, T', D_dec)
    prompt + text + EOS -> decoder (cross-attending to memory) -> log-probs (B, U, V)
The vocabulary is padded to a multiple of 8 (V), as NeMo pads it.

Loss: label-smoothed cross-entropy (Szegedy et al. 2016, "Rethinking the Inception
Architecture", arXiv:1512.00567, Sec. 7; Vaswani Sec. 5.4), per scored token
    L = -(1 - eps) ln p(y) - (eps / V) sum_v ln p(v),
averaged over the text tokens and EOS (the prompt is given, not predicted). Optional
auxiliary CTC on the encoder (Kim, Hori & Watanabe 2017, "Joint CTC-Attention Based
End-to-End Speech Recognition Using Multi-Task Learning", arXiv:1609.06773):
L = (1 - w) L_att + w L_ctc, with w = `loss.ctc_weight` (default 0: no CTC head).

Differences from NeMo: NeMo also scores the prompt tokens unless
`use_loss_mask_for_prompt`; the CTC head is minispeech's. Decoding (greedy, beam) is in
aed_decoding.py (`decode_step` is the one call it makes into the model); attention
rescoring (the CTC head's beam, rescored by the decoder) in aed_rescoring.py.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from minispeech.asr.aed_dataset import PromptedDataset, written_form_scores
from minispeech.asr.aed_rescoring import check_rescoring, rescores, rescoring_decode
from minispeech.asr.aed_tokenizer import (
    PNC,
    SPECIAL,
    AggregateTokenizer,
    train_aggregate_if_missing,
)
from minispeech.asr.asr_model import ASRModel, pad_waves
from minispeech.asr.config_sections import check_decoding
from minispeech.asr.lexicon import WordState, read_lexicon
from minispeech.core.config import ConfigError
from minispeech.data import collate_audio_text
from minispeech.nn.ctc import ctc_loss
from minispeech.nn.label_smoothing import label_smoothed_nll
from minispeech.nn.transformer import DecoderCache, TransformerDecoder

NO_TEXT = "\x00"  # the text of special tokens for the lexicon: no word holds it
PAD_MULTIPLE = 8  # NeMo pads the embedding and the head to a multiple of 8 tokens
TOKENIZER_KEYS = ("dir", "langs", "vocab_size", "train_manifest")
PROMPT_DEFAULTS = {
    "source_lang": "en",
    "task": "transcribe",
    "target_lang": "en",
    "pnc": False,
}
LOSS_DEFAULTS = {"label_smoothing": 0.0, "ctc_weight": 0.0}
# max_generation_delta < 0: no cap from the encoder length (NeMo's default, -1);
# strategy "greedy" decodes with beam 1 whatever beam_size says; lexicon: word_state;
# "attention_rescoring" (aed_rescoring.py): the CTC head's beam of beam_size, with the
# word LM (lm_path, lm_alpha, lm_beta) and lexicon, rescored by the decoder
DECODING_DEFAULTS = {
    "strategy": "beam",
    "beam_size": 1,
    "length_penalty": 0.0,
    "max_generation_delta": -1,
    "lexicon": None,
    "lm_path": None,
    "lm_alpha": 0.5,
    "lm_beta": 1.0,
    "rescoring_ctc_weight": 0.5,
}
STRATEGIES = ("greedy", "beam", "attention_rescoring")


class AEDModel(ASRModel):
    """Encoder + projection + Transformer decoder (+ optional auxiliary CTC head)."""

    extra_keys = frozenset({"prompt", "decoder", "loss", "decoding", "freeze"})

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        self.prompt_cfg = {**PROMPT_DEFAULTS, **self.section("prompt")}
        try:  # the training prompts (config's, and each pnc choice); tokens must exist
            self.train_prompt = self.tokenizer.prompt_ids(**self.prompt_cfg)
            self.task_prompts = {
                pnc: self.tokenizer.prompt_ids(**{**self.prompt_cfg, "pnc": pnc})
                for pnc in (False, True)
            }
        except ValueError as error:
            raise ConfigError(f"model.prompt: {error}") from None
        loss = {**LOSS_DEFAULTS, **self.section("loss")}
        self.label_smoothing = float(loss["label_smoothing"])
        self.ctc_weight = float(loss["ctc_weight"])
        if not (0 <= self.label_smoothing < 1 and 0 <= self.ctc_weight < 1):
            raise ConfigError("model.loss: label_smoothing and ctc_weight in [0, 1)")
        self.decoding_cfg = {**DECODING_DEFAULTS, **self.section("decoding")}
        check_decoding(self.decoding_cfg, STRATEGIES)
        self.lexicon_cache, self.lm_cache = {}, {}  # path -> words / LM, read once
        dec_cfg = self.section("decoder")
        self.decoder = TransformerDecoder(self.num_classes, **dec_cfg)
        self.max_sequence_length = int(dec_cfg.get("max_len", 512))
        d_enc, d_dec = self.encoder.d_model, int(dec_cfg["d_model"])
        # NeMo's encoder_decoder_proj: a Linear only when the widths differ
        self.projection = nn.Linear(d_enc, d_dec) if d_enc != d_dec else nn.Identity()
        self.ctc_head = None
        if self.ctc_weight > 0:
            self.ctc_head = nn.Linear(d_enc, self.num_classes + 1)  # + blank (last)
        check_rescoring(self.decoding_cfg, self.ctc_head is not None)
        self.frozen = self.freeze_from_config()  # after every module is built

    def config_sections(self) -> dict:
        sections = super().config_sections()
        for name in ("train_ds", "validation_ds", "test_ds"):  # + pnc_fraction
            sections[name] = ((*sections[name][0], "pnc_fraction"), (), ())
        return {
            **sections,
            "tokenizer": (TOKENIZER_KEYS, (), ("dir",)),
            "prompt": (tuple(PROMPT_DEFAULTS), (), ()),
            "decoder": (TransformerDecoder, ("vocab_size",), ()),
            "loss": (tuple(LOSS_DEFAULTS), (), ()),
            "decoding": (tuple(DECODING_DEFAULTS), (), ()),
        }

    # ------------------------------------------------------------ vocabulary
    def _build_tokenizer(self) -> AggregateTokenizer:
        """`tokenizer: {dir, langs}`: the folder of spl_tokens.model + <lang>.model,
        trained there from `train_manifest` on first use."""
        if "labels" in self.cfg or "tokenizer" not in self.cfg:
            raise ConfigError(
                "AEDModel needs tokenizer: {dir: ..., langs: [en]} (no labels)"
            )
        tok_cfg = self.cfg["tokenizer"]
        langs = list(tok_cfg.get("langs") or ["en"])
        train_aggregate_if_missing(tok_cfg, langs)
        try:
            return AggregateTokenizer.load(
                self.register_artifact("tokenizer.dir"), langs
            )
        except (FileNotFoundError, ValueError) as error:
            raise ConfigError(f"model.tokenizer: {error}") from None

    @property
    def num_classes(self) -> int:
        """V: the aggregate vocabulary padded to a multiple of 8 (NeMo's layout)."""
        return -(-self.tokenizer.vocab_size // PAD_MULTIPLE) * PAD_MULTIPLE

    @property
    def blank(self) -> int:
        """The blank of the auxiliary CTC head: index V, after the padded vocabulary."""
        return self.num_classes

    # ------------------------------------------------------------ the network
    def encode(self, audio: Tensor, audio_lens: Tensor) -> tuple[Tensor, Tensor]:
        """audio (B, S) -> memory (B, T', D_dec) (projected, batch first), lens (B,)."""
        enc, enc_lens = super().encode(audio, audio_lens)  # (B, D, T')
        return self.projection(enc.transpose(1, 2)), enc_lens  # (B, T', D_dec)

    def decode_step(
        self,
        tokens: Tensor,
        memory: Tensor,
        memory_lens: Tensor,
        cache: DecoderCache | None = None,
    ) -> tuple[Tensor, DecoderCache]:
        """tokens (B, L_new) following the cache's tokens (None: a new sequence) ->
        (log_probs (B, L_new, V) float32, the cache grown by L_new tokens). The
        padding ids above the vocabulary get -inf: decoding never emits them."""
        log_probs, cache = self.log_probs(tokens, memory, memory_lens, cache)
        ids = torch.arange(log_probs.size(-1), device=log_probs.device)  # (V,)
        padding = ids >= self.tokenizer.vocab_size  # (V,)
        return log_probs.masked_fill(padding, float("-inf")), cache  # (B, L_new, V)

    def log_probs(self, tokens, memory, memory_lens, cache=None, token_lens=None):
        """The decoder's log-softmax over all V outputs (NeMo's, padding included):
        tokens (B, L), memory (B, T', D_dec) -> (B, L, V), cache; `token_lens` (B,)
        masks right-padded tokens."""
        enc = memory.transpose(1, 2)  # (B, D_dec, T')
        logits, cache = self.decoder(tokens, enc, memory_lens, cache, token_lens)
        return logits.float().log_softmax(dim=-1), cache  # (B, L, V)

    def forward(
        self,
        audio: Tensor,
        audio_lens: Tensor,
        transcript: Tensor,
        transcript_lens: Tensor,
    ) -> Tensor:
        """Teacher forcing: audio (B, S), transcript (B, U) -> log_probs (B, U, V), the
        distribution of the token after each position (NeMo's transf_log_probs)."""
        memory, memory_lens = self.encode(audio, audio_lens)  # (B, T', D_dec)
        log_probs, _ = self.log_probs(
            transcript, memory, memory_lens, None, transcript_lens
        )
        return log_probs  # (B, U, V)

    def ctc_log_probs(self, enc: Tensor) -> Tensor:
        """The auxiliary CTC head: enc (B, D, T') -> log-probs (B, T', V+1) float32."""
        return self.ctc_head(enc.transpose(1, 2)).float().log_softmax(-1)

    def encode_with_ctc(self, audio: Tensor, audio_lens: Tensor):
        """audio (B, S) -> memory (B, T', D_dec), lens (B,), the CTC head's
        log-probs (B, T', V+1)."""
        enc, enc_lens = super().encode(audio, audio_lens)  # (B, D, T')
        memory = self.projection(enc.transpose(1, 2))  # (B, T', D_dec)
        return memory, enc_lens, self.ctc_log_probs(enc)

    @torch.no_grad()
    def cross_attention(self, audio, audio_lens, transcript) -> list[Tensor]:
        """Teacher-forced cross-attention weights, one (B, H, U, T') per decoder layer:
        where each position of `transcript` (B, U) looks in the audio (B, S)."""
        memory, memory_lens = self.encode(audio, audio_lens)  # (B, T', D_dec)
        enc = memory.transpose(1, 2)  # (B, D_dec, T')
        _, cache = self.decoder(transcript, enc, memory_lens, need_weights=True)
        return cache.cross_weights

    # ------------------------------------------------------------ training
    def build_dataset(self, ds_cfg: dict) -> PromptedDataset:
        """The ASR dataset, wrapped so that a `pnc_fraction` of the items train the
        <|pnc|> prompt on their written form (`text_pnc`)."""
        fraction = ds_cfg.get("pnc_fraction", 0.0)
        number = isinstance(fraction, (int, float)) and not isinstance(fraction, bool)
        if not (number and 0 <= fraction <= 1):
            raise ConfigError(f"pnc_fraction: a number in [0, 1], not {fraction!r}")
        rest = {k: v for k, v in ds_cfg.items() if k != "pnc_fraction"}
        return PromptedDataset(super().build_dataset(rest), self.tokenizer, fraction)

    def collate(self, items: list) -> dict:
        """collate_audio_text + each item's decoder sequence: `transcript` (B, P+U+1)
        = prompt + text + EOS padded with <pad>, `transcript_lens`, `prompt_lens`;
        the prompt is <|pnc|> or <|nopnc|> as each item drew (`pnc` (B,) bool), else
        the configured one. `texts_pnc`: the written forms (None where absent)."""
        batch = collate_audio_text(items)
        tokens, token_lens = batch["tokens"], batch["token_lens"]  # (B, U)
        prompts = [
            self.task_prompts[item["pnc"]] if "pnc" in item else self.train_prompt
            for item in items
        ]
        n_batch, n_prompt = tokens.size(0), len(prompts[0])
        if any(len(p) != n_prompt for p in prompts):
            raise ValueError("the prompts of one batch must have the same length")
        pad, eos = self.tokenizer.pad_id, self.tokenizer.eos_id
        transcript = torch.full((n_batch, n_prompt + tokens.size(1) + 1), pad)
        transcript[:, :n_prompt] = torch.tensor(prompts)  # (B, P)
        for b, length in enumerate(token_lens.tolist()):
            transcript[b, n_prompt : n_prompt + length] = tokens[b, :length]
            transcript[b, n_prompt + length] = eos
        batch["transcript"] = transcript  # (B, P+U+1)
        batch["transcript_lens"] = token_lens + n_prompt + 1  # (B,)
        batch["prompt_lens"] = torch.full((n_batch,), n_prompt)  # (B,)
        batch["pnc"] = torch.tensor([bool(item.get("pnc")) for item in items])  # (B,)
        batch["texts_pnc"] = [item.get("text_pnc") for item in items]
        return batch

    def training_step(self, batch: dict) -> dict:
        enc, enc_lens = super().encode(batch["audio"], batch["audio_lens"])  # (B,D,T')
        memory = self.projection(enc.transpose(1, 2))  # (B, T', D_dec)
        transcript, lens = batch["transcript"], batch["transcript_lens"]  # (B, U)
        log_probs, _ = self.log_probs(
            transcript[:, :-1], memory, enc_lens, None, lens - 1
        )  # (B, U-1, V): position j predicts token j+1
        # score the labels j+1 from the first text token through EOS
        j = torch.arange(log_probs.size(1), device=lens.device)  # (U-1,)
        scored = (j >= batch["prompt_lens"].unsqueeze(1) - 1) & (
            j < lens.unsqueeze(1) - 1
        )  # (B, U-1)
        loss = label_smoothed_nll(
            log_probs, transcript[:, 1:], scored, self.label_smoothing
        )
        if self.ctc_head is None:
            return {"loss": loss}
        ctc = ctc_loss(
            self.ctc_log_probs(enc),  # (B, T', V+1)
            batch["tokens"],
            enc_lens,
            batch["token_lens"],
            blank=self.blank,
            reduction="mean",  # per target token, like the attention loss
            zero_infinity=True,
        )
        total = (1 - self.ctc_weight) * loss + self.ctc_weight * ctc
        return {"loss": total, "aed_loss": loss.detach(), "ctc_loss": ctc.detach()}

    # ------------------------------------------------------------ validation
    def validation_step(self, batch: dict) -> dict:
        """The <|nopnc|> loss and error counts (ASRModel's), plus, when every item
        has a written form, the <|pnc|> transcripts scored against it."""
        stats = super().validation_step(batch)
        written = batch.get("texts_pnc") or []
        if written and all(isinstance(text, str) for text in written):
            memory, lens = self.encode(batch["audio"], batch["audio_lens"])
            ids = self.generate(memory, lens, self.task_prompts[True], self.beam_size())
            hyps = [self.tokenizer.ids_to_text(seq) for seq in ids]
            stats.update(written_form_scores(written, hyps, batch["texts"]))
        return stats

    def validation_metrics(self, stats: dict) -> dict:
        """ASRModel's metrics (the <|nopnc|> prompt) + val_wer_pnc (written-form WER:
        case and punctuation count) and val_numerals (exact match of the numerals in
        the sentences with a digit string) when the manifest has `text_pnc`."""
        metrics = super().validation_metrics(stats)
        if stats.get("pnc_words"):
            metrics["val_wer_pnc"] = stats["pnc_word_errors"] / stats["pnc_words"]
            digit_sentences = max(stats["digit_sentences"], 1)
            metrics["val_numerals"] = stats["numerals_exact"] / digit_sentences
        return metrics

    # ------------------------------------------------------------ decoding
    def max_generation_length(self, n_frames: int | Tensor, prompt_len: int) -> int:
        """How many tokens decoding may emit after a `prompt_len`-token prompt
        (NeMo's cap, `generation_cap`); `n_frames`: T'_padded, or the (B,) lens."""
        from minispeech.asr.aed_decoding import generation_cap

        delta = int(self.decoding_cfg["max_generation_delta"])
        return generation_cap(n_frames, prompt_len, self.max_sequence_length, delta)

    def generate(
        self, memory: Tensor, memory_lens: Tensor, prompt: Sequence[int], beam_size=1
    ) -> list[list[int]]:
        """memory (B, T', D_dec) -> token ids per item after `prompt` (no EOS). With
        `decoding.lexicon`, a prompt without <|pnc|> spells only lexicon words (the
        written form, capitalized and punctuated, is left free)."""
        from minispeech.asr.aed_decoding import aed_beam_search, aed_greedy_decode

        prompt_ids = torch.tensor(list(prompt), device=memory.device)
        prompt_ids = prompt_ids.expand(memory.size(0), -1)  # (B, P)
        args = (memory, memory_lens, prompt_ids, self.tokenizer.eos_id)
        max_len = self.max_generation_length(memory.size(1), len(prompt))
        words = self.word_state(prompt)
        if beam_size == 1 and words is None:
            return aed_greedy_decode(self, *args, max_len)
        penalty = float(self.decoding_cfg["length_penalty"])
        return aed_beam_search(self, *args, max_len, beam_size, penalty, words=words)

    def word_state(self, prompt: Sequence[int]) -> WordState | None:
        """The lexicon constraint after `prompt` (None without `decoding.lexicon` or
        for a <|pnc|> prompt). Special tokens spell nothing (ids_to_text drops them,
        a "▁" among them): NO_TEXT, which no lexicon word holds, keeps them out."""
        lexicon = read_lexicon(self.decoding_cfg, self.lexicon_cache)
        if lexicon is None or self.tokenizer.token_to_id(PNC[True]) in list(prompt):
            return None
        return WordState(self.token_texts(), lexicon)

    def token_texts(self) -> list[str]:
        """The text of every output id, V+1 of them: special tokens, padding ids and
        the CTC blank spell NO_TEXT (ids_to_text drops them; "\u2581" is one)."""
        tokens, lang_of = self.tokenizer.tokens, self.tokenizer.lang_of
        texts = [NO_TEXT if lang_of(i) == SPECIAL else t for i, t in enumerate(tokens)]
        return texts + [NO_TEXT] * (self.num_classes + 1 - len(texts))

    def beam_size(self) -> int:
        """The configured beam: 1 with strategy greedy, else decoding.beam_size."""
        greedy = self.decoding_cfg["strategy"] == "greedy"
        return 1 if greedy else int(self.decoding_cfg["beam_size"])

    @torch.inference_mode()
    def decode(self, audio: Tensor, audio_lens: Tensor) -> list[str]:
        """Transcripts of a batch with the <|nopnc|> prompt (validation, evaluate)."""
        prompt = self.tokenizer.prompt_ids(**{**self.prompt_cfg, "pnc": False})
        ids = self.decode_ids(audio, audio_lens, prompt, self.beam_size())
        return [self.tokenizer.ids_to_text(seq) for seq in ids]

    def decode_ids(self, audio, audio_lens, prompt, beam_size) -> list[list[int]]:
        """Token ids per item after `prompt`: attention rescoring for a <|nopnc|>
        prompt when decoding.strategy asks for it, else `generate`."""
        if rescores(self, prompt):
            return rescoring_decode(self, audio, audio_lens, prompt)
        memory, lens = self.encode(audio, audio_lens)  # (B, T', D_dec)
        return self.generate(memory, lens, prompt, beam_size)

    @torch.inference_mode()
    def transcribe(
        self,
        inputs: Sequence,
        pnc: bool = False,
        beam_size: int | None = None,
        prompt: dict | Sequence[int] | None = None,
        batch_size: int = 8,
    ) -> list[str]:
        """Transcribe (or translate) files or waveforms (S,), `batch_size` at a time.

        `prompt`: prompt fields (source_lang, task, target_lang, pnc) over the
        config's `prompt`, or the prompt's ids; `beam_size` None: decoding.beam_size.
        """
        if prompt is None or isinstance(prompt, dict):
            fields = {**self.prompt_cfg, "pnc": pnc, **(prompt or {})}
            prompt = self.tokenizer.prompt_ids(**fields)
        beam = int(beam_size or self.beam_size())
        was_training, texts = self.training, []
        self.eval()
        waves, device = self.load_inputs(inputs), next(self.parameters()).device
        for start in range(0, len(waves), batch_size):
            audio, audio_lens = pad_waves(waves[start : start + batch_size])  # (B, S)
            ids = self.decode_ids(audio.to(device), audio_lens.to(device), prompt, beam)
            for seq in ids:
                texts.append(self.tokenizer.ids_to_text(seq))
        self.train(was_training)
        return texts
