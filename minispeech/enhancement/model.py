"""EnhancementModel: mask-based speech enhancement (NeMo's EncMaskDecAudioToAudioModel,
nemo/collections/audio/models/enhancement.py).

A batch flows
    noisy (B, C, S) -> encoder AudioToSpectrogram -> X (B, C, F, T)
    -> mask_estimator (MaskEstimatorRNN or MaskEstimatorConformer) -> M (B, M, F, T)
    -> mask_processor MaskReferenceChannel: M * X[:, ref] (real mask, noisy phase)
    -> decoder SpectrogramToAudio -> (B, M, (T - 1) * hop) -> cut or zero-padded to S.
In training, an optional random channel equaliser (`channel_eq`,
minispeech/enhancement/channel_eq.py) first filters the noisy input and the clean
target alike. Training minimises NeMo's SDRLoss (minispeech/metrics/sdr.py): minus
the SI-SDR of Le Roux et al. 2019, "SDR - half-baked or well done?"
(arXiv:1811.02508) over the valid samples, the loss of NeMo's masking.yaml.
Validation reports, as means over utterances (each on its valid samples): the loss,
SI-SDR, its improvement over the noisy input (also per noise kind), SDR and STOI
(Taal et al. 2011). Data: noisy/clean pairs (minispeech/enhancement/dataset.py),
mixed on the fly for training.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from minispeech.core.config import ConfigError, check_arguments, check_keys, locate
from minispeech.core.model import SpeechModel
from minispeech.enhancement.channel_eq import ChannelEQ
from minispeech.enhancement.dataset import (
    PAIR_DATASET_KEYS,
    build_pair_dataset,
    collate_pairs,
)
from minispeech.enhancement.estimators import MaskReferenceChannel
from minispeech.enhancement.transforms import AudioToSpectrogram, SpectrogramToAudio
from minispeech.metrics.sdr import sdr, sdr_loss, si_sdr
from minispeech.metrics.stoi import stoi

MODEL_KEYS = (
    "_target_",
    "sample_rate",
    "encoder",
    "decoder",
    "mask_estimator",
    "mask_processor",
    "loss",
    "train_ds",
    "validation_ds",
    "test_ds",
    "optim",
    "channel_eq",
)
# sdr_loss arguments the model passes itself
LOSS_FIXED = ("estimate", "target", "input_length", "reduction")


class EnhancementModel(SpeechModel):
    """STFT encoder, mask estimator, reference-channel masking, iSTFT decoder."""

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        self.check_config()
        self.sample_rate = int(self.cfg.get("sample_rate", 16000))
        # built in NeMo's order, so the state dict lists its keys in NeMo's order
        encoder = self.section("encoder")
        self.encoder = AudioToSpectrogram(**encoder)
        self.mask_estimator = self.estimator_class()(**self.section("mask_estimator"))
        self.mask_processor = MaskReferenceChannel(**self.section("mask_processor"))
        # no decoder section: the inverse of the encoder
        self.decoder = SpectrogramToAudio(**(self.section("decoder") or encoder))
        self.loss_args = self.section("loss")
        # a training augmentation, batched here rather than per item in the dataset
        # (one torch FFT per batch); on with its defaults as `channel_eq: {}`
        self.channel_eq = None
        if self.cfg.get("channel_eq") is not None:
            self.channel_eq = ChannelEQ(self.sample_rate, **self.section("channel_eq"))

    # ------------------------------------------------------------ config
    def estimator_class(self):
        section = self.cfg.get("mask_estimator")
        if not isinstance(section, dict) or "_target_" not in section:
            raise ConfigError(
                "model.mask_estimator: EnhancementModel needs a section with a "
                "_target_ (minispeech.enhancement.MaskEstimatorRNN or "
                "MaskEstimatorConformer)"
            )
        return locate(section["_target_"])

    def check_config(self) -> None:
        check_keys("model", self.cfg, MODEL_KEYS, "EnhancementModel")
        for name, cls in (
            ("encoder", AudioToSpectrogram),
            ("decoder", SpectrogramToAudio),
            ("mask_processor", MaskReferenceChannel),
        ):
            check_arguments(cls, self.section(name), f"model.{name}", noun="key")
        cls = self.estimator_class()
        where = f"model.mask_estimator ({cls.__name__})"
        check_arguments(cls, self.section("mask_estimator"), where, noun="key")
        check_arguments(
            ChannelEQ,
            self.section("channel_eq"),
            "model.channel_eq",
            fixed=("sample_rate",),
            noun="key",
        )
        check_arguments(
            sdr_loss, self.section("loss"), "model.loss", fixed=LOSS_FIXED, noun="key"
        )
        for name in ("train_ds", "validation_ds", "test_ds"):
            check_keys(f"model.{name}", self.section(name), PAIR_DATASET_KEYS)

    # ------------------------------------------------------------ forward
    def forward(
        self, input_signal: Tensor, input_length: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """input_signal (B, S) or (B, C, S), input_length (B,) -> output (B, M, S),
        output_length (B,) = (T - 1) * hop valid samples (NeMo's rule)."""
        assert input_signal.dim() in (2, 3), (
            f"input_signal must be (B, S) or (B, C, S), got {tuple(input_signal.shape)}"
        )
        if input_signal.dim() == 2:
            input_signal = input_signal[:, None, :]  # (B, 1, S)
        n_samples = input_signal.size(-1)
        spec, spec_lens = self.encoder(input_signal, input_length)  # (B, C, F, T)
        mask, _ = self.mask_estimator(spec, spec_lens)  # (B, M, F, T)
        processed = self.mask_processor(spec, mask)  # (B, M, F, T)
        output, output_length = self.decoder(processed, spec_lens)  # (B, M, S')
        # NeMo's match_batch_length: zero-pad (or cut) S' to the batch's S samples
        return F.pad(output, (0, n_samples - output.size(-1))), output_length

    def loss(self, estimate: Tensor, target: Tensor, input_length: Tensor) -> Tensor:
        """The `loss` section's SDRLoss on (B, M, S) signals over valid samples."""
        return sdr_loss(estimate, target, input_length, **self.loss_args)

    # ------------------------------------------------------------ steps
    def training_step(self, batch: dict) -> dict:
        noisy, target = batch["input_signal"], batch["target_signal"]  # (B, S)
        lens = batch["input_length"]  # (B,)
        if self.channel_eq is not None:
            noisy, target = self.channel_eq(noisy, target, lens)
        output, _ = self(noisy, lens)  # (B, M, S)
        return {"loss": self.loss(output, as_channels(target), lens)}

    def validation_step(self, batch: dict) -> dict:
        """Per-utterance values as lists (the loop concatenates them over batches)."""
        noisy, lens = batch["input_signal"], batch["input_length"]  # (B, S), (B,)
        target = as_channels(batch["target_signal"])  # (B, 1, S)
        output, _ = self(noisy, lens)  # (B, 1, S)
        ref = self.mask_processor.ref_channel
        args = (target, lens)
        si_out = si_sdr(output, *args).mean(1)  # (B,) mean over channels
        si_in = si_sdr(as_channels(noisy)[:, ref : ref + 1], *args).mean(1)  # (B,)
        return {
            "loss": sdr_loss(
                output, *args, **self.loss_args, reduction="none"
            ).tolist(),
            "si_sdr": si_out.tolist(),
            "si_sdr_improvement": (si_out - si_in).tolist(),
            "sdr": sdr(output, *args).mean(1).tolist(),
            "stoi": [
                utterance_stoi(target[i, 0, :n], output[i, 0, :n], self.sample_rate)
                for i, n in enumerate(lens.tolist())
            ],
            "kinds": list(batch.get("kinds") or ["" for _ in range(len(lens))]),
        }

    def validation_metrics(self, stats: dict) -> dict:
        """Means over utterances; val_si_sdr_improvement_<kind> per noise kind."""
        metrics = {
            f"val_{name}": mean(stats[name])
            for name in ("loss", "si_sdr", "si_sdr_improvement", "sdr")
        }
        metrics["val_stoi"] = mean([v for v in stats["stoi"] if not math.isnan(v)])
        improvements = stats["si_sdr_improvement"]
        for kind in sorted({k for k in stats["kinds"] if k}):
            picked = [v for v, k in zip(improvements, stats["kinds"]) if k == kind]
            metrics[f"val_si_sdr_improvement_{kind}"] = mean(picked)
        return metrics

    # ------------------------------------------------------------ data
    def build_dataset(self, ds_cfg: dict):
        return build_pair_dataset(ds_cfg, self.sample_rate)

    def collate(self, items: list) -> dict:
        return collate_pairs(items)

    # ------------------------------------------------------------ inference
    @torch.no_grad()
    def enhance(self, wave: Tensor | str | Path) -> Tensor:
        """One waveform (S,) or audio file -> the enhanced waveform (S,)."""
        was_training = self.training
        self.eval()
        wave = self.load_inputs([wave])[0]  # (S,)
        device = next(self.parameters()).device
        lens = torch.tensor([wave.numel()], device=device)
        output, _ = self(wave.to(device)[None, None, :], lens)  # (1, M, S)
        self.train(was_training)
        return output[0, 0].cpu()  # (S,)


def as_channels(signal: Tensor) -> Tensor:
    """(B, S) -> (B, 1, S); (B, C, S) unchanged."""
    return signal[:, None, :] if signal.dim() == 2 else signal


def utterance_stoi(clean: Tensor, processed: Tensor, sample_rate: int) -> float:
    """STOI of one utterance (S,); NaN when it is too short to score (fewer than
    30 non-silent frames of 25.6 ms), which val_stoi then leaves out."""
    try:
        return stoi(clean, processed, sample_rate)
    except ValueError:
        return math.nan


def mean(values) -> float:
    values = [float(v) for v in values]
    return sum(values) / len(values) if values else math.nan
