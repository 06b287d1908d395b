"""SALMModel: a small language model that listens (audio encoder + adapter + LM).

SALM (Chen et al. 2024, "SALM: Speech-augmented Language Model with In-context
Learning", arXiv:2310.09424, Sec. 2; NeMo speechlm2's SALM):
    audio (B, S) -> frozen ASR encoder -> (B, D_enc, T') -> adapter + projection
        -> frames (B, T'', D_lm)
    prompt <|bos|><|user|> ... <|audio|> ... <|assistant|> -> token embeddings, the
        one <|audio|> embedding replaced by that item's T''_b frames (splice)
    [prompt with audio ; answer <|eos|>] -> TransformerLM -> next-token loss on the
        answer tokens only (prompt, audio and padding masked out)
Trained: the adapter and projection (the ASR encoder and the LM are frozen by the
`freeze` name patterns), optionally LoRA on the LM's attention (Hu et al. 2021,
arXiv:2106.09685). The encoder comes from a minispeech ASR model file, the LM and its
tokenizer from a TextLMModel file (lm_model.py); both files are stored inside this
model's file as artifacts.
Differences from NeMo's SALM: a from-scratch LM instead of a pretrained LLM; optional
frame stacking or pooling in the adapter; `ablation: silence` replaces every recording
by silence of the same length (the check that answers come from the audio).

`encoder_layers` lets the adapter read hidden states of the encoder besides (or
instead of) its output, as the SUPERB benchmark's probes do (Yang et al. 2021,
arXiv:2105.01051, Sec. 3): each selected state is layer-normalized (no parameters),
then either concatenated along the channels (`encoder_layer_mix: concat`) or mixed
with learned softmax weights, h = sum_l softmax(w)_l LN(h_l) (`weighted`). A CTC
encoder's last layers keep the words and drop the voice; its first keep both.

`ctc_compress` (ctc_compress.py) shortens what the adapter reads to one vector per
label the ASR model's CTC head recognizes (`merge`: runs of equal argmax labels
averaged; `drop_blank`: blank runs removed too), and `ctc_posteriors: true` appends
the CTC head's label probabilities to every frame: the adapter then starts from the
letters the ASR model heard, and the LM reads a sequence about as long as the text.

`soft_tokens` (soft_tokens.py) adds to each compressed frame the LM embedding its CTC
posteriors expect; the adapter's projection starts at zero and learns a correction.

`transcript_ctc: w` adds w times a CTC loss that reads each adapted frame as LM
tokens against the recording's transcript (transcript_ctc.py), for the items whose
recording has a `transcribe` row.
`spec_augment:` masks the encoder's input features while the adapter trains (as NeMo's
perception module can), at the cost of the encoder cache.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from minispeech.asr.asr_model import pad_waves
from minispeech.audio.augment import SpecAugment
from minispeech.core.config import ConfigError, check_arguments, check_keys
from minispeech.core.model import SpeechModel, restore_from
from minispeech.nn.freeze import freeze
from minispeech.speechlm.adapter import ModalityAdapter
from minispeech.speechlm.ctc_compress import ctc_compress
from minispeech.speechlm.dataset import QADataset, collate_qa, format_prompt
from minispeech.speechlm.lm_model import (
    DATASET_KEYS,
    TextLMModel,
    answer_from_embeds,
    generation_config,
    next_token_loss,
)
from minispeech.speechlm.lora import add_lora
from minispeech.speechlm.salm_config import (
    check_encoder_width,
    choice,
    ctc_options,
    encoder_layers,
    lora_settings,
    loss_weight,
    prompt_format,
    soft_token_temperature,
)
from minispeech.speechlm.scoring import qa_metrics, qa_stats
from minispeech.speechlm.soft_tokens import soft_token_embeddings
from minispeech.speechlm.tokenizer import AUDIO
from minispeech.speechlm.transcript_ctc import frames_as_tokens_ctc

MODEL_KEYS = (
    "_target_",
    "asr_model",
    "lm_model",
    "prompt_format",
    "adapter",
    "lora",
    "freeze",
    "ablation",
    "encoder_width",
    "encoder_layers",
    "encoder_layer_mix",
    "ctc_compress",
    "ctc_posteriors",
    "spec_augment",
    "transcript_ctc",
    "soft_tokens",
    "generation",
    "train_ds",
    "validation_ds",
    "test_ds",
    "optim",
)
LAYER_MIXES = ("concat", "weighted")
DEFAULT_FREEZE = ["asr.*", "lm.*"]


class SALMModel(SpeechModel):
    """ASR encoder (frozen) + modality adapter + chat LM (frozen or LoRA)."""

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        check_keys("model", self.cfg, MODEL_KEYS, type(self).__name__)
        for key in ("asr_model", "lm_model"):
            if key not in self.cfg:
                raise ConfigError(f"model.{key}: the model file to build on is missing")
        self.asr = restore_from(self.register_artifact("asr_model"))
        if not hasattr(self.asr, "encoder"):
            raise ConfigError(
                f"model.asr_model: {type(self.asr).__name__} has no encoder"
            )
        text_lm = restore_from(self.register_artifact("lm_model"))
        if not isinstance(text_lm, TextLMModel):
            raise ConfigError("model.lm_model: not a TextLMModel file")
        self.tokenizer, self.lm = text_lm.tokenizer, text_lm.lm
        self.sample_rate = self.asr.sample_rate
        check_encoder_width(self.cfg, self.asr.encoder.d_model)
        self.encoder_layers = encoder_layers(self.cfg, self.asr.encoder)
        self.layer_mix = choice(self.cfg, "encoder_layer_mix", LAYER_MIXES, "concat")
        n_states = len(self.encoder_layers or [None])
        self.layer_weights = None  # softmax weights over the hidden states (weighted)
        if self.layer_mix == "weighted" and self.encoder_layers:
            self.layer_weights = torch.nn.Parameter(torch.zeros(n_states))
        d_in = self.asr.encoder.d_model
        if self.layer_mix == "concat":
            d_in *= n_states
        self.temperature = soft_token_temperature(self.cfg, self.asr, self.tokenizer)
        soft = self.soft_tokens = self.temperature is not None
        self.compress, self.posteriors = ctc_options(self.cfg, self.asr, soft)
        if self.posteriors:
            d_in += self.asr.num_classes  # V with the blank
        self.prompt_format = prompt_format(self.cfg, text_lm.prompt_format)
        adapter_cfg = self.section("adapter")
        check_arguments(
            ModalityAdapter,
            adapter_cfg,
            "model.adapter",
            ("d_in", "d_out", "embedding"),
        )
        try:
            self.adapter = ModalityAdapter(
                d_in, self.lm.d_model, **adapter_cfg, embedding=self.lm.embedding
            )
        except ValueError as err:
            raise ConfigError(f"model.adapter: {err}") from err
        for param in self.adapter.projection.parameters() if self.soft_tokens else ():
            torch.nn.init.zeros_(param)  # the frames start as the soft tokens alone
        self.transcript_ctc = loss_weight(self.cfg, "transcript_ctc")
        self.ctc_blank = None  # (D_lm,) the blank's "embedding" for transcript_ctc
        if self.transcript_ctc:
            self.ctc_blank = torch.nn.Parameter(torch.zeros(self.lm.d_model))
        aug_cfg = self.section("spec_augment")
        check_arguments(SpecAugment, aug_cfg, "model.spec_augment")
        self.spec_augment = SpecAugment(**aug_cfg) if aug_cfg else None
        self.gen_cfg = generation_config(self.section("generation"))
        self.ablation = choice(self.cfg, "ablation", ("none", "silence"), "none")
        freeze(self, list(self.cfg.get("freeze", DEFAULT_FREEZE)))
        lora = lora_settings(self.cfg.get("lora"))  # after freezing: LoRA trains
        self.lora_names = add_lora(self, **lora) if lora else []
        self.encoder_cache: dict = {}  # recording key -> run_encoder's output (D', T')

    def train(self, mode: bool = True):
        """The frozen ASR model always runs as at inference (no SpecAugment,
        no dropout, fixed batch-norm statistics)."""
        super().train(mode)
        self.asr.eval()
        return self

    # ------------------------------------------------------------ the network
    @property
    def augmenting(self) -> bool:
        """Training with `spec_augment`: the encoder reads masked features, so its
        output is new every time (no cache)."""
        return self.training and self.spec_augment is not None

    def perceive(self, audio: Tensor, audio_lens: Tensor, keys=None):
        """audio (B, S) -> adapted frames (B, T'', D_lm), lens (B,). `keys` (one per
        item, e.g. the file path) let a frozen encoder encode each recording once."""
        enc, enc_lens = self.encode_audio(audio, audio_lens, keys)  # (B, L D_enc, T')
        if self.layer_weights is not None:
            states = enc.unflatten(1, (len(self.encoder_layers), -1))  # (B, L, D, T')
            weights = self.layer_weights.softmax(0)  # (L,)
            enc = torch.einsum("l,bldt->bdt", weights, states)  # (B, D_enc, T')
        frames, lens = self.adapter(enc, enc_lens)  # (B, T'', D_lm)
        if self.soft_tokens:  # + the expected LM embedding of each frame's piece
            probs = enc[:, -self.asr.num_classes :].transpose(1, 2)  # (B, J, V + 1)
            soft = soft_token_embeddings(
                probs, self.asr.blank, self.lm.embedding.weight
            )
            skip = frames.size(1) - soft.size(1)  # the statistics frame, if any
            frames = torch.cat([frames[:, :skip], frames[:, skip:] + soft], 1)
        return frames, lens

    def run_encoder(self, audio: Tensor, audio_lens: Tensor):
        """The ASR encoder's output (B, D_enc, T'), or with `encoder_layers` its
        selected hidden states, each layer-normalized, stacked (B, L D_enc, T');
        then the CTC posteriors appended (B, D' + V, T') and the frames compressed
        (B, D', J) when asked. In training with `spec_augment`, the encoder reads
        masked features."""
        if self.encoder_layers is None and not self.augmenting:
            enc, enc_lens = self.asr.encode(audio, audio_lens)  # (B, D_enc, T')
            x = enc.transpose(1, 2)  # (B, T', D_enc)
        else:
            feats, feat_lens = self.asr.preprocessor(audio, audio_lens)  # (B, M, T)
            feats = feats[..., : int(feat_lens.max())]  # as `encode` at inference
            if self.augmenting:
                feats = self.spec_augment(feats, feat_lens)  # (B, M, T)
            layers = self.encoder_layers
            enc, enc_lens, *hidden = self.asr.encoder(
                feats, feat_lens, return_hidden=layers is not None
            )
            if layers is None:
                x = enc.transpose(1, 2)  # (B, T', D_enc)
            else:
                states = [hidden[0][i].transpose(1, 2) for i in layers]  # (B, T', D)
                states = [F.layer_norm(h, h.shape[-1:]) for h in states]
                x = torch.cat(states, -1)  # (B, T', L D)
        if self.compress == "none" and not self.posteriors:
            return x.transpose(1, 2), enc_lens  # (B, D', T')
        log_probs = self.asr.head_log_probs(enc)  # (B, T', V)
        if self.posteriors:
            probs = (log_probs / (self.temperature or 1.0)).softmax(-1)  # (B, T', V)
            x = torch.cat([x, probs.to(x.dtype)], -1)  # (B, T', D' + V)
        if self.compress != "none":
            labels = log_probs.argmax(-1)  # (B, T')
            x, enc_lens = ctc_compress(
                x, labels, enc_lens, self.asr.blank, self.compress
            )  # (B, J, D')
        return x.transpose(1, 2), enc_lens  # (B, D', J)

    def encode_audio(self, audio: Tensor, audio_lens: Tensor, keys=None):
        """`run_encoder`'s output (B, D', T'), lens (B,). A frozen encoder in
        eval mode is a fixed function of the audio, so with `keys` each recording's
        output is kept (`encoder_cache`, not saved) and later batches reuse it: a
        recording is asked several questions, every epoch."""
        if self.ablation == "silence":
            audio = torch.zeros_like(audio)
        trainable = any(p.requires_grad for p in self.asr.parameters())
        if keys is None or trainable or self.augmenting or self.ablation != "none":
            with torch.set_grad_enabled(trainable and torch.is_grad_enabled()):
                return self.run_encoder(audio, audio_lens)  # (B, D', T')
        missing = [b for b, key in enumerate(keys) if key not in self.encoder_cache]
        if missing:
            index = torch.tensor(missing, device=audio.device)
            lens = audio_lens[index]  # (B_missing,)
            with torch.no_grad():
                enc, enc_lens = self.run_encoder(audio[index, : int(lens.max())], lens)
            for j, b in enumerate(missing):
                self.encoder_cache[keys[b]] = enc[j, :, : int(enc_lens[j])]
        outputs = [self.encoder_cache[key] for key in keys]  # (D_enc, T'_b) each
        enc_lens = torch.tensor([out.size(1) for out in outputs], device=audio.device)
        enc = audio.new_zeros(len(keys), outputs[0].size(0), int(enc_lens.max()))
        for b, out in enumerate(outputs):
            enc[b, :, : out.size(1)] = out
        return enc, enc_lens  # (B, D', T'), (B,)

    def splice(self, prompt: list[int], frames: Tensor, answer=()) -> Tensor:
        """One item's LM input: embeddings of prompt (+ answer) with the <|audio|>
        embedding replaced by `frames` (T'', D) -> (L_prompt - 1 + T'' + L_ans, D)."""
        at = prompt.index(self.tokenizer.audio_id)
        ids = torch.tensor([*prompt, *answer], device=frames.device)
        embeds = self.lm.embed(ids.unsqueeze(0)).squeeze(0)  # (L, D)
        return torch.cat([embeds[:at], frames, embeds[at + 1 :]])  # (L', D)

    def forward(
        self, audio, audio_lens, prompt_ids, answer_ids, keys=None
    ) -> tuple[Tensor, ...]:
        """Teacher forcing: -> logits (B, L-1, V), targets (B, L-1), scored (B, L-1)
        where position j predicts input j+1, scored only on answer tokens."""
        frames, lens = self.perceive(audio, audio_lens, keys)  # (B, T'', D)
        return self.read(frames, lens, prompt_ids, answer_ids)

    def read(self, frames: Tensor, lens: Tensor, prompt_ids, answer_ids):
        """The LM on the spliced prompts and answers: frames (B, T'', D), lens (B,)
        -> logits (B, L-1, V), targets (B, L-1), scored (B, L-1) as `forward`."""
        seqs, n_before = [], []
        for b, (prompt, answer) in enumerate(zip(prompt_ids, answer_ids)):
            seqs.append(self.splice(prompt, frames[b, : lens[b]], answer))
            n_before.append(seqs[-1].size(0) - len(answer))  # prompt + audio length
        inputs = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True)  # (B, L, D)
        n_batch, length = inputs.shape[:2]
        targets = torch.full((n_batch, length), self.tokenizer.pad_id)  # (B, L)
        scored = torch.zeros(n_batch, length, dtype=torch.bool)  # (B, L)
        for b, answer in enumerate(answer_ids):
            start = n_before[b]
            targets[b, start : start + len(answer)] = torch.tensor(answer)
            scored[b, start : start + len(answer)] = True
        mask = torch.arange(length) < torch.tensor([s.size(0) for s in seqs])[:, None]
        device = inputs.device
        logits, _ = self.lm(
            inputs_embeds=inputs[:, :-1], attention_mask=mask[:, :-1].to(device)
        )  # (B, L-1, V)
        return logits, targets[:, 1:].to(device), scored[:, 1:].to(device)

    def frame_ctc_loss(self, frames: Tensor, lens: Tensor, token_ids) -> Tensor:
        """`transcript_ctc`'s loss: frames (B, T'', D) read as LM tokens against
        `token_ids` (a list per item). The statistics frame, when there is one, is
        not a word and is left out."""
        skip = 1 if self.adapter.stats is not None else 0
        return frames_as_tokens_ctc(
            frames[:, skip:],
            lens - skip,
            token_ids,
            self.lm.embedding.weight,
            self.ctc_blank,
        )

    # ------------------------------------------------------------ data and steps
    def build_dataset(self, ds_cfg: dict) -> QADataset:
        check_keys("dataset section", ds_cfg, DATASET_KEYS, required=DATASET_KEYS[:1])
        return QADataset(
            ds_cfg["manifest_filepath"],
            self.tokenizer,
            self.prompt_format,
            sample_rate=self.sample_rate,
            transcripts_manifest=ds_cfg.get("transcripts_manifest"),
            cache_audio=ds_cfg.get("cache_audio", True),
        )

    def collate(self, items: list) -> dict:
        return collate_qa(items)

    def answer_loss(self, batch: dict) -> tuple[Tensor, Tensor, Tensor]:
        """The answers' next-token loss of a batch, with the adapted frames (B, T'',
        D) and lens (B,) it was computed from. The batch's keys let the frozen
        encoder encode each recording once."""
        frames, lens = self.perceive(
            batch["audio"], batch["audio_lens"], batch.get("keys")
        )
        logits, targets, scored = self.read(
            frames, lens, batch["prompt_ids"], batch["answer_ids"]
        )
        return next_token_loss(logits, targets, scored), frames, lens

    def training_step(self, batch: dict) -> dict:
        loss, frames, lens = self.answer_loss(batch)
        if not self.transcript_ctc:
            return {"loss": loss}
        ctc = self.frame_ctc_loss(frames, lens, batch["transcript_ids"])
        return {
            "loss": loss + self.transcript_ctc * ctc,
            "transcript_ctc": ctc.detach(),
        }

    def validation_step(self, batch: dict) -> dict:
        loss, frames, lens = self.answer_loss(batch)  # the answers' loss only
        hyps = self.answer_frames(frames, lens, batch["prompt_ids"])
        stats = qa_stats(batch["type"], batch["answer"], hyps, batch["phrasing"])
        return {**stats, "loss_sum": float(loss) * len(hyps), "count": len(hyps)}

    def validation_metrics(self, stats: dict) -> dict:
        return {"val_loss": stats["loss_sum"] / stats["count"], **qa_metrics(stats)}

    # ------------------------------------------------------------ answering
    def answer_batch(self, audio, audio_lens, prompt_ids, keys=None, **gen):
        """Generated answers to one prompt per recording (left-padded batch)."""
        frames, lens = self.perceive(audio, audio_lens, keys)  # (B, T'', D)
        return self.answer_frames(frames, lens, prompt_ids, **gen)

    def answer_frames(self, frames: Tensor, lens: Tensor, prompt_ids, **gen):
        """`answer_batch` from adapted frames (B, T'', D), lens (B,)."""
        embeds = [
            self.splice(p, frames[b, : lens[b]]) for b, p in enumerate(prompt_ids)
        ]
        return answer_from_embeds(
            self.lm, self.tokenizer, embeds, {**self.gen_cfg, **gen}
        )

    @torch.no_grad()
    def answer(self, inputs, questions, batch_size: int = 8, **gen) -> list[str]:
        """Answer `questions` (one per input: a file or a waveform (S,)); a question
        without the placeholder is put in `prompt_format`, else used as it is."""
        if isinstance(questions, str):
            questions = [questions] * len(inputs)
        prompts = [
            self.tokenizer.chat_prompt(
                q if AUDIO in q else format_prompt(self.prompt_format, q)
            )
            for q in questions
        ]
        waves, answers = self.load_inputs(inputs), []
        was_training, device = self.training, next(self.parameters()).device
        self.eval()
        for start in range(0, len(waves), batch_size):
            audio, lens = pad_waves(waves[start : start + batch_size])  # (B, S)
            chunk = prompts[start : start + batch_size]
            answers += self.answer_batch(
                audio.to(device), lens.to(device), chunk, **gen
            )
        self.train(was_training)
        return answers
