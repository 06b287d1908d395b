"""SpeakerModel: speaker embeddings trained as speaker classification (NeMo's
EncDecSpeakerLabelModel).

A batch flows  audio (B, S) -> MelSpectrogram -> feats (B, M, T) -> SpecAugment
(training only) -> encoder (TitaNet or ECAPA) -> enc (B, D, T) -> SpeakerDecoder
(pooling, embedding layers, final layer) -> logits (B, C) and embeddings (B, E).
Training: the classes are the speakers of `labels` (ArcFace or CE, losses.py);
`labels: from_manifest` takes them from the train_ds manifest when the model is
built (sorted speaker names), and the built config (so the model file) keeps the list;
`train_ds.new_speaker_speeds` adds each speaker resampled as a new class (dataset.py).
Verification (TitaNet, Koluguri et al. 2022, arXiv:2110.04410, scores trials by
cosine similarity): two utterances' embeddings get NeMo's score
(cos(e1, e2) + 1) / 2 and the trial is accepted when score >= threshold. Validation
scores every pair of the validation set's utterances (same speaker = target trial)
for an EER, beside the classification loss and accuracy on the known speakers.
With a `backend` section, an LDA backend is fitted on the training utterances (clean
and noisy) after the last step, and every score is taken in its space (backend.py),
where it may also score each utterance's pitch (pitch.py): `scoring_embeddings`.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from minispeech.audio import AudioAugmentor, MelSpectrogram, SpecAugment, load_audio
from minispeech.core.config import ConfigError, check_arguments, check_keys, locate
from minispeech.core.model import SpeechModel
from minispeech.data import read_manifest
from minispeech.data.datasets import DATASET_KEYS
from minispeech.metrics.eer import eer, min_dcf
from minispeech.speaker.backend import LDABackend, backend_section, fit_backend
from minispeech.speaker.dataset import (
    SpeakerDataset,
    collate_speaker,
    row_speaker,
    speaker_labels,
)
from minispeech.speaker.losses import SpeakerLoss
from minispeech.speaker.pitch import log_pitch
from minispeech.speaker.pooling import SpeakerDecoder
from minispeech.speaker.scoring import leave_one_out_identification, pair_trials

# train_ds alone may make new speakers by speed (dataset.py)
TRAIN_KEYS = (*DATASET_KEYS, "new_speaker_speeds")
MODEL_KEYS = (
    "_target_",
    "sample_rate",
    "labels",
    "preprocessor",
    "spec_augment",
    "encoder",
    "decoder",
    "loss",
    "train_ds",
    "validation_ds",
    "test_ds",
    "optim",
    "backend",
)


class SpeakerModel(SpeechModel):
    """Preprocessor, encoder, SpeakerDecoder and loss; embeddings and verification."""

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        self.resolve_labels()
        self.check_config()
        self.labels = [str(name) for name in self.cfg["labels"]]
        pre_cfg = self.section("preprocessor")
        pre_cfg.setdefault("sample_rate", self.cfg.get("sample_rate", 16000))
        self.preprocessor = MelSpectrogram(**pre_cfg)
        self.sample_rate = int(pre_cfg["sample_rate"])
        aug_cfg = self.section("spec_augment")
        self.spec_augment = SpecAugment(**aug_cfg) if aug_cfg else None
        self.encoder = self.encoder_class()(**self.section("encoder"))
        self.loss = SpeakerLoss(**self.section("loss"))
        self.decoder = SpeakerDecoder(
            self.encoder.d_model,
            len(self.labels),
            angular=self.loss.angular,  # NeMo: `angular` in the loss name
            **self.section("decoder"),
        )
        self.backend_cfg = self.backend = None  # the LDA backend (backend.py)
        if self.cfg.get("backend") is not None:
            emb_dim = self.decoder.emb_layers[-1][1].out_channels
            self.backend_cfg = backend_section(
                self.cfg["backend"], emb_dim, len(self.labels)
            )
            self.backend = LDABackend(
                emb_dim,
                self.backend_cfg["lda_dim"],
                self.backend_cfg["pitch_weight"],
                self.backend_cfg["pitch_width"],
            )

    # ------------------------------------------------------------ config
    def encoder_class(self):
        encoder = self.cfg.get("encoder")
        if not isinstance(encoder, dict) or "_target_" not in encoder:
            raise ConfigError(
                "model.encoder: SpeakerModel needs an encoder section with a "
                "_target_ (minispeech.speaker.TitaNetEncoder or ECAPAEncoder)"
            )
        return locate(encoder["_target_"])

    def resolve_labels(self) -> None:
        """`labels: from_manifest` -> the sorted speakers of train_ds's manifest,
        written into the config so that the model file restores without it."""
        if self.cfg.get("labels") != "from_manifest":
            return
        manifest = self.section("train_ds").get("manifest_filepath")
        if not manifest:
            raise ConfigError(
                "model.labels: from_manifest needs model.train_ds.manifest_filepath"
            )
        speeds = self.section("train_ds").get("new_speaker_speeds", [])
        self.cfg["labels"] = speaker_labels(manifest, check_speeds(speeds))

    def check_config(self) -> None:
        """Every section's keys, before anything is built (core.config.check_keys)."""
        check_keys("model (SpeakerModel)", self.cfg, MODEL_KEYS, required=("labels",))
        labels = self.cfg["labels"]
        if not isinstance(labels, list) or len(labels) < 2:
            raise ConfigError(
                "model.labels: a list of >= 2 speaker names, or from_manifest"
            )
        check_arguments(
            MelSpectrogram,
            self.section("preprocessor"),
            "model.preprocessor (MelSpectrogram)",
            noun="key",
        )
        if self.section("spec_augment"):
            check_arguments(
                SpecAugment,
                self.section("spec_augment"),
                "model.spec_augment (SpecAugment)",
                noun="key",
            )
        cls = self.encoder_class()
        check_arguments(
            cls, self.section("encoder"), f"model.encoder ({cls.__name__})", noun="key"
        )
        check_arguments(
            SpeakerDecoder,
            self.section("decoder"),
            "model.decoder (SpeakerDecoder)",
            fixed=("feat_in", "num_classes", "angular"),
            noun="key",
        )
        check_arguments(SpeakerLoss, self.section("loss"), "model.loss", noun="key")
        check_keys("model.train_ds", self.section("train_ds"), TRAIN_KEYS)
        check_speeds(self.section("train_ds").get("new_speaker_speeds", []))
        for name in ("validation_ds", "test_ds"):
            check_keys(f"model.{name}", self.section(name), DATASET_KEYS)

    # ------------------------------------------------------------ forward
    def encode(self, audio: Tensor, audio_lens: Tensor) -> tuple[Tensor, Tensor]:
        """audio (B, S), audio_lens (B,) -> enc (B, D, T), enc_lens (B,)."""
        assert audio.dim() == 2, f"audio must be (B, S), got {tuple(audio.shape)}"
        feats, feat_lens = self.preprocessor(audio, audio_lens)  # (B, M, T)
        if self.training and self.spec_augment is not None:
            feats = self.spec_augment(feats, feat_lens)  # (B, M, T)
        return self.encoder(feats, feat_lens)  # (B, D, T)

    def forward(self, audio: Tensor, audio_lens: Tensor) -> tuple[Tensor, Tensor]:
        """audio (B, S), audio_lens (B,) -> (logits (B, C), embs (B, E))."""
        if self.training and len(audio) == 1:
            # one utterance (a bucketing sampler can close a batch at one) has no
            # batch statistics where it is pooled (ECAPA's SE, the embedding
            # layers): its BatchNorm layers use their running statistics, as in eval
            with running_batch_norm(self):
                enc, enc_lens = self.encode(audio, audio_lens)  # (1, D, T)
                return self.decoder(enc, enc_lens)
        enc, enc_lens = self.encode(audio, audio_lens)  # (B, D, T)
        return self.decoder(enc, enc_lens)

    # ------------------------------------------------------------ steps
    def training_step(self, batch: dict) -> dict:
        labels = batch["labels"]  # (B,)
        if bool((labels < 0).any()):
            unknown = [i for i, y in zip(batch["ids"], labels.tolist()) if y < 0]
            raise ValueError(f"speakers not in model.labels (utterances {unknown})")
        logits, _ = self(batch["audio"], batch["audio_lens"])  # (B, C)
        accuracy = (logits.argmax(-1) == labels).float().mean()
        return {"loss": self.loss(logits, labels), "acc": accuracy.detach()}

    def validation_step(self, batch: dict) -> dict:
        """Loss and correct counts over the known speakers; every embedding (as a
        list) with its speaker, for the all-pairs EER of `validation_metrics`."""
        logits, embs = self(batch["audio"], batch["audio_lens"])  # (B, C), (B, E)
        labels = batch["labels"]
        known = labels >= 0  # (B,)
        n_known = int(known.sum())
        loss = self.loss(logits[known], labels[known]) if n_known else 0.0
        correct = (logits.argmax(-1) == labels)[known].sum()
        out = {
            "loss_sum": float(loss) * n_known,
            "count": n_known,
            "correct": int(correct),
            "embeddings": embs.float().cpu().tolist(),
            "speakers": list(batch["speakers"]),
        }
        if self.scores_pitch:
            waves = [w[:n] for w, n in zip(batch["audio"].cpu(), batch["audio_lens"])]
            out["log_pitch"] = self.utterance_pitch(waves).tolist()
        return out

    def validation_metrics(self, stats: dict) -> dict:
        """val_loss and val_acc over the known speakers; val_eer and val_min_dcf
        (p_target 0.01) over all pairs; val_id_acc: leave-one-out closed-set
        identification among the set's own speakers."""
        count = stats.get("count", 0)
        embs = torch.tensor(stats["embeddings"])  # (N, E)
        pitch = torch.tensor(stats["log_pitch"]) if "log_pitch" in stats else None
        embs = self.scoring_space(embs, pitch)  # (N, E')
        scores, targets = pair_trials(embs, stats["speakers"])
        both = 0 < int(targets.sum()) < len(targets)
        return {
            "val_loss": stats["loss_sum"] / count if count else math.nan,
            "val_acc": stats["correct"] / count if count else math.nan,
            "val_eer": eer(scores, targets) if both else math.nan,
            "val_min_dcf": min_dcf(scores, targets, p_target=0.01)
            if both
            else math.nan,
            "val_id_acc": leave_one_out_identification(embs, stats["speakers"]),
        }

    # ------------------------------------------------------------ data
    def build_dataset(self, ds_cfg: dict) -> SpeakerDataset:
        check_keys(
            "dataset section", ds_cfg, TRAIN_KEYS, required=("manifest_filepath",)
        )
        aug_cfg = ds_cfg.get("augmentor")
        augmentor = None
        if aug_cfg:
            augmentor = AudioAugmentor(**{"sample_rate": self.sample_rate, **aug_cfg})
        return SpeakerDataset(
            ds_cfg["manifest_filepath"],
            self.labels,
            sample_rate=self.sample_rate,
            min_duration=ds_cfg.get("min_duration"),
            max_duration=ds_cfg.get("max_duration"),
            cache_audio=ds_cfg.get("cache_audio", False),
            augmentor=augmentor,
            new_speaker_speeds=check_speeds(ds_cfg.get("new_speaker_speeds", [])),
        )

    def collate(self, items: list) -> dict:
        return collate_speaker(items)

    # ------------------------------------------------------------ inference
    @torch.no_grad()
    def get_embeddings(self, inputs: Sequence, batch_size: int = 8) -> Tensor:
        """Embeddings (N, E) of audio files or waveforms, `batch_size` at a time."""
        was_training = self.training
        self.eval()
        waves, out = self.load_inputs(inputs), []
        device = next(self.parameters()).device
        for start in range(0, len(waves), batch_size):
            items = [
                {"audio": w, "label": -1, "speaker": "", "id": ""}
                for w in waves[start : start + batch_size]
            ]
            batch = collate_speaker(items)
            _, embs = self(batch["audio"].to(device), batch["audio_lens"].to(device))
            out.append(embs.cpu())  # (B, E)
        self.train(was_training)
        return torch.cat(out)  # (N, E)

    @property
    def scores_pitch(self) -> bool:
        """Whether scores need each utterance's pitch (a fitted pitch backend)."""
        return self.backend is not None and self.backend.scores_pitch

    def utterance_pitch(self, waves: Sequence[Tensor]) -> Tensor:
        """Median log F0 (N,) of waves [(S_i,)]: NaN where none is voiced."""
        return torch.tensor([log_pitch(w, self.sample_rate) for w in waves])

    def scoring_space(self, embs: Tensor, log_f0: Tensor | None = None) -> Tensor:
        """Embeddings (N, E) as verification and identification score them: through
        the fitted backend (N, E') when the model has one, else as they are; a
        backend that scores pitch needs the utterances' log F0 (N,) as well."""
        if self.backend is None or not bool(self.backend.fitted):
            return embs
        device = self.backend.mean.device
        return self.backend(embs.to(device), log_f0).cpu()

    def scoring_embeddings(self, inputs: Sequence, batch_size: int = 8) -> Tensor:
        """The vectors (N, E') that verification and identification compare by
        cosine: the embeddings of files or waveforms in the scoring space."""
        waves = self.load_inputs(inputs)  # [(S_i,)]
        pitch = self.utterance_pitch(waves) if self.scores_pitch else None
        return self.scoring_space(self.get_embeddings(waves, batch_size), pitch)

    def on_train_end(self) -> None:
        """Fit the LDA backend (model.backend) on the training manifest."""
        if self.backend is not None:
            manifest = self.backend_cfg.get("manifest_filepath") or self.section(
                "train_ds"
            ).get("manifest_filepath")
            fit_backend(self, self.backend_cfg, manifest)

    def get_embedding(self, path_or_wave) -> Tensor:
        """The embedding (E,) of one file or waveform (S,), computed alone."""
        return self.get_embeddings([path_or_wave], batch_size=1)[0]

    @staticmethod
    def similarity(emb_a: Tensor, emb_b: Tensor) -> float:
        """NeMo's verification score of two embeddings (E,): (cos + 1) / 2."""
        x, y = emb_a / emb_a.norm(), emb_b / emb_b.norm()  # L2-normalised
        cos = torch.dot(x, y) / (torch.dot(x, x) * torch.dot(y, y)) ** 0.5
        return float((cos + 1) / 2)

    def verify_speakers(self, a, b, threshold: float = 0.7) -> bool:
        """Same speaker? Files or waveforms a, b; score >= threshold (NeMo's rule)."""
        embs = self.scoring_embeddings([a, b], batch_size=1)
        return self.similarity(embs[0], embs[1]) >= threshold

    def enroll(self, rows) -> dict:
        """Closed-set enrolment: {speaker: mean L2-normalised embedding (E',) in the
        scoring space} from manifest rows (or a manifest path) with `audio_filepath`
        and `speaker` (a row with `offset` and `duration`: that segment)."""
        if isinstance(rows, (str, Path)):
            rows = read_manifest(rows)
        inputs = [row_input(row, self.sample_rate) for row in rows]
        embs = self.scoring_embeddings(inputs)  # (N, E')
        embs = torch.nn.functional.normalize(embs, dim=1)
        names = [str(row_speaker(row)) for row in rows]
        return {
            name: embs[[i for i, n in enumerate(names) if n == name]].mean(0)
            for name in sorted(set(names))
        }

    def identify(self, path_or_wave, enrolled: dict) -> tuple[str, float]:
        """The enrolled speaker with the highest score, and that score."""
        emb = self.scoring_embeddings([path_or_wave], batch_size=1)[0]
        scores = {name: self.similarity(emb, e) for name, e in enrolled.items()}
        best = max(scores, key=scores.get)
        return best, scores[best]


def row_input(row: dict, sample_rate: int):
    """A manifest row as `get_embeddings` takes it: the audio path, or for a row
    with an `offset`, the wave (S,) of its segment at `sample_rate`."""
    if "offset" not in row:
        return row["audio_filepath"]
    segment = {"offset": row["offset"], "duration": row["duration"]}
    return load_audio(row["audio_filepath"], sample_rate=sample_rate, **segment)[0]


@contextmanager
def running_batch_norm(module: torch.nn.Module):
    """Inside: the BatchNorm layers of `module` in eval mode (running statistics)."""
    norms = [
        m
        for m in module.modules()
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.training
    ]
    for norm in norms:
        norm.eval()
    try:
        yield
    finally:
        for norm in norms:
            norm.train()


def check_speeds(speeds) -> list[float]:
    """train_ds's `new_speaker_speeds` as a list of floats: distinct factors > 0
    other than 1 (ConfigError otherwise)."""
    ok = isinstance(speeds, (list, tuple)) and all(
        isinstance(a, (int, float)) and not isinstance(a, bool) and a > 0 and a != 1
        for a in speeds
    )
    if not ok or len(set(speeds)) != len(speeds):
        raise ConfigError(
            "model.train_ds.new_speaker_speeds: a list of distinct speed factors > 0 "
            f"other than 1 (e.g. [0.9, 1.1]), got {speeds!r}"
        )
    return [float(a) for a in speeds]
