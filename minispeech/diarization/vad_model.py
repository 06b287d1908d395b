"""VADModel: a frame-level voice activity detector, MarbleNet-style, scaled down.

Jia, Majumdar & Ginsburg 2021, "MarbleNet: Deep 1D Time-Channel Separable
Convolutional Neural Network for Voice Activity Detection", arXiv:2010.13886,
Sec. 2 / Fig. 1: a prolog conv, B residual blocks of R sub-blocks of
    depthwise conv (kernel K) -> pointwise 1x1 conv -> BN -> ReLU,
a residual 1x1 conv + BN added before the last ReLU, and epilog convs; NeMo's
ConvASREncoder builds it from the same `jasper:` block list as TitaNet, so the
encoder is minispeech.speaker.TitaNetEncoder (its blocks with `se: false`).
A batch flows  audio (B, S) -> MelSpectrogram -> feats (B, M, T) at 10 ms ->
SpecAugment (training only) -> encoder (B, D, T) -> per-frame 1x1 conv (B, 1, T)
-> one speech logit per frame (B, T).
Differs from the paper: the paper classifies 0.63 s windows (one label per
window, overlapping windows smoothed); here, as NeMo's frame VAD
(EncDecFrameClassificationModel), every 10 ms frame is classified (stride 1) with
one logit and binary cross-entropy over the valid frames instead of 2-class
softmax; far smaller (see configs/diarization/marblenet_vad_tiny.yaml).
Frame scores become segments by NeMo's post-processing (vad.speech_segments) with
the `postprocessing:` section's defaults, which the model file keeps.
Validation: loss and frame precision / recall / F1 of the post-processed segments
(val_f1) and of the raw scores at 0.5 (val_frame_f1) on fixed sessions built from
the validation manifest (vad_dataset.py).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from minispeech.audio import MelSpectrogram, SpecAugment
from minispeech.core.config import ConfigError, check_arguments, check_keys, locate
from minispeech.core.model import SpeechModel
from minispeech.diarization import vad
from minispeech.diarization.vad_dataset import (
    VAD_DATASET_KEYS,
    VADSessionDataset,
    collate_vad,
)

MODEL_KEYS = (
    "_target_",
    "sample_rate",
    "preprocessor",
    "spec_augment",
    "encoder",
    "postprocessing",
    "train_ds",
    "validation_ds",
    "test_ds",
    "optim",
)
# NeMo's vad_utils defaults (binarization / filtering), which `postprocessing` overrides
POSTPROCESSING = {
    "onset": 0.5,
    "offset": 0.5,
    "pad_onset": 0.0,
    "pad_offset": 0.0,
    "min_duration_on": 0.0,
    "min_duration_off": 0.0,
    "filter_speech_first": True,
}


class VADModel(SpeechModel):
    """Preprocessor, conv encoder and a per-frame speech logit; segments."""

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        self.check_config()
        pre_cfg = self.section("preprocessor")
        pre_cfg.setdefault("sample_rate", self.cfg.get("sample_rate", 16000))
        self.preprocessor = MelSpectrogram(**pre_cfg)
        self.sample_rate = int(pre_cfg["sample_rate"])
        self.frame_s = self.preprocessor.hop_length / self.sample_rate  # 160 / 16000
        aug_cfg = self.section("spec_augment")
        self.spec_augment = SpecAugment(**aug_cfg) if aug_cfg else None
        encoder_cls = locate(self.cfg["encoder"]["_target_"])
        self.encoder = encoder_cls(**self.section("encoder"))
        self.decoder = nn.Conv1d(self.encoder.d_model, 1, kernel_size=1)  # D -> 1
        self.postprocessing = {**POSTPROCESSING, **self.section("postprocessing")}

    # ------------------------------------------------------------ config
    def check_config(self) -> None:
        """Every section's keys, before anything is built."""
        check_keys("model (VADModel)", self.cfg, MODEL_KEYS, required=("encoder",))
        encoder = self.cfg["encoder"]
        if not isinstance(encoder, dict) or "_target_" not in encoder:
            raise ConfigError(
                "model.encoder: VADModel needs an encoder section with a _target_ "
                "(minispeech.speaker.TitaNetEncoder)"
            )
        sections = [
            (MelSpectrogram, "preprocessor", ()),
            (locate(encoder["_target_"]), "encoder", ()),
            (vad.speech_segments, "postprocessing", ("probs", "frame_s")),
        ]
        if self.section("spec_augment"):
            sections.append((SpecAugment, "spec_augment", ()))
        for target, name, fixed in sections:
            where = f"model.{name} ({target.__name__})"
            check_arguments(target, self.section(name), where, fixed, noun="key")
        for name in ("train_ds", "validation_ds", "test_ds"):
            check_keys(f"model.{name}", self.section(name), VAD_DATASET_KEYS)

    # ------------------------------------------------------------ forward
    def forward(self, audio: Tensor, audio_lens: Tensor) -> tuple[Tensor, Tensor]:
        """audio (B, S), audio_lens (B,) -> (logits (B, T), feat_lens (B,)); the
        frames at or past feat_lens (= audio_lens // hop) are padding."""
        assert audio.dim() == 2, f"audio must be (B, S), got {tuple(audio.shape)}"
        feats, feat_lens = self.preprocessor(audio, audio_lens)  # (B, M, T)
        if self.training and self.spec_augment is not None:
            feats = self.spec_augment(feats, feat_lens)  # (B, M, T)
        enc, enc_lens = self.encoder(feats, feat_lens)  # (B, D, T)
        return self.decoder(enc)[:, 0], enc_lens  # (B, T)

    def frame_loss(self, batch: dict) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """-> (BCE summed over valid frames, logits (B, T), valid (B, T), labels
        (B, T)), the labels' frames cut or padded to the logits'."""
        logits, lens = self(batch["audio"], batch["audio_lens"])  # (B, T)
        if not torch.equal(lens.cpu(), batch["label_lens"].cpu()):
            raise ValueError(
                f"label frames {batch['label_lens'].tolist()} != feature frames "
                f"{lens.tolist()} (ids {batch['ids']})"
            )
        n_frames = logits.shape[1]
        labels = batch["labels"][:, :n_frames]  # (B, <=T)
        labels = nn.functional.pad(labels, (0, n_frames - labels.shape[1]))  # (B, T)
        valid = torch.arange(n_frames, device=lens.device) < lens[:, None]  # (B, T)
        bce = nn.functional.binary_cross_entropy_with_logits(
            logits, labels.to(logits.dtype), reduction="none"
        )  # (B, T)
        return (bce * valid).sum(), logits, valid, labels

    # ------------------------------------------------------------ steps
    def training_step(self, batch: dict) -> dict:
        loss_sum, logits, valid, labels = self.frame_loss(batch)
        n_valid = valid.sum().clamp_min(1)
        correct = ((logits > 0) == (labels > 0.5)) & valid  # (B, T)
        return {"loss": loss_sum / n_valid, "acc": correct.sum() / n_valid}

    def validation_step(self, batch: dict) -> dict:
        """Summed frame counts: loss, raw speech hits at 0.5 (`frame_*`) and
        post-processed ones (`seg_*`); each as (hits, predicted, reference)."""
        loss_sum, logits, valid, labels = self.frame_loss(batch)
        stats = {"loss_sum": float(loss_sum), "count": int(valid.sum())}
        probs = logits.sigmoid().float().cpu()  # (B, T)
        counts = {"frame": [0, 0, 0], "seg": [0, 0, 0]}
        for b, length in enumerate(valid.sum(1).tolist()):
            p, ref = probs[b, :length], labels[b, :length].cpu()  # (T_b,)
            segments = vad.speech_segments(p, self.frame_s, **self.postprocessing)
            pred = vad.frame_labels(segments, length, self.frame_s)  # (T_b,)
            for name, guess in (("frame", p > 0.5), ("seg", pred)):
                found = vad.speech_counts(guess, ref)
                counts[name] = [a + c for a, c in zip(counts[name], found)]
        for name, (hits, n_pred, n_ref) in counts.items():
            stats.update({f"{name}_hits": hits, f"{name}_pred": n_pred})
            stats[f"{name}_ref"] = n_ref
        return stats

    def validation_metrics(self, stats: dict) -> dict:
        """val_loss (per frame); val_precision, val_recall and val_f1 of the
        post-processed segments; val_frame_f1 of the raw scores at 0.5."""
        count = stats.get("count", 0)
        seg = vad.f1_from_counts(stats["seg_hits"], stats["seg_pred"], stats["seg_ref"])
        raw = [stats[f"frame_{k}"] for k in ("hits", "pred", "ref")]
        return {
            "val_loss": stats["loss_sum"] / count if count else math.nan,
            "val_precision": seg[0],
            "val_recall": seg[1],
            "val_f1": seg[2],
            "val_frame_f1": vad.f1_from_counts(*raw)[2],
        }

    # ------------------------------------------------------------ data
    def build_dataset(self, ds_cfg: dict) -> VADSessionDataset:
        check_keys(
            "dataset section", ds_cfg, VAD_DATASET_KEYS, required=("manifest_filepath",)
        )
        loader_keys = ("manifest_filepath", "batch_size", "max_seconds", "shuffle")
        loader_keys += ("drop_last", "num_buckets", "num_workers")
        options = {k: v for k, v in ds_cfg.items() if k not in loader_keys}
        return VADSessionDataset(
            ds_cfg["manifest_filepath"],
            sample_rate=self.sample_rate,
            frame_s=self.frame_s,
            **options,
        )

    def collate(self, items: list) -> dict:
        return collate_vad(items)

    # ------------------------------------------------------------ inference
    @torch.no_grad()
    def speech_probs_batch(self, inputs, batch_size: int = 8) -> list[Tensor]:
        """Speech probabilities (T_i,) at `frame_s` of files or waves (S_i,)."""
        was_training = self.training
        self.eval()
        waves, out = self.load_inputs(inputs), []
        device = next(self.parameters()).device
        for start in range(0, len(waves), batch_size):
            chunk = waves[start : start + batch_size]
            audio_lens = torch.tensor([w.numel() for w in chunk])  # (B,)
            audio = torch.zeros(len(chunk), int(audio_lens.max()))  # (B, S)
            for b, wave in enumerate(chunk):
                audio[b, : audio_lens[b]] = wave
            logits, lens = self(audio.to(device), audio_lens.to(device))  # (B, T)
            probs = logits.sigmoid().float().cpu()  # (B, T)
            out += [probs[b, :n] for b, n in enumerate(lens.tolist())]  # (T_b,)
        self.train(was_training)
        return out

    def speech_probs(self, wave) -> Tensor:
        """wave (S,) (or a file) -> speech probabilities (T,), T = S // hop."""
        return self.speech_probs_batch([wave], batch_size=1)[0]

    def speech_segments(self, wave, **postprocessing) -> list[tuple[float, float]]:
        """Speech segments (seconds) of wave (S,) (or a file): the `postprocessing`
        section's parameters, overridden by the keyword arguments."""
        probs = self.speech_probs(wave)  # (T,)
        options = {**self.postprocessing, **postprocessing}
        return vad.speech_segments(probs, self.frame_s, **options)
