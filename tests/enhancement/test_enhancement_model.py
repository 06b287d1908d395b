"""EnhancementModel (NeMo's EncMaskDecAudioToAudioModel): the STFT pair against
torch.stft/istft with NeMo's length rules, a mask of ones giving back the input,
shapes and lengths, batched = one by one, a few training steps, save/restore; and the
recipes in configs/enhancement: each builds, and a 3-step smoke run on a few
utterances exports a model file that restores."""

import json
from pathlib import Path

import pytest
import torch
from tiny_model import small_manifest

from minispeech.core.config import ConfigError, load_recipe
from minispeech.core.model import SpeechModel, restore_from
from minispeech.enhancement import (
    AudioToSpectrogram,
    EnhancementModel,
    SpectrogramToAudio,
)
from minispeech.enhancement.dataset import collate_pairs
from minispeech.metrics.sdr import si_sdr
from minispeech.metrics.stoi import stoi
from minispeech.training.loop import train

REPO = Path(__file__).resolve().parents[2]
RECIPES = sorted((REPO / "configs/enhancement").glob("*.yaml"))
ESTIMATORS = {
    "blstm": {"_target_": "minispeech.enhancement.MaskEstimatorRNN", "num_layers": 2},
    "blstm_both_features": {
        "_target_": "minispeech.enhancement.MaskEstimatorRNN",
        "num_layers": 1,
        "input_features": ["magnitude", "normalized_log_power"],
    },
    "gru": {
        "_target_": "minispeech.enhancement.MaskEstimatorRNN",
        "rnn_type": "gru",
        "bidirectional": False,
        "num_layers": 1,
    },
    "conformer": {
        "_target_": "minispeech.enhancement.MaskEstimatorConformer",
        "d_model": 16,
        "n_layers": 2,
        "n_heads": 2,
        "conv_kernel_size": 5,
    },
}


def tiny(estimator: str = "blstm", fft: int = 64, hop: int = 16) -> EnhancementModel:
    width = {"num_features": 16} if "RNN" in ESTIMATORS[estimator]["_target_"] else {}
    return EnhancementModel(
        {
            "_target_": "minispeech.enhancement.EnhancementModel",
            "encoder": {"fft_length": fft, "hop_length": hop},
            "mask_estimator": {
                **ESTIMATORS[estimator],
                "num_subbands": fft // 2 + 1,
                **width,
            },
            "optim": {"name": "adam", "lr": 1e-2},
        }
    )


@pytest.mark.parametrize("fft, hop", [(64, 16), (64, 32), (32, 8)])
def test_stft_pair_matches_torch_with_nemo_length_rules(fft, hop):
    encoder, decoder = AudioToSpectrogram(fft, hop), SpectrogramToAudio(fft, hop)
    window = torch.hann_window(fft)
    for n in range(3 * hop, 5 * hop + 1, 3):  # a sweep of lengths
        audio = torch.randn(2, 1, n)  # (B, C, S)
        audio[1, 0, n - 7 :] = 0.0  # the second is 7 samples shorter, zero-padded
        lens = torch.tensor([n, n - 7])
        spec, spec_lens = encoder(audio, lens)
        assert spec.shape == (2, 1, fft // 2 + 1, n // hop + 1)  # T = S // hop + 1
        assert spec_lens.tolist() == [n // hop + 1, (n - 7) // hop + 1]
        expected = torch.stft(
            audio[0, 0],
            fft,
            hop,
            window=window,
            pad_mode="constant",
            return_complex=True,
        )
        torch.testing.assert_close(spec[0, 0], expected, atol=1e-5, rtol=0)
        assert (spec[1, :, :, spec_lens[1] :] == 0).all()  # frames past the length
        wave, wave_lens = decoder(spec, spec_lens)
        assert wave.shape[-1] == n // hop * hop  # S' = (T - 1) * hop
        assert wave_lens.tolist() == [(t - 1) * hop for t in spec_lens.tolist()]
        # the inverse: exact on every utterance's valid samples; each from its own
        # frames, as torch.istft of those frames alone
        for b, m in enumerate(wave_lens.tolist()):
            torch.testing.assert_close(wave[b, 0, :m], audio[b, 0, :m])
        alone = torch.istft(spec[1, 0, :, : spec_lens[1]], fft, hop, window=window)
        torch.testing.assert_close(wave[1, 0, : wave_lens[1]], alone)
        assert (wave[1, 0, wave_lens[1] :] == 0).all()


def test_magnitude_compression_and_scale_are_undone():
    """NeMo's options: |X|^p and a gain in the encoder, inverted by the decoder."""
    encoder = AudioToSpectrogram(64, 16, magnitude_power=0.5, scale=0.3)
    decoder = SpectrogramToAudio(64, 16, magnitude_power=0.5, scale=0.3)
    audio, lens = torch.randn(1, 1, 640), torch.tensor([640])
    spec, spec_lens = encoder(audio, lens)
    plain, _ = AudioToSpectrogram(64, 16)(audio, lens)
    torch.testing.assert_close(spec.abs(), 0.3 * plain.abs().sqrt())
    torch.testing.assert_close(decoder(spec, spec_lens)[0], audio, atol=1e-5, rtol=0)


def ones_mask(spec, spec_lens):
    """A mask estimator that keeps everything: ones (B, 1, F, T)."""
    return torch.ones_like(spec[:, :1].real), spec_lens


@pytest.mark.parametrize("estimator", ["blstm", "conformer"])
def test_a_mask_of_ones_returns_the_input(estimator, monkeypatch):
    model = tiny(estimator).eval()
    monkeypatch.setattr(model.mask_estimator, "forward", ones_mask)
    noisy = torch.randn(2, 16 * 40)  # S a multiple of the hop: all samples valid
    output, output_lens = model(noisy, torch.tensor([640, 640]))
    assert output_lens.tolist() == [640, 640]
    torch.testing.assert_close(output[:, 0], noisy, atol=1e-5, rtol=0)


@pytest.mark.parametrize("estimator", sorted(ESTIMATORS))
def test_forward_shapes_and_lengths(estimator):
    model = tiny(estimator).eval()
    lens = torch.tensor([1000, 777, 500])
    for noisy in (torch.randn(3, 1000), torch.randn(3, 2, 1000)):  # (B, S), (B, C, S)
        output, output_lens = model(noisy, lens)
        assert output.shape == (3, 1, 1000)  # zero-padded to the batch's S
        assert output_lens.tolist() == [(n // 16) * 16 for n in lens.tolist()]
        for b, n in enumerate(output_lens.tolist()):
            assert (output[b, :, n:] == 0).all()
    assert model.enhance(torch.randn(777)).shape == (777,)  # the same length


@pytest.mark.parametrize("estimator", sorted(ESTIMATORS))
def test_batched_equals_one_by_one_on_padded_inputs(estimator):
    model = tiny(estimator).eval()
    waves = [torch.randn(n) for n in (900, 613, 350)]
    batch = collate_pairs(
        [{"input": w, "target": w, "id": "", "kind": "", "snr_db": 0} for w in waves]
    )
    with torch.no_grad():
        output, _ = model(batch["input_signal"], batch["input_length"])  # (3, 1, S)
    for b, wave in enumerate(waves):
        alone = model.enhance(wave)  # (S,)
        torch.testing.assert_close(
            output[b, 0, : wave.numel()], alone, atol=1e-5, rtol=0
        )


def toy_pairs(n: int = 8, length: int = 4000) -> list:
    """Harmonic 'speech' (amplitude-modulated tones) in white noise at 0 dB SNR."""
    t = torch.arange(length) / 16000
    items = []
    for i in range(n):
        f0 = 120 + 25 * i
        clean = sum(torch.sin(2 * torch.pi * k * f0 * t) / k for k in (1, 2, 3))
        clean = clean * (0.6 + 0.4 * torch.sin(2 * torch.pi * 3 * t + i))
        noise = torch.randn(length) * clean.pow(2).mean().sqrt()
        items.append(
            {"input": clean + noise, "target": clean, "id": f"u{i}", "kind": "white"}
        )
    return [{**item, "snr_db": 0.0} for item in items]


def test_a_few_training_steps_lower_the_loss():
    model = tiny("blstm").train()
    batch = collate_pairs(toy_pairs())
    optimizer, _ = model.configure_optimizers(max_steps=30)
    losses = []
    for _ in range(30):
        loss = model.training_step(batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] - 3.0, losses  # 3 dB of SI-SDR gained at least


def test_validation_of_the_identity_improves_nothing(monkeypatch):
    """A mask of ones outputs the noisy input: SI-SDR improvement 0, and STOI is
    that of the noisy input."""
    model = tiny("blstm").eval()
    monkeypatch.setattr(model.mask_estimator, "forward", ones_mask)
    items = toy_pairs(n=3, length=16000)
    with torch.no_grad():
        stats = model.validation_step(collate_pairs(items))
    metrics = model.validation_metrics(stats)
    assert metrics["val_si_sdr_improvement"] == pytest.approx(0.0, abs=1e-3)
    assert metrics["val_si_sdr_improvement_white"] == pytest.approx(0.0, abs=1e-3)
    noisy_si_sdr = [float(si_sdr(i["input"], i["target"])) for i in items]
    assert metrics["val_si_sdr"] == pytest.approx(sum(noisy_si_sdr) / 3, abs=1e-3)
    assert metrics["val_loss"] == pytest.approx(-metrics["val_si_sdr"], abs=1e-3)
    noisy_stoi = [stoi(i["target"], i["input"], 16000) for i in items]
    assert metrics["val_stoi"] == pytest.approx(sum(noisy_stoi) / 3, abs=1e-4)


def test_save_and_restore(tmp_path):
    model = tiny("conformer").eval()
    path = model.save_to(tmp_path / "enh.nemo")
    restored = EnhancementModel.restore_from(path)
    wave = torch.randn(1500)
    torch.testing.assert_close(restored.enhance(wave), model.enhance(wave))


def test_a_wrong_key_is_named():
    cfg = tiny().cfg
    cfg["mask_estimator"]["num_feature"] = 8
    with pytest.raises(ConfigError, match="MaskEstimatorRNN.*num_feature"):
        EnhancementModel(cfg)


# ---------------------------------------------------------------- recipes


def recipe(path: Path, tmp_path: Path, **trainer) -> dict:
    return load_recipe(path, REPO, tmp_path / "exp", **trainer)


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_every_recipe_builds_and_states_its_size_and_time(path, tmp_path):
    model = SpeechModel.from_config(recipe(path, tmp_path)["model"])
    assert isinstance(model, EnhancementModel)
    header = path.read_text().split("model:")[0]
    millions = f"{model.num_parameters() / 1e6:.2f} M parameters"
    assert millions in header, millions
    assert "Measured" in header or "Estimated" in header


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_smoke_run_exports_a_model_that_restores(path, tmp_path):
    cfg = recipe(path, tmp_path, max_steps=3, val_check_interval=3)
    data = REPO / "data/tinyspeech"
    model_cfg = cfg["model"]
    model_cfg["train_ds"]["manifest_filepath"] = small_manifest(
        data / "train.jsonl", tmp_path / "train8.jsonl", n_speakers=4, per=2
    )
    model_cfg["train_ds"].update(cache_audio=False, batch_size=4, crop_seconds=0.5)
    model_cfg["validation_ds"]["manifest_filepath"] = small_manifest(
        data / "dev.jsonl", tmp_path / "dev4.jsonl", n_speakers=2, per=2
    )
    model_cfg["optim"]["sched"]["warmup_steps"] = 1
    torch.manual_seed(0)
    model = restore_from(train(cfg))
    assert isinstance(model, EnhancementModel)
    assert model.enhance(0.1 * torch.randn(8000)).shape == (8000,)
    metrics = [
        json.loads(x) for x in open(tmp_path / "exp" / path.stem / "metrics.jsonl")
    ]
    last = [m for m in metrics if "val_si_sdr_improvement" in m][-1]
    assert {"val_loss", "val_si_sdr", "val_sdr", "val_stoi"} <= set(last)
