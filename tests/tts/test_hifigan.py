"""HiFi-GAN (minispeech/tts/hifigan*.py, vocoder_dataset.py): generator lengths, weight
norm against its formula, discriminator shapes and the paper's sizes, the vocoder
dataset, a 3-step training through `train(cfg)` that moves both
optimizers' parameters (and the generator-only warm-up that moves one), save/restore,
config errors, and the two recipes (build; 2 steps of the GPU one)."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_model import small_manifest

from minispeech.core.config import ConfigError, load_recipe
from minispeech.core.model import SpeechModel, restore_from
from minispeech.training.checkpointer import seed_everything
from minispeech.training.loop import train
from minispeech.tts.hifigan import (
    DiscriminatorS,
    HifiGanGenerator,
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
)
from minispeech.tts.hifigan_model import ExponentialDecay, HifiGanModel
from minispeech.tts.vocoder_dataset import VocoderDataset, collate_vocoder

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "data/tinyspeech"
RECIPES = sorted((REPO / "configs/tts").glob("hifigan_*.yaml"))


def tiny_config(**sections) -> dict:
    """A HifiGanModel small enough for unit tests: hop 64 = 8 x 8, 20 mels."""
    cfg = {
        "_target_": "minispeech.tts.HifiGanModel",
        "preprocessor": {
            "sample_rate": 16000,
            "window_size": None,
            "window_stride": None,
            "n_window_size": 256,
            "n_window_stride": 64,
            "n_fft": 256,
            "features": 20,
            "highfreq": 8000,
            "normalize": None,
            "preemph": None,
            "dither": 0.0,
            "pad_to": 1,
            "mag_power": 1.0,
            "log_zero_guard_type": "clamp",
            "log_zero_guard_value": 1e-5,
            "exact_pad": True,
            "pad_value": -11.52,
        },
        "generator": {
            "upsample_rates": [8, 8],
            "upsample_kernel_sizes": [16, 16],
            "upsample_initial_channel": 16,
            "resblock_kernel_sizes": [3, 5],
            "resblock_dilation_sizes": [[1, 3], [1, 3]],
            "initial_input_size": 20,
        },
        "mpd": {"periods": [2, 3], "channels": [4, 8, 8, 8, 8]},
        "msd": {
            "n_scales": 2,
            "channels": [4, 4, 8, 8, 8, 8, 8],
            "groups": [1, 2, 4, 4, 4, 4, 1],
        },
        "optim": {"name": "adamw", "lr": 1e-3, "betas": [0.8, 0.99]},
    }
    cfg.update(sections)
    return cfg


# ---------------------------------------------------------------- modules


@pytest.mark.parametrize(
    "rates, kernels, resblock",
    [((8, 8, 2, 2), (16, 16, 4, 4), 1), ((4, 4), (8, 8), 2), ((5, 3), (11, 7), 1)],
)
def test_generator_output_is_t_times_prod_u(rates, kernels, resblock):
    dilations = [[1, 3, 5]] * 2 if resblock == 1 else [[1, 3]] * 2
    generator = HifiGanGenerator(
        resblock, rates, kernels, 16, [3, 7], dilations, initial_input_size=10
    )
    for frames in (1, 2, 7, 21):
        wave = generator(torch.randn(2, 10, frames))
        assert wave.shape == (2, 1, frames * math.prod(rates))
        assert wave.abs().max() <= 1.0  # tanh


def test_weight_norm_is_g_times_v_over_its_norm():
    """Salimans & Kingma 2016, Eq. 2, in float64; for a transposed conv the norm is
    per input channel (dim 0 of its (C_in, C_out, k) weight)."""
    generator = HifiGanGenerator(1, (4,), (8,), 6, (3,), ((1, 3, 5),), 5).double()
    for conv in (generator.conv_pre, generator.ups[0]):
        g = conv.parametrizations.weight.original0  # (C0, 1, 1)
        v = conv.parametrizations.weight.original1  # (C0, C1, k)
        with torch.no_grad():
            g.mul_(torch.rand_like(g) + 0.5)  # g != ||v||
        expected = g * v / v.pow(2).sum((1, 2), keepdim=True).sqrt()
        torch.testing.assert_close(conv.weight, expected)
    x = torch.randn(1, 5, 9, dtype=torch.float64)
    conv = generator.conv_pre
    torch.testing.assert_close(
        conv(x), torch.nn.functional.conv1d(x, conv.weight, conv.bias, padding=3)
    )


def test_discriminator_shapes():
    wave = torch.randn(2, 1, 1000)
    mpd = MultiPeriodDiscriminator(channels=(4, 8, 8, 8, 8))
    scores, features = mpd(wave)
    assert len(scores) == len(features) == 5
    for p, score, maps in zip((2, 3, 5, 7, 11), scores, features):
        rows = math.ceil(1000 / p)
        for _ in range(4):  # four convs of stride 3, kernel 5, padding 2
            rows = (rows - 1) // 3 + 1
        assert score.shape == (2, rows * p)
        assert len(maps) == 6 and maps[-1].shape == (2, 1, rows, p)
        assert [m.shape[1] for m in maps] == [4, 8, 8, 8, 8, 1]
    msd = MultiScaleDiscriminator(channels=(4, 4, 8, 8, 8, 8, 8), groups=(1,) * 7)
    scores, features = msd(wave)
    assert len(scores) == 3 and [len(maps) for maps in features] == [8, 8, 8]
    n = 1000
    for k, score in enumerate(scores):
        if k:
            n = n // 2 + 1  # AvgPool1d(4, 2, padding 2)
        assert score.shape == (2, math.ceil(math.ceil(n / 4) / 16))  # strides 2,2,4,4
    assert hasattr(msd.discriminators[0].convs[0].parametrizations.weight[0], "_u")


def test_default_sizes_are_the_papers():
    """70,724,591 discriminator parameters (NeMo's fixed MPD + MSD, hifigan_tiny_io
    .json) and 13.9 M for the V1 generator (the paper's Table 1: 13.92 M)."""
    with torch.device("meta"):
        discriminators = (MultiPeriodDiscriminator(), MultiScaleDiscriminator())
        generator = HifiGanGenerator()
    count = sum(p.numel() for d in discriminators for p in d.parameters())
    assert count == 70_724_591
    assert sum(p.numel() for p in generator.parameters()) == 13_936_130


def test_groups_must_divide_the_channels():
    with pytest.raises(ValueError, match="groups=4"):
        DiscriminatorS(channels=(6, 6, 8, 8, 8, 8, 8), groups=(1, 4, 1, 1, 1, 1, 1))


# ---------------------------------------------------------------- data


def test_vocoder_dataset_segments_and_whole_files(tmp_path):
    manifest = small_manifest(CORPUS / "tts_train.jsonl", tmp_path / "m.jsonl", 1, 3)
    whole = VocoderDataset(manifest, n_segments=None, cache_audio=True)
    segments = VocoderDataset(manifest, n_segments=4000)
    for i in range(3):
        wave, piece = whole[i]["audio"], segments[i]["audio"]
        assert whole[i]["length"] == wave.numel() > 4000 == piece.numel()
        starts = [s for s in range(wave.numel() - 3999) if wave[s] == piece[0]]
        assert any(torch.equal(wave[s : s + 4000], piece) for s in starts)
    long = VocoderDataset(manifest, n_segments=200_000)[0]  # longer than the file
    assert long["audio"].numel() == 200_000 and long["length"] == whole[0]["length"]
    assert (long["audio"][long["length"] :] == 0).all()
    batch = collate_vocoder([whole[0], whole[1]])
    assert batch["audio"].shape == (2, max(batch["audio_lens"].tolist()))
    assert batch["ids"] == [whole[0]["id"], whole[1]["id"]]
    with pytest.raises(ConfigError, match="n_segments"):
        VocoderDataset(manifest, n_segments=0)


# ---------------------------------------------------------------- the model


def test_forward_convert_and_validation_scores():
    model = HifiGanModel(tiny_config(val_griffin_lim={"n_iters": 2})).eval()
    mel = torch.randn(2, 20, 6)
    assert model(mel).shape == (2, 1, 384)
    torch.testing.assert_close(
        model.convert_spectrogram_to_audio(mel), model(mel)[:, 0]
    )
    audio = 0.1 * torch.randn(2, 2000)
    batch = {
        "audio": audio,
        "audio_lens": torch.tensor([2000, 1500]),
        "ids": ["a", "b"],
    }
    with torch.no_grad():
        stats = model.validation_step(batch)
        # a perfect vocoder gives back the audio: mel L1 and MCD are 0
        model.generate = lambda a, n: (
            *model.audio_to_melspec_precessor(a, n),
            a[:, None],
        )
        perfect = model.validation_step(batch)
    assert set(stats) == {
        "mel_l1",
        "mcd",
        "loss",
        "griffin_lim_mel_l1",
        "griffin_lim_mcd",
    }
    assert all(len(v) == 2 for v in stats.values()) and min(stats["mcd"]) > 0
    assert max(perfect["mel_l1"]) == 0 and max(perfect["mcd"]) == 0
    assert perfect["griffin_lim_mcd"] == stats["griffin_lim_mcd"]  # cached per id
    metrics = model.validation_metrics(stats)
    assert (
        metrics["val_loss"]
        == metrics["val_mel_l1"]
        == pytest.approx(np.mean(stats["mel_l1"]))
    )


def train_config(tmp_path, max_steps: int, **model) -> dict:
    """A 2-file, 2048-sample-window training of `tiny_config` through the loop."""
    train_rows = small_manifest(CORPUS / "tts_train.jsonl", tmp_path / "t.jsonl", 1, 4)
    val_rows = small_manifest(CORPUS / "tts_test.jsonl", tmp_path / "v.jsonl", 1, 2)
    return {
        "model": tiny_config(
            train_ds={
                "manifest_filepath": train_rows,
                "n_segments": 2048,
                "batch_size": 2,
            },
            validation_ds={"manifest_filepath": val_rows, "batch_size": 2},
            **model,
        ),
        "trainer": {
            "max_steps": max_steps,
            "accelerator": "cpu",
            "val_check_interval": max_steps,
            "log_every_n_steps": 1,
            "enable_progress_bar": False,
            "seed": 7,
        },
        "exp_manager": {"exp_dir": str(tmp_path / "exp"), "name": "hifigan"},
    }


def moved_parameters(cfg: dict, trained) -> dict:
    """Per part, how many of its parameters differ from the loop's initial model."""
    seed_everything(cfg["trainer"]["seed"])  # the loop's seed before it builds
    initial = HifiGanModel(cfg["model"])
    moved = {}
    for part in ("generator", "mpd", "msd"):
        before = dict(getattr(initial, part).named_parameters())
        after = dict(getattr(trained, part).named_parameters())
        moved[part] = sum(not torch.equal(before[n], after[n]) for n in before)
    return moved, {p: len(list(getattr(initial, p).parameters())) for p in moved}


def test_training_moves_both_optimizers_parameters(tmp_path):
    cfg = train_config(tmp_path, 3)
    trained = restore_from(train(cfg))
    moved, total = moved_parameters(cfg, trained)
    assert moved == total  # every parameter of the generator and both discriminators
    assert int(trained.trained_steps) == 3
    log = [json.loads(x) for x in open(tmp_path / "exp/hifigan/metrics.jsonl")]
    assert {"lr", "lr_1", "grad_norm_1"} <= set(log[0])  # generator, discriminators
    assert {"val_loss", "val_mel_l1", "val_mcd"} <= set(log[-1])


def test_discriminators_wait_for_their_start_step(tmp_path):
    cfg = train_config(tmp_path, 2, discriminator_start_step=5)
    trained = restore_from(train(cfg))
    moved, total = moved_parameters(cfg, trained)
    assert moved == {"generator": total["generator"], "mpd": 0, "msd": 0}
    assert int(trained.trained_steps) == 2


def test_save_and_restore(tmp_path):
    model = HifiGanModel(tiny_config()).eval()
    restored = SpeechModel.restore_from(model.save_to(tmp_path / "v.nemo"))
    mel = torch.randn(1, 20, 5)
    torch.testing.assert_close(
        restored.convert_spectrogram_to_audio(mel),
        model.convert_spectrogram_to_audio(mel),
    )


def test_config_errors_are_named():
    bad = tiny_config()
    bad["generator"]["upsample_rate"] = [8, 8]
    with pytest.raises(ConfigError, match="HifiGanGenerator.*upsample_rate"):
        HifiGanModel(bad)
    with pytest.raises(ConfigError, match="val_griffin_lim.*iters"):
        HifiGanModel(tiny_config(val_griffin_lim={"iters": 3}))
    with pytest.raises(ConfigError, match="n_segment"):
        HifiGanModel(tiny_config(train_ds={"n_segment": 3}))
    synthesis_only = HifiGanModel(tiny_config(mpd=None, msd=None))
    assert synthesis_only.mpd is None and synthesis_only.num_parameters() > 0
    with pytest.raises(ConfigError, match="discriminators"):
        synthesis_only.configure_optimizers(10)


def test_exponential_schedule():
    model = HifiGanModel(tiny_config())
    model.cfg["optim"]["sched"] = {
        "name": "exponential",
        "gamma": 0.5,
        "every_n_steps": 2,
    }
    (opt_g, opt_d), (sched_g, sched_d) = model.configure_optimizers(10)
    lrs = []
    for _ in range(5):
        lrs.append(opt_d.param_groups[0]["lr"])
        opt_g.step(), opt_d.step(), sched_g.step(), sched_d.step()
    assert lrs == pytest.approx([1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4])
    assert ExponentialDecay(0.999)(1000) == pytest.approx(0.999**1000)


# ---------------------------------------------------------------- recipes


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_builds_and_states_its_size(path, tmp_path):
    cfg = load_recipe(path, REPO, tmp_path)
    with torch.device("meta"):
        model = SpeechModel.from_config(cfg["model"])
    header = path.read_text().split("model:")[0]
    millions = f"{model.num_parameters() / 1e6:.2f} M parameters"
    assert millions in header, millions
    assert "Measured" in header or "Estimated" in header


def test_gpu_recipe_runs_two_steps_on_cpu(tmp_path):
    cfg = load_recipe(
        REPO / "configs/tts/hifigan_small.yaml",
        REPO,
        tmp_path / "exp",
        max_steps=2,
        val_check_interval=2,
        precision="32",
        accelerator="cpu",
    )
    model_cfg = cfg["model"]
    model_cfg["train_ds"].update(
        manifest_filepath=small_manifest(
            CORPUS / "tts_train.jsonl", tmp_path / "t.jsonl", 1, 2
        ),
        n_segments=1024,
        batch_size=1,
        cache_audio=False,
        rows=None,
    )
    model_cfg["validation_ds"].update(
        manifest_filepath=small_manifest(
            CORPUS / "tts_train.jsonl", tmp_path / "v.jsonl", 1, 1
        ),
        rows=None,
    )
    model_cfg.pop("val_griffin_lim", None)
    assert isinstance(restore_from(train(cfg)), HifiGanModel)
