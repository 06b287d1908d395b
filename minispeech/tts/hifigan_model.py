"""HifiGanModel: a HiFi-GAN vocoder trained adversarially (NeMo's HifiGanModel,
nemo/collections/tts/models/hifigan.py).

Kong, Kim & Bae 2020, "HiFi-GAN" (arXiv:2010.05646). A training batch flows
    audio (B, S) -> preprocessor MelSpectrogram -> mel (B, M, T)
    -> generator -> fake (B, 1, T * hop), cut or zero-padded to S
and each step (Sec. 2.4, the final loss; minispeech/tts/hifigan_losses.py)
    1. discriminator: L_D on real and fake.detach() through the MPD and the MSD,
       backward and step of the discriminator optimizer;
    2. generator: L_G = L_adv + 2 L_FM + 45 L_mel, where L_mel compares the log-mels
       of fake and real audio made by `trg_melspec_fn` (the preprocessor without its
       highfreq limit and with gradients, as NeMo), backward and step of the
       generator optimizer.
Both optimizers are AdamW(betas 0.8, 0.99, weight decay 0.01), lr 2e-4 with decay
0.999 per epoch in the paper: `optim` builds both, and `sched` is one of
minispeech.core.optim's schedules or `{name: exponential, gamma, every_n_steps}`.
Validation reports per utterance the mel L1 between the input mel and the mel of the
generated audio (NeMo's val_loss) and the mel cepstral distortion against the real
audio (minispeech/metrics/mcd.py, with DTW), and optionally the same for Griffin-Lim
copy-synthesis from the same mels (`val_griffin_lim`).
Differs from NeMo: discriminator sizes are configurable (`mpd`, `msd`); the training
step runs the discriminators on real and fake in one batch and on real audio without
gradients for feature matching (the same gradients, less work); an optional
`discriminator_start_step` trains the generator on the mel loss alone first (2-3
times faster steps; default 0, the paper); the step count is the buffer
`trained_steps` (NeMo keeps it in the trainer); no denoiser.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from minispeech.audio.features import MelSpectrogram
from minispeech.core.config import ConfigError, check_arguments, check_keys
from minispeech.core.model import SpeechModel
from minispeech.core.optim import build_optimizer, build_scheduler
from minispeech.metrics.mcd import mcd
from minispeech.tts.griffin_lim import griffin_lim_from_mel
from minispeech.tts.hifigan import (
    HifiGanGenerator,
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
)
from minispeech.tts.hifigan_losses import (
    discriminator_loss,
    generator_loss,
    masked_mel_l1,
)
from minispeech.tts.vocoder_dataset import (
    VOCODER_DATASET_KEYS,
    VocoderDataset,
    collate_vocoder,
)

MODEL_KEYS = (
    "_target_",
    "preprocessor",
    "generator",
    "mpd",
    "msd",
    "l1_loss_factor",
    "feature_matching_factor",
    "discriminator_start_step",
    "val_griffin_lim",
    "train_ds",
    "validation_ds",
    "test_ds",
    "optim",
)
GRIFFIN_LIM_KEYS = ("n_iters", "momentum")


class ExponentialDecay:
    """Factor for LambdaLR: gamma ** (s // every_n_steps) (the paper: 0.999 per
    epoch)."""

    def __init__(self, gamma: float = 0.999, every_n_steps: int = 1):
        self.gamma, self.every_n_steps = gamma, every_n_steps

    def __call__(self, s: int) -> float:
        return self.gamma ** (s // self.every_n_steps)


class HifiGanModel(SpeechModel):
    """Generator + multi-period and multi-scale discriminators (module docstring)."""

    manual_optimization = True

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        self.check_config()
        pre = self.section("preprocessor")
        self.audio_to_melspec_precessor = MelSpectrogram(**pre)  # NeMo's name (sic)
        self.trg_melspec_fn = MelSpectrogram(
            **{**pre, "highfreq": None, "use_grads": True}
        )
        self.generator = HifiGanGenerator(**self.section("generator"))
        # `mpd: null` / `msd: null`: no discriminator (a model for synthesis only)
        self.mpd = self.discriminator("mpd", MultiPeriodDiscriminator)
        self.msd = self.discriminator("msd", MultiScaleDiscriminator)
        self.sample_rate = self.audio_to_melspec_precessor.sample_rate
        self.l1_loss_factor = float(self.cfg.get("l1_loss_factor", 45.0))
        self.feature_matching_factor = float(
            self.cfg.get("feature_matching_factor", 2.0)
        )
        self.val_griffin_lim = self.cfg.get("val_griffin_lim")
        # generator-only (mel L1) steps before the GAN starts (Parallel WaveGAN's
        # warm-up, Yamamoto et al. 2020, arXiv:1910.11480; HiFi-GAN: 0)
        self.discriminator_start_step = int(self.cfg.get("discriminator_start_step", 0))
        # generator steps taken: a buffer, so it is saved, restored and resumed
        self.register_buffer("trained_steps", torch.zeros((), dtype=torch.long))
        self.griffin_lim_scores: dict = {}  # utterance id -> its baseline scores

    def discriminator(self, name: str, cls):
        if name in self.cfg and self.cfg[name] is None:
            return None
        return cls(**self.section(name))

    # ------------------------------------------------------------ config
    def check_config(self) -> None:
        check_keys("model", self.cfg, MODEL_KEYS, "HifiGanModel")
        for name, cls in (
            ("preprocessor", MelSpectrogram),
            ("generator", HifiGanGenerator),
            ("mpd", MultiPeriodDiscriminator),
            ("msd", MultiScaleDiscriminator),
        ):
            where = f"model.{name} ({cls.__name__})"
            check_arguments(cls, self.section(name), where, noun="key")
        for name in ("train_ds", "validation_ds", "test_ds"):
            check_keys(f"model.{name}", self.section(name), VOCODER_DATASET_KEYS)
        if self.cfg.get("val_griffin_lim") is not None:
            check_keys(
                "model.val_griffin_lim",
                self.section("val_griffin_lim"),
                GRIFFIN_LIM_KEYS,
            )

    def check_trainable(self) -> None:
        if self.mpd is None or self.msd is None:
            raise ConfigError(
                "HifiGanModel: training needs both discriminators; this model has "
                "mpd: null or msd: null (a synthesis-only model, e.g. a NeMo file "
                "saved without them): give model.mpd and model.msd sections"
            )

    # ------------------------------------------------------------ inference
    def forward(self, spec: Tensor) -> Tensor:
        """spec (B, M, T) log-mel -> audio (B, 1, T * hop)."""
        return self.generator(spec)

    @torch.no_grad()
    def convert_spectrogram_to_audio(self, spec: Tensor) -> Tensor:
        """spec (B, M, T) -> audio (B, T * hop) (NeMo's name)."""
        assert spec.dim() == 3, f"spec must be (B, M, T), got {tuple(spec.shape)}"
        return self.generator(spec).squeeze(1)  # (B, 1, S) -> (B, S)

    def generate(
        self, audio: Tensor, audio_lens: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Copy-synthesis: audio (B, S) -> (mel (B, M, T), mel_lens, fake (B, 1, S))."""
        mel, mel_lens = self.audio_to_melspec_precessor(audio, audio_lens)  # (B, M, T)
        fake = self.generator(mel)  # (B, 1, T * hop)
        return mel, mel_lens, fit_length(fake, audio.shape[-1])  # (B, 1, S)

    # ------------------------------------------------------------ steps
    def training_step(self, batch: dict, optimizers: list) -> dict:
        self.check_trainable()
        opt_g, opt_d = optimizers
        audio, lens = batch["audio"], batch["audio_lens"]  # (B, S), (B,)
        real = audio[:, None, :]  # (B, 1, S)
        _, _, fake = self.generate(audio, lens)
        stats = {}
        adversarial = int(self.trained_steps) >= self.discriminator_start_step
        if adversarial:
            # 1) discriminators: L_D on real and detached fake (2B at once)
            stats["loss_d"] = self.discriminator_step_loss(real, fake.detach())
            opt_d.backward(stats["loss_d"])
            opt_d.step()
        # 2) generator: L_G (the discriminators just stepped, as in the paper);
        # before discriminator_start_step only its mel term
        with torch.no_grad():
            target_mel, _ = self.trg_melspec_fn(audio, lens)  # (B, M, T)
        fake_mel, _ = self.trg_melspec_fn(fake.squeeze(1), lens)  # (B, M, T)
        stats["mel_l1"] = F.l1_loss(fake_mel, target_mel)  # L_mel
        if adversarial:
            loss_g = self.generator_step_loss(real, fake, stats["mel_l1"])
        else:
            loss_g = self.l1_loss_factor * stats["mel_l1"]
        opt_g.backward(loss_g)
        opt_g.step()
        if opt_g.result.outcome == "stepped":
            self.trained_steps += 1
        return {"loss": loss_g.detach(), **{k: v.detach() for k, v in stats.items()}}

    def discriminator_step_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        both = torch.cat([real, fake])  # (2B, 1, S)
        loss = 0.0
        for discriminator in (self.mpd, self.msd):
            scores, _ = discriminator(both)  # [(2B, N_k)]
            real_scores, fake_scores = zip(*(s.chunk(2) for s in scores))
            loss = loss + discriminator_loss(real_scores, fake_scores)
        return loss

    def generator_step_loss(self, real: Tensor, fake: Tensor, mel_l1: Tensor) -> Tensor:
        scores, real_maps, fake_maps = [], [], []
        for discriminator in (self.mpd, self.msd):
            with torch.no_grad():  # real features are constants for the generator
                real_maps += discriminator(real)[1]
            fake_scores, maps = discriminator(fake)
            scores += fake_scores
            fake_maps += maps
        return generator_loss(
            scores,
            real_maps,
            fake_maps,
            mel_l1,
            self.feature_matching_factor,
            self.l1_loss_factor,
        )

    def validation_step(self, batch: dict) -> dict:
        """Per-utterance mel L1 and MCD of copy-synthesis (lists, in batch order)."""
        audio, lens = batch["audio"], batch["audio_lens"]  # (B, S), (B,)
        mel, mel_lens, fake = self.generate(audio, lens)
        stats = self.scores("", audio, lens, mel, mel_lens, fake.squeeze(1))
        stats["loss"] = stats["mel_l1"]  # NeMo's val_loss: the unweighted mel L1
        if self.val_griffin_lim is not None:
            stats.update(self.griffin_lim_baseline(batch["ids"], audio, lens))
        return stats

    def griffin_lim_baseline(self, ids, audio: Tensor, lens: Tensor) -> dict:
        """The same scores for Griffin-Lim from the same mels, one utterance at a
        time with initial phases from seed 0 (so batching changes nothing), computed
        once per utterance id: they do not change during training."""
        pre = self.audio_to_melspec_precessor
        for b, utterance in enumerate(ids):
            if utterance in self.griffin_lim_scores:
                continue
            n = lens[b : b + 1]  # (1,)
            mel, mel_lens = pre(audio[b : b + 1, : int(n)], n)  # (1, M, T)
            shape = (1, pre.n_fft // 2 + 1, mel.shape[-1])  # (1, F, T)
            phase = torch.rand(shape, generator=torch.Generator().manual_seed(0))
            wave = griffin_lim_from_mel(
                mel,
                pre,
                initial_phase=2 * math.pi * phase.to(mel),
                **self.val_griffin_lim,
            )  # (1, T * hop)
            wave = fit_length(wave, int(n))  # (1, S)
            scores = self.scores(
                "griffin_lim_", audio[b : b + 1], n, mel, mel_lens, wave
            )
            self.griffin_lim_scores[utterance] = {k: v[0] for k, v in scores.items()}
        names = ("griffin_lim_mel_l1", "griffin_lim_mcd")
        return {k: [self.griffin_lim_scores[i][k] for i in ids] for k in names}

    def scores(self, prefix: str, audio, lens, mel, mel_lens, wave) -> dict:
        """{prefix}mel_l1 against the input `mel` and {prefix}mcd against `audio`
        (minispeech.metrics.mcd, with DTW) of generated waves (B, S), per item."""
        other, _ = self.audio_to_melspec_precessor(wave.float(), lens)  # (B, M, T)
        pairs = [
            (audio[b, :n], wave[b, :n].float()) for b, n in enumerate(lens.tolist())
        ]
        return {
            f"{prefix}mel_l1": masked_mel_l1(mel, other, mel_lens).tolist(),
            f"{prefix}mcd": [mcd(a, w, self.sample_rate) for a, w in pairs],
        }

    def validation_metrics(self, stats: dict) -> dict:
        """Means over utterances: val_loss, val_mel_l1, val_mcd (+ griffin_lim_)."""
        return {
            f"val_{key}": sum(values) / max(1, len(values))
            for key, values in stats.items()
            if isinstance(values, list)
        }

    # ------------------------------------------------------------ data
    def build_dataset(self, ds_cfg: dict) -> VocoderDataset:
        keys = ("manifest_filepath", "n_segments", "min_duration", "max_duration")
        keys += ("rows",)
        args = {k: ds_cfg[k] for k in keys + ("cache_audio",) if k in ds_cfg}
        return VocoderDataset(sample_rate=self.sample_rate, **args)

    def collate(self, items: list) -> dict:
        return collate_vocoder(items)

    # ------------------------------------------------------------ optimization
    def configure_optimizers(self, max_steps: int):
        """([generator AdamW, discriminator AdamW], [their schedules])."""
        self.check_trainable()
        optim_cfg = dict(self.cfg.get("optim") or {"name": "adamw", "lr": 2e-4})
        sched_cfg = optim_cfg.pop("sched", None)
        opt_g = build_optimizer(self.generator.parameters(), optim_cfg)
        params_d = itertools.chain(self.mpd.parameters(), self.msd.parameters())
        opt_d = build_optimizer(params_d, optim_cfg)
        schedules = [schedule(opt, sched_cfg, max_steps) for opt in (opt_g, opt_d)]
        return [opt_g, opt_d], schedules


def schedule(optimizer, sched_cfg: dict | None, max_steps: int):
    """`{name: exponential, gamma, every_n_steps}` here; other names: core.optim."""
    if not sched_cfg or str(sched_cfg.get("name", "")).lower() != "exponential":
        return build_scheduler(optimizer, sched_cfg, max_steps)
    args = {k: v for k, v in sched_cfg.items() if k != "name"}
    check_arguments(ExponentialDecay, args, "optim.sched (exponential)")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, ExponentialDecay(**args))


def fit_length(wave: Tensor, n: int) -> Tensor:
    """Cut or zero-pad the last dimension to n samples."""
    if wave.shape[-1] >= n:
        return wave[..., :n]
    return F.pad(wave, (0, n - wave.shape[-1]))
