"""A tiny SpeechModel for the loop, checkpoint and CLI tests (no ASR model needed).

Regression of a scalar from a random "audio" vector: y = <x, w> + noise, with a 2-layer
MLP and dropout, so the torch RNG matters; the dataset can add numpy/python-random noise
(`augment`), so those RNGs matter too. Items whose id is in `nan_ids` get a NaN target,
which makes the batch loss non-finite. `ScoringTinyModel` adds list validation stats;
`TinyGan` adds a discriminator and a second optimizer (manual optimization).
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

from minispeech.core.model import SpeechModel
from minispeech.core.optim import build_optimizer, build_scheduler


def small_manifest(source: Path, out: Path, n_speakers: int = 2, per: int = 4) -> str:
    """A corpus manifest cut for smoke runs: `per` utterances of each of its first
    `n_speakers` speakers, with absolute audio paths, written to `out`."""
    import json

    by_speaker: dict = {}
    for line in source.read_text().splitlines():
        row = json.loads(line)
        row["audio_filepath"] = str(source.parent / row["audio_filepath"])
        by_speaker.setdefault(row["speaker"], []).append(row)
    rows = [r for rs in list(by_speaker.values())[:n_speakers] for r in rs[:per]]
    out.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(out)


# a one-layer Conformer of width 16 on 16 mels: the encoder of the tiny ASR test models
TINY_CONFORMER = {
    "_target_": "minispeech.nn.ConformerEncoder",
    "feat_in": 16,
    "n_layers": 1,
    "d_model": 16,
    "n_heads": 2,
    "conv_kernel_size": 3,
}


def tiny_aed_config(tok_dir, **changes) -> dict:
    """A tiny AEDModel config (16 mels, one Conformer layer of width 16, a one-layer
    decoder of width 24, so the projection is a Linear) on the aggregate tokenizer in
    `tok_dir`; `changes` replace whole sections."""
    cfg = {
        "tokenizer": {"dir": str(tok_dir), "langs": ["en"]},
        "preprocessor": {"features": 16, "dither": 0.0},
        "encoder": dict(TINY_CONFORMER),
        "decoder": {"d_model": 24, "n_layers": 1, "n_heads": 2, "max_len": 64},
        "decoding": {"max_generation_delta": 4},
    }
    return {**cfg, **changes}


# a small SpeakerModel config (two speakers, 16 mels, 8-d embeddings) for verb tests
TINY_SPEAKER = {
    "_target_": "minispeech.speaker.SpeakerModel",
    "labels": ["ann", "bob"],
    "preprocessor": {"features": 16, "window_size": 0.025, "dither": 0.0},
    "encoder": {
        "_target_": "minispeech.speaker.TitaNetEncoder",
        "feat_in": 16,
        "jasper": [
            {"filters": 16, "repeat": 1, "kernel": [3], "separable": True, "se": True},
            {"filters": 24, "repeat": 1, "kernel": [1], "residual": False},
        ],
    },
    "decoder": {"pool_mode": "attention", "emb_sizes": 8, "attention_channels": 8},
}
LAST: list = []  # the most recently built TinyModel (tests read it after train())


class TinyDataset(torch.utils.data.Dataset):
    def __init__(self, n: int, n_samples: int, seed: int, nan_ids=(), augment=False):
        generator = torch.Generator().manual_seed(seed)
        self.audio = torch.randn(n, n_samples, generator=generator)  # (N, S)
        weights = torch.linspace(-1.0, 1.0, n_samples)  # (S,)
        noise = 0.1 * torch.randn(n, generator=generator)
        self.target = self.audio @ weights + noise  # (N,)
        self.ids = [f"utt{i:03d}" for i in range(n)]
        for i, utt in enumerate(self.ids):
            if utt in set(nan_ids):
                self.target[i] = float("nan")
        self.durations = [1.0 + 0.25 * (i % 4) for i in range(n)]  # 4 length buckets
        self.augment = augment

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        audio = self.audio[i]
        if self.augment:  # uses the python and numpy RNGs, as real augmentations do
            scale = 1.0 + 0.01 * random.random()
            audio = audio * scale + torch.from_numpy(
                np.random.normal(0, 0.01, audio.shape)
            )
        return {"audio": audio.float(), "target": self.target[i], "id": self.ids[i]}


class TinyModel(SpeechModel):
    """model: {_target_: tiny_model.TinyModel, n_samples, hidden, dropout, vocab?}"""

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        n_samples, hidden = cfg["n_samples"], cfg.get("hidden", 8)
        self.net = nn.Sequential(
            nn.Linear(n_samples, hidden),
            nn.Tanh(),
            nn.Dropout(cfg.get("dropout", 0.1)),
            nn.Linear(hidden, 1),
        )
        self.labels = None
        if cfg.get("vocab"):  # an artifact: a file (or folder) stored in the model file
            vocab = self.register_artifact("vocab")
            vocab_file = vocab / "vocab.txt" if vocab.is_dir() else vocab
            self.labels = vocab_file.read_text().split()
        self.seen_ids: list = []
        LAST[:] = [self]

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.net(audio).squeeze(-1)  # (B, S) -> (B,)

    def training_step(self, batch: dict) -> dict:
        self.seen_ids.append(list(batch["ids"]))
        prediction = self(batch["audio"])
        loss = torch.nn.functional.mse_loss(prediction, batch["target"])
        return {"loss": loss}

    def validation_step(self, batch: dict) -> dict:
        error = self(batch["audio"]) - batch["target"]
        return {"loss": float((error**2).sum()), "count": len(batch["ids"])}

    def build_dataset(self, ds_cfg: dict) -> TinyDataset:
        return TinyDataset(
            ds_cfg["n"],
            self.cfg["n_samples"],
            ds_cfg.get("seed", 0),
            ds_cfg.get("nan_ids", ()),
            ds_cfg.get("augment", False),
        )

    def collate(self, items: list) -> dict:
        return {
            "audio": torch.stack([item["audio"] for item in items]),  # (B, S)
            "target": torch.stack([item["target"] for item in items]),  # (B,)
            "ids": [item["id"] for item in items],
        }


class ScoringTinyModel(TinyModel):
    """TinyModel whose validation also returns lists (ids and per-item errors), as a
    speaker model returns per-trial scores; `validation_metrics` keeps the lists."""

    def validation_step(self, batch: dict) -> dict:
        error = self(batch["audio"]) - batch["target"]  # (B,)
        stats = super().validation_step(batch)
        return {**stats, "ids": list(batch["ids"]), "errors": error.tolist()}

    def validation_metrics(self, stats: dict) -> dict:
        self.val_lists = {k: v for k, v in stats.items() if isinstance(v, list)}
        mean_abs = sum(abs(e) for e in stats["errors"]) / len(stats["errors"])
        return {**super().validation_metrics(stats), "val_mae": mean_abs}


class TinyGan(TinyModel):
    """TinyModel's regressor as a generator, plus a discriminator of (audio, y) pairs;
    two optimizers stepped in `training_step`, as a GAN vocoder steps them."""

    manual_optimization = True

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        n_samples, hidden = cfg["n_samples"], cfg.get("hidden", 8)
        self.discriminator = nn.Sequential(
            nn.Linear(n_samples + 1, hidden), nn.Tanh(), nn.Linear(hidden, 1)
        )

    def discriminate(self, audio: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        pairs = torch.cat([audio, y[:, None].to(audio.dtype)], dim=1)  # (B, S+1)
        return self.discriminator(pairs).squeeze(-1)  # (B,) logits of "real"

    def configure_optimizers(self, max_steps: int):
        optim_cfg = dict(self.cfg["optim"])
        sched_cfg = optim_cfg.pop("sched", None)
        opt_g = build_optimizer(self.net.parameters(), optim_cfg)
        d_cfg = {**optim_cfg, "lr": optim_cfg["lr"] / 2}
        opt_d = build_optimizer(self.discriminator.parameters(), d_cfg)
        return [opt_g, opt_d], [build_scheduler(opt_g, sched_cfg, max_steps), None]

    def training_step(self, batch: dict, optimizers: list) -> dict:
        opt_g, opt_d = optimizers
        self.seen_ids.append(list(batch["ids"]))
        audio, target = batch["audio"], batch["target"]
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        fake = self(audio)  # (B,)
        ones, zeros = torch.ones_like(target), torch.zeros_like(target)
        real_logits = self.discriminate(audio, target)
        fake_logits = self.discriminate(audio, fake.detach())
        loss_d = bce(real_logits, ones) + bce(fake_logits, zeros)
        opt_d.backward(loss_d)
        opt_d.step()
        adversarial = bce(self.discriminate(audio, fake), ones)
        loss_g = torch.nn.functional.mse_loss(fake, target) + 0.1 * adversarial
        opt_g.backward(loss_g)
        opt_g.step()
        return {"loss": loss_g.detach()}


def tiny_config(exp_dir: Path, **sections) -> dict:
    """A train config for TinyModel; `sections` update model/trainer/exp_manager."""
    cfg = {
        "model": {
            "_target_": "tiny_model.TinyModel",
            "n_samples": 16,
            "hidden": 8,
            "dropout": 0.1,
            "train_ds": {
                "n": 24,
                "seed": 1,
                "batch_size": 4,
                "shuffle": True,
                "augment": True,
            },
            "validation_ds": {"n": 8, "seed": 2, "batch_size": 4},
            "optim": {
                "name": "adamw",
                "lr": 0.01,
                "weight_decay": 0.01,
                "sched": {
                    "name": "CosineAnnealing",
                    "warmup_steps": 2,
                    "min_lr": 0.001,
                },
            },
        },
        "trainer": {
            "max_steps": 8,
            "accelerator": "cpu",
            "val_check_interval": 4,
            "log_every_n_steps": 1,
            "enable_progress_bar": False,
            "seed": 7,
        },
        "exp_manager": {
            "exp_dir": str(exp_dir),
            "name": "tiny",
            "every_n_train_steps": 2,
            "save_top_k": 2,
        },
    }
    for section, values in sections.items():
        cfg[section].update(values)
    return cfg
