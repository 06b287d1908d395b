"""Spectral subtraction and the decision-directed Wiener filter raise the SI-SDR of
noisy tones and corpus speech, keep clean speech and every length; minimum
statistics finds and follows a white-noise PSD; the vectorized decision-directed
recursion equals a plain Python loop."""

import math

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import corpus_rows

from minispeech.audio.noise import pink_noise, scale_to_snr
from minispeech.audio.stft import get_window, stft
from minispeech.enhancement.classic import (
    decision_directed_gain,
    decision_directed_gain_reference,
    spectral_subtraction,
    subtraction_gain,
    wiener_filter,
)
from minispeech.enhancement.noise_psd import (
    mean_of_minimum,
    noise_psd_leading,
    noise_psd_min_stats,
)

SR = 16000
HOP_S = 128 / SR  # 8 ms
METHODS = {"wiener": wiener_filter, "subtraction": spectral_subtraction}


def si_sdr(estimate, target) -> float:
    """Scale-invariant SDR in dB, float64: alpha = <e, t> / <t, t>."""
    e = np.asarray(estimate, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    scaled = (e @ t) / (t @ t) * t  # alpha t
    return float(10 * np.log10((scaled @ scaled) / ((e - scaled) @ (e - scaled))))


def am_tones(seconds: float = 4.0) -> np.ndarray:
    """Harmonics of 220 Hz gated on for 0.35 s and off for 0.25 s (raised-cosine
    edges), starting with 0.3 s of silence: stationary in the long run, with gaps
    where the noise floor shows (as speech pauses do)."""
    t = np.arange(int(seconds * SR)) / SR
    tone = sum(np.sin(2 * np.pi * 220 * h * t + h) / h for h in (1, 2, 3, 5))
    phase = ((t - 0.3) % 0.6) / 0.35  # 0..1 while on
    edge = np.sin(np.pi * phase.clip(0, 1)) ** 0.5
    gate = np.where((t >= 0.3) & (phase < 1), edge, 0.0)
    return (tone * gate).astype(np.float32)


def corpus_speech(corpus_dir, n: int) -> list:
    """n dev utterances (16 kHz opus, read with soundfile), spread over speakers."""
    rows = corpus_rows(corpus_dir, "dev")[::25][:n]
    waves = [sf.read(row["audio_filepath"], dtype="float32") for row in rows]
    assert all(sr == SR for _, sr in waves)
    return [wave for wave, _ in waves]


def enhance(method, noisy: np.ndarray, **kwargs) -> np.ndarray:
    return METHODS[method](torch.from_numpy(noisy), **kwargs).numpy()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("noise", ["min_stats", "leading"])
def test_shape_and_length_kept_for_one_and_a_batch(method, noise):
    for n_samples in (4000, 12345):
        wave = torch.randn(3, n_samples)  # (B, S)
        batch = METHODS[method](wave, noise=noise)
        assert batch.shape == wave.shape and batch.dtype == wave.dtype
        single = METHODS[method](wave[1], noise=noise)  # (S,)
        assert single.shape == (n_samples,)
        torch.testing.assert_close(single, batch[1], rtol=1e-4, atol=1e-5)


def test_unit_gain_returns_the_input_exactly():
    # no subtraction and no floor: gain 1 everywhere, the STFT round trip is exact
    wave = torch.randn(2, 7777)
    out = spectral_subtraction(wave, over_subtraction=0.0, floor=0.0)
    torch.testing.assert_close(out, wave, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("noise", ["min_stats", "leading"])
@pytest.mark.parametrize("snr_db", [0, 5, 10])
def test_both_methods_raise_si_sdr_of_noisy_tones(noise, snr_db):
    clean = am_tones()
    rng = np.random.default_rng(snr_db)
    noisy = clean + scale_to_snr(clean, rng.standard_normal(len(clean)), snr_db)
    before = si_sdr(noisy, clean)
    for method in METHODS:
        gain = si_sdr(enhance(method, noisy, noise=noise), clean) - before
        assert gain > 6.0, (method, noise, snr_db, gain)


@pytest.mark.parametrize("kind", ["white", "pink"])
def test_wiener_improves_corpus_speech_at_5_db(corpus_dir, kind):
    rng = np.random.default_rng(5)
    gains = []
    for clean in corpus_speech(corpus_dir, 4):
        noise = rng.standard_normal(len(clean)) if kind == "white" else None
        noise = pink_noise(len(clean), rng) if noise is None else noise
        noisy = clean + scale_to_snr(clean, noise, 5.0)
        gains.append(si_sdr(enhance("wiener", noisy), clean) - si_sdr(noisy, clean))
    assert np.mean(gains) > 1.0, gains
    assert min(gains) > 0.0, gains


@pytest.mark.parametrize("method", METHODS)
def test_noise_free_speech_stays_close(corpus_dir, method):
    for clean in corpus_speech(corpus_dir, 3):
        assert si_sdr(enhance(method, clean), clean) > 20.0


def _white_noise_power(level: np.ndarray) -> tuple:
    """|Y|^2 (F, T) of white noise with per-sample std `level`, and the true PSD
    per unit variance: E|Y|^2 = sigma^2 sum(w^2) for a Hann window w."""
    window = get_window("hann", 512)
    noise = torch.from_numpy(np.random.default_rng(0).standard_normal(len(level)))
    spec = stft((noise * torch.from_numpy(level)).float(), 512, 128, window=window)
    return spec.abs() ** 2, float((window**2).sum())  # (F, T), scalar


def _level_db(estimate: torch.Tensor, true_psd: float, seconds: float) -> float:
    """Mean over bins (DC and Nyquist left out) of the estimate at a time, in dB."""
    frame = round(seconds / HOP_S)
    return float(10 * torch.log10(estimate[1:-1, frame].mean() / true_psd))


def test_min_stats_finds_white_noise_psd():
    power, true_psd = _white_noise_power(np.ones(5 * SR))
    estimate = noise_psd_min_stats(power, HOP_S)  # (F, T), causal
    assert estimate.shape == power.shape
    for seconds in (2.0, 3.0, 4.0, 4.9):  # after one 1.5 s window, bias compensated
        assert abs(_level_db(estimate, true_psd, seconds)) < 2.0
    # per bin too: the median bin is within 2 dB of the true PSD
    per_bin = 10 * torch.log10(estimate[1:-1, -100:].mean(-1) / true_psd)
    assert per_bin.median().abs() < 2.0


def test_min_stats_tracks_a_step_in_noise_level():
    # 10 dB up at 3 s, then 10 dB down at 7 s
    level = np.ones(9 * SR)
    level[3 * SR : 7 * SR] = math.sqrt(10.0)
    power, true_psd = _white_noise_power(level)
    estimate = noise_psd_min_stats(power, HOP_S)
    assert abs(_level_db(estimate, 10 * true_psd, 5.0)) < 2.0  # up: within 2 s
    assert abs(_level_db(estimate, true_psd, 7.5)) < 2.0  # down: at once


def test_min_stats_batch_and_warm_start():
    power, true_psd = _white_noise_power(np.ones(2 * SR))
    batch = torch.stack([power, 4 * power])  # (2, F, T)
    estimate = noise_psd_min_stats(batch, HOP_S, warm_start=True)
    torch.testing.assert_close(estimate[1], 4 * estimate[0], rtol=1e-4, atol=0.0)
    # the warm start has seen a full window at frame 0: right from the start
    for seconds in (0.2, 0.5, 1.0):
        assert abs(_level_db(estimate[0], true_psd, seconds)) < 1.5


def test_leading_frames_average_the_first_frames():
    power = torch.rand(2, 257, 100)  # (B, F, T)
    estimate = noise_psd_leading(power, n_frames=31)
    assert estimate.shape == (2, 257, 1)
    torch.testing.assert_close(estimate, power[..., :31].mean(-1, keepdim=True))


def test_mean_of_minimum_table():
    # Martin 2001's table entries, interpolated between and held past D = 160
    assert mean_of_minimum(1) == 0.0 and mean_of_minimum(60) == 0.841
    assert mean_of_minimum(50) == pytest.approx((0.8 + 0.841) / 2)
    assert mean_of_minimum(192) == 0.91


def test_subtraction_gain_by_hand():
    power = torch.tensor([10.0, 10.0, 1.0])
    noise = torch.tensor([1.0, 5.0, 1.0])
    # power: (10 - 2 * 1) / 10; floor 0.01 * 5 / 10; floor 0.01 * 1 / 1
    gain = subtraction_gain(power, noise, 2.0, 2.0, 0.01)
    expected = torch.tensor([0.8, 0.005, 0.01]).sqrt()
    torch.testing.assert_close(gain, expected)
    # magnitude (Boll): (sqrt(10) - 1) / sqrt(10)
    gain = subtraction_gain(power[:1], noise[:1], 1.0, 1.0, 0.0)
    torch.testing.assert_close(gain, torch.tensor([1 - 10**-0.5]))


@pytest.mark.parametrize("alpha_dd, gain_floor", [(0.98, 0.1), (0.5, 0.0)])
def test_decision_directed_equals_the_python_loop(alpha_dd, gain_floor):
    power = torch.rand(2, 5, 40, dtype=torch.float64) * 10  # (B, F, T)
    noise_psd = torch.rand(2, 5, 40, dtype=torch.float64) + 0.5
    fast = decision_directed_gain(power, noise_psd, alpha_dd, gain_floor)
    slow = decision_directed_gain_reference(power, noise_psd, alpha_dd, gain_floor)
    torch.testing.assert_close(fast, slow, rtol=1e-12, atol=1e-12)


def test_bad_inputs_are_refused():
    with pytest.raises(AssertionError, match="noisy must be"):
        wiener_filter(torch.zeros(2, 2, 4000))
    with pytest.raises(ValueError, match="unknown noise estimator"):
        spectral_subtraction(torch.zeros(4000), noise="oracle")
