"""FastPitchModel: text -> mel spectrogram, trained with a learned alignment.

FastPitch (Lancucki 2021, arXiv:2006.06873) with the aligner of Badlani et al. 2022
(arXiv:2108.10447), as NeMo's FastPitchModel (nemo/collections/tts/models/
fastpitch.py) trains it. A training batch flows
    audio (B, S) -> preprocessor (MelSpectrogram) -> mels (B, M, T), mel_lens
    text (B, U), frame pitch (B, T), prior (B, T, U) -> FastPitch teacher-forced
    -> spect (B, M, T), log durations and pitch per token, A_soft, A_hard
and the loss is NeMo's (FastPitch's mel, duration and pitch errors plus Badlani's
forward-sum and binarization losses):
    L = L_mel + 0.1 L_dur + 0.1 L_pitch + L_forward_sum + w_bin L_bin,
    L_mel   = MSE(spect, mels) over target values != 0 (0 marks padding),
    L_dur   = MSE(log_durs_predicted, log(1 + d_hard)) over tokens,
    L_pitch = MSE(pitch_predicted, token-averaged target pitch) over tokens,
with 0.1 = NeMo's dur/pitch loss_scale when the alignment is learnt, 1.0 its
aligner_loss_scale, and w_bin ramping linearly from 0 to 1.
Differs from NeMo: NeMo ramps w_bin = min(epoch / bin_loss_warmup_epochs, 1) (100
epochs); here w_bin = clamp((step - bin_loss_start_step) / bin_loss_warmup_steps,
0, 1), counted in training_step calls by the `n_train_steps` buffer, which is saved
with the weights, so a resumed run continues the ramp (with gradient accumulation it
counts micro-batches). Validation is NeMo's: the teacher-forced mel, duration and
pitch losses (their sum is val_loss), plus the two aligner losses for monitoring;
with `val_synthesis` (default true) also speech from the text alone against each
recording: val_mcd (MCD-DTW, Griffin-Lim vocoder) and val_word_duration_error.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from minispeech.audio.features import MelSpectrogram
from minispeech.core.config import ConfigError, check_arguments, check_keys
from minispeech.core.model import SpeechModel
from minispeech.nn.attention import padding_mask
from minispeech.tts.aligner import bin_loss, forward_sum_loss
from minispeech.tts.fastpitch import FastPitch, FastPitchOutput
from minispeech.tts.fft_transformer import FFTransformer, FFTransformerEncoder
from minispeech.tts.predictors import AlignmentEncoder, TemporalPredictor
from minispeech.tts.tokenizer import EnglishCharsTokenizer

MODEL_KEYS = (
    "_target_",
    "sample_rate",
    "tokenizer",
    "preprocessor",
    "input_fft",
    "output_fft",
    "alignment_module",
    "duration_predictor",
    "pitch_predictor",
    "pitch_embedding_kernel_size",
    "max_token_duration",
    "min_token_duration",
    "max_token_length",
    "dur_loss_scale",
    "pitch_loss_scale",
    "aligner_loss_scale",
    "bin_loss_start_step",
    "bin_loss_warmup_steps",
    "val_synthesis",
    "train_ds",
    "validation_ds",
    "test_ds",
    "optim",
)
# section -> (class, arguments the model derives itself)
SECTIONS = {
    "tokenizer": (EnglishCharsTokenizer, ()),
    "preprocessor": (MelSpectrogram, ()),
    "input_fft": (FFTransformerEncoder, ("n_embed", "padding_idx")),
    "output_fft": (FFTransformer, ()),
    "alignment_module": (AlignmentEncoder, ("n_mel_channels", "n_text_channels")),
    "duration_predictor": (TemporalPredictor, ("input_size",)),
    "pitch_predictor": (TemporalPredictor, ("input_size",)),
}


class FastPitchModel(SpeechModel):
    """Tokenizer, mel preprocessor and FastPitch network; NeMo's losses and API."""

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        self.check_config()
        self.sample_rate = int(self.cfg["sample_rate"])
        self.max_token_length = int(self.cfg.get("max_token_length", 512))
        self.tokenizer = EnglishCharsTokenizer(**self.section("tokenizer"))
        pre = {"sample_rate": self.sample_rate, **self.section("preprocessor")}
        self.preprocessor = MelSpectrogram(**pre)
        self.fastpitch = self.build_network(int(pre.get("features", 64)))
        # training_step calls so far: the bin-loss ramp's clock (saved, resumable)
        self.register_buffer("n_train_steps", torch.zeros((), dtype=torch.long))

    # ------------------------------------------------------------ config
    def check_config(self) -> None:
        check_keys("model", self.cfg, MODEL_KEYS, "FastPitchModel")
        for name, (cls, derived) in SECTIONS.items():
            where = f"model.{name} ({cls.__name__})"
            check_arguments(cls, self.section(name), where, fixed=derived, noun="key")
        if "sample_rate" not in self.cfg:
            raise ConfigError("model: FastPitchModel needs sample_rate")
        rate = self.section("preprocessor").get("sample_rate", self.cfg["sample_rate"])
        if rate != self.cfg["sample_rate"]:
            raise ConfigError(
                f"model.preprocessor.sample_rate={rate} differs from "
                f"model.sample_rate={self.cfg['sample_rate']}"
            )
        from minispeech.tts.dataset import TTS_DATASET_KEYS

        for name in ("train_ds", "validation_ds", "test_ds"):
            check_keys(f"model.{name}", self.section(name), TTS_DATASET_KEYS)

    def build_network(self, n_mels: int) -> FastPitch:
        tok = self.tokenizer
        encoder = FFTransformerEncoder(
            n_embed=tok.vocab_size, padding_idx=tok.pad, **self.section("input_fft")
        )
        d_model = encoder.d_model
        return FastPitch(
            encoder,
            FFTransformer(**self.section("output_fft")),
            TemporalPredictor(d_model, **self.section("duration_predictor")),
            TemporalPredictor(d_model, **self.section("pitch_predictor")),
            AlignmentEncoder(n_mels, d_model, **self.section("alignment_module")),
            n_mel_channels=n_mels,
            pitch_embedding_kernel_size=self.cfg.get("pitch_embedding_kernel_size", 3),
            max_token_duration=self.cfg.get("max_token_duration", 75),
            min_token_duration=self.cfg.get("min_token_duration", 0),
        )

    # ------------------------------------------------------------ inference
    def parse(self, text: str) -> Tensor:
        """Text -> tokens (1, U) LongTensor; ValueError on unknown characters, empty
        text or more than max_token_length tokens."""
        tokens = self.tokenizer.encode(text)
        if len(tokens) > self.max_token_length:
            raise ValueError(
                f"text too long: {len(tokens)} tokens, the model takes at most "
                f"max_token_length={self.max_token_length}; split it into sentences"
            )
        device = self.n_train_steps.device
        return torch.tensor([tokens], dtype=torch.long, device=device)  # (1, U)

    def generate(
        self, tokens: Tensor, pace: float = 1.0, token_lens: Tensor | None = None
    ) -> FastPitchOutput:
        """tokens (B, U) padded with the pad id -> FastPitchOutput (predicted
        durations and pitch). pace > 1 speaks faster (frames / pace)."""
        assert tokens.dim() == 2, f"tokens must be (B, U), got {tuple(tokens.shape)}"
        if not pace > 0:
            raise ValueError(f"pace must be > 0, got {pace}")
        if tokens.shape[1] > self.max_token_length:
            raise ValueError(
                f"{tokens.shape[1]} tokens exceed max_token_length="
                f"{self.max_token_length}"
            )
        if token_lens is None:
            token_lens = (tokens != self.tokenizer.pad).sum(1)  # (B,)
        return self.fastpitch(tokens, token_lens, pace=pace)

    def generate_spectrogram(self, tokens: Tensor, pace: float = 1.0) -> Tensor:
        """tokens (B, U) -> spect (B, M, T) (NeMo's name); see `generate`."""
        return self.generate(tokens, pace).spect

    # ------------------------------------------------------------ training
    def forward_batch(self, batch: dict) -> tuple[FastPitchOutput, Tensor, Tensor]:
        """The teacher-forced forward of a collated batch: (output, mels, mel_lens)."""
        with torch.no_grad():
            mels, mel_lens = self.preprocessor(batch["audio"], batch["audio_lens"])
        n_frames = mels.shape[-1]  # pitch and prior padded or cut to the mels' T
        pitch = F.pad(batch["pitch"], (0, n_frames - batch["pitch"].shape[1]))
        prior = batch["attn_prior"]
        prior = F.pad(prior, (0, 0, 0, n_frames - prior.shape[1]))  # (B, T, U)
        out = self.fastpitch(
            batch["text"],
            batch["text_lens"],
            pitch=pitch,  # (B, T)
            spec=mels,
            mel_lens=mel_lens,
            attn_prior=prior,
        )
        return out, mels, mel_lens

    def losses(self, out: FastPitchOutput, mels, mel_lens, text_lens) -> dict:
        """The five unweighted losses of a teacher-forced output (NeMo's)."""
        return {
            "mel_loss": mel_loss(out.spect, mels),
            "dur_loss": masked_mse(
                out.log_durs_predicted, out.durations.log1p(), text_lens
            ),
            "pitch_loss": masked_mse(out.pitch_predicted, out.pitch, text_lens),
            "forward_sum_loss": forward_sum_loss(out.attn_logprob, text_lens, mel_lens),
            "bin_loss": bin_loss(out.attn_hard, out.attn_soft),
        }

    def bin_loss_weight(self) -> float:
        """w_bin: 0 before bin_loss_start_step, then a linear ramp to 1."""
        start = self.cfg.get("bin_loss_start_step", 0)
        warmup = self.cfg.get("bin_loss_warmup_steps", 1000)
        done = int(self.n_train_steps) - start
        if done < 0:
            return 0.0
        return min(done / warmup, 1.0) if warmup > 0 else 1.0

    def total_loss(self, parts: dict, w_bin: float) -> Tensor:
        aligner = self.cfg.get("aligner_loss_scale", 1.0)
        return (
            parts["mel_loss"]
            + self.cfg.get("dur_loss_scale", 0.1) * parts["dur_loss"]
            + self.cfg.get("pitch_loss_scale", 0.1) * parts["pitch_loss"]
            + aligner * (parts["forward_sum_loss"] + w_bin * parts["bin_loss"])
        )

    def training_step(self, batch: dict) -> dict:
        out, mels, mel_lens = self.forward_batch(batch)
        parts = self.losses(out, mels, mel_lens, batch["text_lens"])
        w_bin = self.bin_loss_weight()
        loss = self.total_loss(parts, w_bin)
        self.n_train_steps += 1
        logged = {k: v.detach() for k, v in parts.items()}
        return {"loss": loss, **logged, "bin_loss_weight": torch.tensor(w_bin)}

    def validation_step(self, batch: dict) -> dict:
        """Batch sums (losses times B) and the count; val_loss = mel + dur + pitch
        with their scales, as NeMo's validation."""
        out, mels, mel_lens = self.forward_batch(batch)
        parts = self.losses(out, mels, mel_lens, batch["text_lens"])
        loss = (
            parts["mel_loss"]
            + self.cfg.get("dur_loss_scale", 0.1) * parts["dur_loss"]
            + self.cfg.get("pitch_loss_scale", 0.1) * parts["pitch_loss"]
        )
        n = len(batch["text_lens"])
        sums = {k: float(v) * n for k, v in {"loss": loss, **parts}.items()}
        scores = (
            self.synthesis_scores(batch) if self.cfg.get("val_synthesis", True) else {}
        )
        return {**sums, "count": n, **scores}

    def synthesis_scores(self, batch: dict) -> dict:
        """Speech from the text alone (predicted durations and pitch, Griffin-Lim
        with 32 iterations) against the recording: per utterance MCD-DTW (dB) and,
        when the manifest has `words` timings, the mean relative error of the
        predicted word durations (NaN when the word counts differ). Each utterance
        is generated alone, so no item is padded to another's length."""
        from minispeech.metrics.mcd import mcd
        from minispeech.tts.synthesis import (
            griffin_lim_vocoder,
            token_word_times,
            word_duration_error,
        )

        frame_seconds = self.preprocessor.hop_length / self.sample_rate
        scores = {"mcd": [], "word_duration_error": []}
        for b, n_tokens in enumerate(batch["text_lens"].tolist()):
            out = self.generate(batch["text"][b : b + 1, :n_tokens])
            mel = out.spect[0, :, : int(out.dec_lens[0])]  # (M, T)
            wave = griffin_lim_vocoder(self.preprocessor, mel).cpu()  # (S,)
            ref = batch["audio"][b, : int(batch["audio_lens"][b])].cpu()  # (S,)
            scores["mcd"].append(mcd(ref, wave, self.sample_rate))
            words = (batch.get("words") or [None] * (b + 1))[b]
            predicted = token_word_times(
                batch["text"][b, :n_tokens].cpu(),
                out.durations[0].cpu(),
                self.tokenizer,
                1.0,
                frame_seconds,
            )
            same = words is not None and len(words) == len(predicted)
            error = word_duration_error(predicted, words) if same else float("nan")
            scores["word_duration_error"].append(error)
        return scores

    def validation_metrics(self, stats: dict) -> dict:
        """The losses' means, val_mcd and val_word_duration_error (means over the
        utterances that have one)."""
        metrics = super().validation_metrics(stats)
        for name in ("mcd", "word_duration_error"):
            values = [v for v in stats.get(name, []) if v == v]  # NaN dropped
            if values:
                metrics[f"val_{name}"] = sum(values) / len(values)
        return metrics

    # ------------------------------------------------------------ data
    def build_dataset(self, ds_cfg: dict):
        from minispeech.tts.dataset import build_tts_dataset

        return build_tts_dataset(ds_cfg, self.cfg)

    def collate(self, items: list) -> dict:
        from minispeech.tts.dataset import collate_tts

        return collate_tts(items, self.tokenizer.pad)


def mel_loss(spect: Tensor, target: Tensor) -> Tensor:
    """NeMo's MelLoss: MSE over target values != 0; spect (B, M, T') is zero-padded
    (or cut) to the target's T frames."""
    spect = F.pad(spect.float(), (0, target.shape[-1] - spect.shape[-1]))  # (B, M, T)
    valid = (target != 0).float()
    return ((spect - target) ** 2 * valid).sum() / valid.sum()


def masked_mse(predicted: Tensor, target: Tensor, lens: Tensor) -> Tensor:
    """Mean squared error over the first lens[b] tokens, (B, U) each."""
    valid = padding_mask(lens, target.shape[1]).float()  # (B, U)
    return ((predicted.float() - target.float()) ** 2 * valid).sum() / valid.sum()
