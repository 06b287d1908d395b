"""resample: brute-force windowed-sinc reference, analytic tones, aliasing, shapes.

The quality references are exact: a sum of sinusoids is evaluated analytically at
both rates, so the resampled signal can be compared with the true one.
"""

import math

import numpy as np
import pytest
import torch

from minispeech.audio.resample import kaiser_beta, output_length, resample

RATIOS = [
    (16000, 8000),
    (8000, 16000),
    (22050, 16000),
    (44100, 16000),
    (48000, 16000),
    (16000, 22050),
    (16000, 44100),
]


def reference_resample(x: np.ndarray, orig_sr, new_sr, rolloff=0.9, atten=80.0):
    """Smith's y(t) = sum_k x[k] h(t - k), one output sample at a time, float64.

    h(t) = c sinc(c t) I0(beta sqrt(1 - (t/W)^2)) / I0(beta) for |t| <= W, with
    c = rolloff * min(rates) / orig, beta = 0.1102 (A - 8.7) (Kaiser 1974, A > 50)
    and W = (A - 8) / (2.285 * 2 pi (1 - rolloff)) / 2 lower-rate samples.
    """
    low = min(orig_sr, new_sr)
    c = rolloff * low / orig_sr
    beta = 0.1102 * (atten - 8.7)
    half = 0.5 * (atten - 8.0) / (2.285 * 2 * math.pi * (1 - rolloff)) * orig_sr / low
    n_out = math.ceil(len(x) * new_sr / orig_sr)
    y = np.zeros(n_out)
    for n in range(n_out):
        t = n * orig_sr / new_sr  # output time in input samples
        k = np.arange(
            max(0, math.ceil(t - half)), min(len(x), math.floor(t + half) + 1)
        )
        u = t - k  # distances to the input samples inside the window
        window = np.i0(beta * np.sqrt(np.maximum(0.0, 1 - (u / half) ** 2))) / np.i0(
            beta
        )
        y[n] = np.sum(x[k] * c * np.sinc(c * u) * window)
    return y


def tones(freqs, phases, amps, sample_rate, n):
    """sum_i a_i sin(2 pi f_i t + phi_i) sampled exactly at t = m / sample_rate."""
    t = np.arange(n) / sample_rate
    return (
        amps[:, None] * np.sin(2 * np.pi * freqs[:, None] * t + phases[:, None])
    ).sum(0)


def edge_samples(orig_sr, new_sr):
    """Output samples within one filter half-width of either end (zero padding)."""
    half_low = 0.5 * (80.0 - 8.0) / (2.285 * 2 * math.pi * 0.1)  # lower-rate samples
    return math.ceil(half_low * new_sr / min(orig_sr, new_sr)) + 2


@pytest.mark.parametrize("orig_sr,new_sr", RATIOS + [(3, 7), (7, 3), (5, 37)])
def test_matches_brute_force_sum(orig_sr, new_sr):
    x = np.random.default_rng(0).standard_normal(97)
    expected = reference_resample(x, orig_sr, new_sr)
    got64 = resample(torch.from_numpy(x), orig_sr, new_sr)
    got32 = resample(torch.from_numpy(x).float(), orig_sr, new_sr)
    assert got64.dtype == torch.float64 and got32.dtype == torch.float32
    np.testing.assert_allclose(got64.numpy(), expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(got32.numpy(), expected, rtol=0, atol=2e-5)


@pytest.mark.parametrize("orig_sr,new_sr", RATIOS)
def test_band_limited_tones_match_exact_signal(orig_sr, new_sr):
    # 20 tones below 0.8 x the lower Nyquist, 0.25 s, compared away from the edges.
    rng = np.random.default_rng(1)
    nyquist = min(orig_sr, new_sr) / 2
    freqs = rng.uniform(20.0, 0.8 * nyquist, 20)
    phases, amps = rng.uniform(0, 2 * np.pi, 20), rng.uniform(0.1, 1.0, 20)
    n_in = orig_sr // 4
    x = tones(freqs, phases, amps, orig_sr, n_in)
    y = resample(torch.from_numpy(x), orig_sr, new_sr).numpy()
    exact = tones(freqs, phases, amps, new_sr, len(y))
    edge = edge_samples(orig_sr, new_sr)
    error = y[edge:-edge] - exact[edge:-edge]
    error_db = 10 * np.log10((error**2).sum() / (exact[edge:-edge] ** 2).sum())
    print(f"{orig_sr}->{new_sr}: error {error_db:.1f} dB")
    assert error_db < -50.0


@pytest.mark.parametrize(
    "orig_sr,new_sr", [(16000, 8000), (44100, 16000), (48000, 16000)]
)
@pytest.mark.parametrize("times_nyquist", [1.0, 1.05, 1.2, 1.5])
def test_tone_above_new_nyquist_is_removed(orig_sr, new_sr, times_nyquist):
    freq = times_nyquist * new_sr / 2
    x = tones(np.array([freq]), np.array([0.7]), np.array([1.0]), orig_sr, orig_sr // 4)
    y = resample(torch.from_numpy(x), orig_sr, new_sr).numpy()
    edge = edge_samples(orig_sr, new_sr)
    kept_db = 10 * np.log10((y[edge:-edge] ** 2).mean() / (x**2).mean())
    print(f"{orig_sr}->{new_sr} tone {freq:.0f} Hz: {kept_db:.1f} dB")
    assert kept_db < -60.0


def test_upsampling_leaves_no_images_above_old_nyquist():
    # 3 kHz at 8 kHz -> 16 kHz: the image at 8 - 3 = 5 kHz must be gone. The analysed
    # 0.5 s holds exactly 1500 cycles, so the rectangular window does not leak.
    x = tones(np.array([3000.0]), np.array([0.3]), np.array([1.0]), 8000, 8000)
    y = resample(torch.from_numpy(x), 8000, 16000).numpy()[4000:12000]
    power = np.abs(np.fft.rfft(y)) ** 2
    freqs = np.fft.rfftfreq(len(y), 1 / 16000)
    image_db = 10 * np.log10(power[freqs > 4000].sum() / power.sum())
    print(f"8000->16000 image energy: {image_db:.1f} dB")
    assert image_db < -60.0


def test_equal_rates_return_an_exact_copy():
    x = torch.randn(2, 1000)
    y = resample(x, 16000, 16000)
    assert torch.equal(x, y) and y.data_ptr() != x.data_ptr()


@pytest.mark.parametrize("orig_sr,new_sr", RATIOS + [(3, 7), (1000, 1001)])
def test_output_length_is_ceil_s_new_over_orig(orig_sr, new_sr):
    for n in [0, 1, 2, 3, 7, 50, 441]:
        y = resample(torch.zeros(n), orig_sr, new_sr)
        assert (
            y.shape
            == (math.ceil(n * new_sr / orig_sr),)
            == (output_length(n, orig_sr, new_sr),)
        )


def test_leading_batch_dims_resample_each_row():
    x = torch.randn(2, 3, 500, dtype=torch.float64)
    y = resample(x, 22050, 16000)  # (2, 3, S')
    assert y.shape == (2, 3, math.ceil(500 * 16000 / 22050))
    for i in range(2):
        for j in range(3):
            torch.testing.assert_close(y[i, j], resample(x[i, j], 22050, 16000))


def test_constant_signal_keeps_unit_gain():
    y = resample(torch.ones(4000, dtype=torch.float64), 44100, 16000)
    middle = y[200:-200]
    assert (middle - 1.0).abs().max() < 1e-3


def test_kaiser_beta_follows_kaiser_1974():
    assert kaiser_beta(80.0) == pytest.approx(0.1102 * (80.0 - 8.7))
    assert kaiser_beta(40.0) == pytest.approx(0.5842 * 19**0.4 + 0.07886 * 19)
    assert kaiser_beta(10.0) == 0.0
    signal = pytest.importorskip("scipy.signal")  # librosa depends on scipy
    for atten in [10.0, 21.0, 35.0, 50.0, 60.0, 80.0, 120.0]:
        assert kaiser_beta(atten) == pytest.approx(signal.kaiser_beta(atten))


def test_bad_arguments_are_refused():
    with pytest.raises(TypeError, match="float32 or float64"):
        resample(torch.zeros(10, dtype=torch.int16), 16000, 8000)
    with pytest.raises(TypeError, match="torch.Tensor"):
        resample(np.zeros(10), 16000, 8000)
    with pytest.raises(ValueError, match="orig_sr"):
        resample(torch.zeros(10), 0, 8000)
    with pytest.raises(ValueError, match="new_sr"):
        resample(torch.zeros(10), 16000, 8000.5)
    with pytest.raises(ValueError, match="rolloff"):
        resample(torch.zeros(10), 16000, 8000, rolloff=1.2)
