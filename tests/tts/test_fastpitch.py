"""FastPitch and FastPitchModel on a tiny random model: shapes, the sinusoid layout,
padding invariance, pace, errors, the training step (loss, gradients, bin-loss ramp)
and save/restore. NeMo parity is in tests/nemo/test_nemo_fastpitch.py.

Batches are built by hand: random audio at 16 kHz (hop 64, so 0.3 s is 75 frames),
random frame pitch with unvoiced zeros, and the exact beta-binomial prior.
"""

import copy
import math
from pathlib import Path

import pytest
import torch

from minispeech.core.config import ConfigError, load_config
from minispeech.core.model import restore_from
from minispeech.tts.aligner import beta_binomial_prior
from minispeech.tts.fastpitch_model import FastPitchModel
from minispeech.tts.fft_transformer import sinusoid_positions
from minispeech.tts.predictors import squared_distance

REPO = Path(__file__).resolve().parents[2]
RECIPES = sorted((REPO / "configs/tts").glob("fastpitch_*.yaml"))

PRE = {
    "features": 20, "n_fft": 256, "n_window_size": 256, "window_size": None,
    "n_window_stride": 64, "window_stride": None, "lowfreq": 0, "highfreq": 8000,
    "log": True, "log_zero_guard_type": "add", "log_zero_guard_value": 1e-5,
    "normalize": None, "dither": 0.0, "preemph": None, "pad_to": 1, "mag_power": 1.0,
}  # fmt: skip
FFT = {"n_layer": 1, "n_head": 2, "d_model": 16, "d_head": 8, "d_inner": 32}
PREDICTOR = {"filter_size": 16, "kernel_size": 3, "n_layers": 2}


def tiny_config(**changes) -> dict:
    cfg = {
        "_target_": "minispeech.tts.FastPitchModel",
        "sample_rate": 16000,
        "tokenizer": {"pad_with_space": True},
        "preprocessor": PRE,
        "input_fft": FFT,
        "output_fft": FFT,
        "alignment_module": {"n_att_channels": 12, "temperature": 0.0005},
        "duration_predictor": PREDICTOR,
        "pitch_predictor": PREDICTOR,
        "max_token_length": 40,
        "bin_loss_start_step": 2,
        "bin_loss_warmup_steps": 4,
    }
    cfg.update(copy.deepcopy(changes))
    return cfg


@pytest.fixture
def model():
    model = FastPitchModel(tiny_config())
    with torch.no_grad():  # durations of a few frames, as a trained model's
        model.fastpitch.duration_predictor.fc.bias.fill_(1.5)
    return model.eval()


def hand_batch(model, texts, seconds) -> dict:
    """A collated training batch (the keys of minispeech.tts.dataset.collate_tts)."""
    tokens = [model.tokenizer.encode(t) for t in texts]
    lens = [int(s * 16000) for s in seconds]
    B, U, S = len(texts), max(map(len, tokens)), max(lens)
    T = S // 64 + 1  # the preprocessor's frames (hop 64)
    batch = {
        "audio": torch.zeros(B, S),
        "audio_lens": torch.tensor(lens),
        "text": torch.full((B, U), model.tokenizer.pad),
        "text_lens": torch.tensor([len(t) for t in tokens]),
        "pitch": torch.zeros(B, T),
        "attn_prior": torch.zeros(B, T, U),
        "ids": [f"utt{b}" for b in range(B)],
    }
    for b, (ids, n) in enumerate(zip(tokens, lens)):
        batch["audio"][b, :n] = 0.1 * torch.randn(n)
        batch["text"][b, : len(ids)] = torch.tensor(ids)
        pitch = torch.randn(n // 64 + 1)
        batch["pitch"][b, : n // 64 + 1] = pitch * (pitch.abs() > 0.3)
        batch["attn_prior"][b, : n // 64, : len(ids)] = beta_binomial_prior(
            len(ids), n // 64
        )
    return batch


def test_positions_are_sin_then_cos():
    table = sinusoid_positions(5, 8)  # (T, D)
    assert table.shape == (5, 8)
    assert torch.equal(table[0], torch.tensor([0.0] * 4 + [1.0] * 4))
    f = [1 / 10000 ** (2 * i / 8) for i in range(4)]
    expected = [math.sin(3 * x) for x in f] + [math.cos(3 * x) for x in f]
    assert torch.allclose(table[3], torch.tensor(expected), atol=1e-6)


def test_generate_shapes_and_lengths(model):
    tokens = model.parse("Hello world.")  # (1, U)
    assert tokens.shape == (1, 14) and tokens.dtype == torch.long
    out = model.generate(tokens)
    frames = torch.floor(out.durs_predicted + 0.5).sum(1).long()
    assert torch.equal(out.dec_lens, frames) and int(out.dec_lens) > 0
    assert out.spect.shape == (1, 20, int(out.dec_lens.max()))
    assert torch.equal(model.generate_spectrogram(tokens), out.spect)
    assert out.log_durs_predicted.shape == out.pitch_predicted.shape == (1, 14)


@pytest.mark.parametrize("pace", [0.5, 1.25, 2.0])
def test_pace_scales_lengths(model, pace):
    tokens = model.parse("it's a tiny test, ok?")
    slow, fast = model.generate(tokens), model.generate(tokens, pace=pace)
    expected = torch.floor(slow.durs_predicted / pace + 0.5).sum(1).long()
    assert torch.equal(fast.dec_lens, expected)
    assert abs(int(fast.dec_lens) - int(slow.dec_lens) / pace) <= tokens.shape[1]


def test_padding_a_batch_changes_no_item(model):
    texts = ["hello world.", "it's a tiny test, ok?"]
    padded = hand_batch(model, texts, [0.3, 0.5])
    with torch.no_grad():
        both = model.generate(padded["text"])
        alone = model.generate(model.parse(texts[0]))
        u, t = alone.spect.shape[-1], int(alone.dec_lens)
        assert torch.allclose(both.durs_predicted[0, :14], alone.durs_predicted[0])
        assert torch.allclose(both.spect[0, :, :t], alone.spect[0, :, :u], atol=1e-5)
        both_tf = model.forward_batch(padded)[0]
        one = {k: v[:1] if torch.is_tensor(v) else v for k, v in padded.items()}
        one.update(text=one["text"][:, :14], attn_prior=one["attn_prior"][:, :, :14])
        alone_tf = model.forward_batch(one)[0]
    n = alone_tf.spect.shape[-1]
    assert torch.allclose(both_tf.spect[0, :, :n], alone_tf.spect[0], atol=1e-5)
    assert torch.equal(both_tf.attn_hard[0, :, :, :14], alone_tf.attn_hard[0])


def test_nemo_padding_leaks(model):
    """mask_padding=False (NeMo's layout): the conv stacks see padding."""
    cfg = tiny_config()
    for name in ("input_fft", "output_fft", "duration_predictor", "pitch_predictor"):
        cfg[name] = {**cfg[name], "mask_padding": False}
    leaky = FastPitchModel(cfg).eval()
    leaky.load_state_dict(model.state_dict())
    tokens = model.parse("hello")
    padded = torch.cat([tokens, torch.full((1, 5), model.tokenizer.pad)], 1)
    with torch.no_grad():
        a, b = leaky.generate(tokens), leaky.generate(padded)
    assert not torch.allclose(a.log_durs_predicted, b.log_durs_predicted[:, :7])


def test_errors(model):
    with pytest.raises(ValueError, match="pace"):
        model.generate(model.parse("hi"), pace=0)
    with pytest.raises(ValueError, match="max_token_length=40"):
        model.parse("word " * 10)
    with pytest.raises(ValueError, match="position 3"):
        model.parse("abc1")
    with pytest.raises(ConfigError, match="n_layers"):
        FastPitchModel(tiny_config(input_fft={**FFT, "n_layers": 2}))
    with pytest.raises(ConfigError, match="input_size"):
        FastPitchModel(tiny_config(pitch_predictor={**PREDICTOR, "input_size": 16}))
    with pytest.raises(ConfigError, match="energy_predictor"):
        FastPitchModel(tiny_config(energy_predictor={}))


def test_training_step_reaches_every_part(model):
    model.train()
    batch = hand_batch(model, ["hello world.", "it's a tiny test, ok?"], [0.3, 0.45])
    out = model.training_step(batch)
    assert torch.isfinite(out["loss"]) and out["loss"].ndim == 0
    assert set(out) >= {"mel_loss", "dur_loss", "pitch_loss", "forward_sum_loss"}
    out["loss"].backward()
    fp = model.fastpitch
    for part in (
        fp.encoder.word_emb, fp.encoder.layers[0], fp.aligner.key_proj,
        fp.aligner.query_proj, fp.duration_predictor, fp.pitch_predictor,
        fp.pitch_emb, fp.decoder.layers[0], fp.proj,
    ):  # fmt: skip
        grads = [p.grad for p in part.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads), part
        assert any(g.abs().sum() > 0 for g in grads), part


def test_bin_loss_ramps_by_step(model):
    model.train()
    batch = hand_batch(model, ["hello world."], [0.3])
    weights = [float(model.training_step(batch)["bin_loss_weight"]) for _ in range(8)]
    assert weights == [0, 0, 0, 0.25, 0.5, 0.75, 1, 1]  # start 2, warmup 4
    assert int(model.n_train_steps) == 8


def test_validation_step_sums(model):
    batch = hand_batch(model, ["hello world.", "ok?"], [0.3, 0.2])
    with torch.no_grad():
        stats = model.validation_step(batch)
    assert stats["count"] == 2
    metrics = model.validation_metrics(stats)
    parts = ("mel_loss", "dur_loss", "pitch_loss")
    expected = sum(s * metrics[f"val_{p}"] for s, p in zip((1, 0.1, 0.1), parts))
    assert metrics["val_loss"] == pytest.approx(expected)
    assert math.isfinite(metrics["val_forward_sum_loss"])


def test_save_restore_roundtrip(model, tmp_path):
    model.n_train_steps.fill_(7)
    path = model.save_to(tmp_path / "fastpitch.nemo")
    restored = restore_from(path).eval()
    assert isinstance(restored, FastPitchModel) and int(restored.n_train_steps) == 7
    tokens = model.parse("hello world.")
    with torch.no_grad():
        assert torch.equal(
            restored.generate(tokens).spect, model.generate(tokens).spect
        )


def test_distance_impls_agree():
    queries, keys = torch.randn(2, 12, 30) * 3, torch.randn(2, 12, 7) * 3
    reference = squared_distance(queries, keys, "reference")  # (B, T, U)
    assert reference.shape == (2, 30, 7)
    assert torch.allclose(squared_distance(queries, keys), reference, rtol=1e-5)
    assert torch.allclose(
        reference[1, 4, 2], (queries[1, :, 4] - keys[1, :, 2]).pow(2).sum()
    )


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipe_builds_and_speaks(recipe):
    cfg = load_config(recipe)["model"]
    model = FastPitchModel(cfg).eval()
    assert model.preprocessor.hop_length == 256 and model.sample_rate == 16000
    with torch.no_grad():
        out = model.generate(model.parse("see you tomorrow."))
    assert out.spect.shape[:2] == (1, 80)
