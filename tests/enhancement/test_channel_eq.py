"""ChannelEQ, the random-equaliser augmentation: the response against its formula
evaluated term by term in float64, the filter against a per-item DFT in numpy, the
noisy power kept, padding left silent, the same response on input and target, the
draws reproducible from torch's seed, bad settings named, and the model applying it
in training only."""

import math

import numpy as np
import pytest
import torch

from minispeech.core.config import ConfigError
from minispeech.enhancement import EnhancementModel
from minispeech.enhancement.channel_eq import ChannelEQ, bin_octaves, response_db


def reference_response(freq_hz, tilt, centres, widths, heights, limit):
    """The gain in dB at one frequency, one term at a time."""
    octave = math.log2(max(freq_hz, 10.0) / 1000.0)
    total = tilt * octave
    for c, w, h in zip(centres, widths, heights):
        total += h * math.exp(-((octave - c) ** 2) / (2.0 * w * w))
    return min(max(total, -limit), limit)


def test_response_matches_the_formula_term_by_term():
    gen = torch.Generator().manual_seed(0)
    b, k, n_bins, rate = 3, 4, 33, 16000
    tilt = torch.rand(b, generator=gen, dtype=torch.float64) * 6 - 3
    centres = torch.rand(b, k, generator=gen, dtype=torch.float64) * 6 - 4
    widths = 0.25 + torch.rand(b, k, generator=gen, dtype=torch.float64)
    heights = torch.rand(b, k, generator=gen, dtype=torch.float64) * 24 - 12
    octaves = bin_octaves(n_bins, rate, torch.float64)
    got = response_db(octaves, tilt, centres, widths, heights, max_total_db=9.0)
    for i in range(b):
        for j in range(n_bins):
            want = reference_response(
                j * rate / 2 / (n_bins - 1),
                float(tilt[i]),
                centres[i].tolist(),
                widths[i].tolist(),
                heights[i].tolist(),
                9.0,
            )
            assert got[i, j].item() == pytest.approx(want, abs=1e-9)
    assert got.abs().max() <= 9.0 and (got.abs() == 9.0).any()  # the clamp acts


def test_filter_matches_a_per_item_dft_and_keeps_the_noisy_power():
    torch.manual_seed(1)
    n, lens = 401, torch.tensor([401, 300, 123])
    noisy, clean = torch.randn(3, n, dtype=torch.float64), torch.randn(3, n)
    for i, m in enumerate(lens.tolist()):  # padded batch: zeros past each length
        noisy[i, m:], clean[i, m:] = 0.0, 0.0
    eq = ChannelEQ(probability=1.0)
    torch.manual_seed(7)
    gains_db = eq.gains_db(3, n // 2 + 1).double().numpy()  # (B, F)
    torch.manual_seed(7)  # the same draws inside the call
    out_noisy, out_clean = eq(noisy, clean.double(), lens)
    for i, m in enumerate(lens.tolist()):
        gain = 10.0 ** (gains_db[i] / 20.0)
        ref = [
            np.fft.irfft(np.fft.rfft(x[i].numpy()) * gain, n=n) for x in (noisy, clean)
        ]
        ref = [r * (np.arange(n) < m) for r in ref]  # padding stays silent
        scale = np.sqrt(np.sum(noisy[i].numpy() ** 2) / np.sum(ref[0] ** 2))
        np.testing.assert_allclose(out_noisy[i].numpy(), ref[0] * scale, atol=1e-5)
        np.testing.assert_allclose(out_clean[i].numpy(), ref[1] * scale, atol=1e-5)
        assert out_noisy[i].pow(2).sum().item() == pytest.approx(
            noisy[i].pow(2).sum().item(), rel=1e-9
        )
        assert (out_noisy[i, m:] == 0).all() and (out_clean[i, m:] == 0).all()


def test_the_same_filter_on_input_and_target_so_the_task_is_unchanged():
    """noisy = clean + noise stays true after the filter: EQ is linear and shared."""
    torch.manual_seed(2)
    clean, noise = torch.randn(4, 1000), torch.randn(4, 1000)
    lens = torch.full((4,), 1000)
    torch.manual_seed(3)
    out_noisy, out_clean = ChannelEQ(probability=1.0)(clean + noise, clean, lens)
    torch.manual_seed(3)
    _, out_noise = ChannelEQ(probability=1.0)(clean + noise, noise, lens)
    torch.testing.assert_close(out_noisy, out_clean + out_noise, atol=1e-4, rtol=0)


def test_probability_zero_changes_nothing_and_one_changes_every_pair():
    torch.manual_seed(4)
    x, lens = torch.randn(8, 512), torch.full((8,), 512)
    same, _ = ChannelEQ(probability=0.0)(x, x, lens)
    torch.testing.assert_close(same, x, atol=1e-5, rtol=0)
    changed, _ = ChannelEQ(probability=1.0)(x, x, lens)
    assert ((changed - x).abs().amax(1) > 1e-2).all()


def test_multichannel_input_gets_one_response_per_pair():
    torch.manual_seed(5)
    mono = torch.randn(2, 1, 256)
    lens = torch.full((2,), 256)
    torch.manual_seed(6)
    out, _ = ChannelEQ(probability=1.0)(mono.expand(2, 3, 256), mono[:, 0], lens)
    torch.testing.assert_close(out[:, 0], out[:, 2])


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"probability": 1.5}, "probability"),
        ({"min_hz": 9000.0}, "min_hz"),
        ({"bumps": -1}, "bumps"),
    ],
)
def test_bad_settings_are_named(kwargs, word):
    with pytest.raises(ConfigError, match=word):
        ChannelEQ(**kwargs)


def tiny_model(channel_eq) -> EnhancementModel:
    cfg = {
        "_target_": "minispeech.enhancement.EnhancementModel",
        "encoder": {"fft_length": 64, "hop_length": 16},
        "mask_estimator": {
            "_target_": "minispeech.enhancement.MaskEstimatorRNN",
            "num_subbands": 33,
            "num_features": 8,
            "num_layers": 1,
        },
    }
    if channel_eq is not None:
        cfg["channel_eq"] = channel_eq
    return EnhancementModel(cfg)


def test_the_model_filters_in_training_only_and_names_a_wrong_key():
    torch.manual_seed(8)
    batch = {
        "input_signal": torch.randn(2, 800),
        "target_signal": torch.randn(2, 800),
        "input_length": torch.tensor([800, 600]),
    }
    plain, eq = tiny_model(None), tiny_model({"probability": 1.0})
    eq.load_state_dict(plain.state_dict())
    assert plain.channel_eq is None and tiny_model({}).channel_eq is not None
    torch.manual_seed(9)
    loss_plain = plain.training_step(batch)["loss"]
    torch.manual_seed(9)
    loss_eq = eq.training_step(batch)["loss"]
    assert not torch.isclose(loss_plain, loss_eq)
    val_plain = plain.validation_step(batch)["loss"]
    assert eq.validation_step(batch)["loss"] == pytest.approx(val_plain)
    with pytest.raises(ConfigError, match="max_gain"):
        tiny_model({"max_gain": 3.0})
