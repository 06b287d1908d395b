"""Noise at an exact SNR; the spectra, power, envelopes, bursts and hum of every
kind of noise."""

import numpy as np
import pytest

from minispeech.audio.noise import (
    NOISE_KINDS,
    brown_noise,
    burst_mask,
    burst_noise,
    envelope,
    hum_noise,
    make_noise,
    modulated_noise,
    pink_noise,
    scale_to_snr,
    snr_db,
    white_noise,
)


def _snr_reference(clean, noise) -> float:
    """The textbook definition, as a float64 loop."""
    p_clean = sum(float(c) ** 2 for c in clean) / len(clean)
    p_noise = sum(float(n) ** 2 for n in noise) / len(noise)
    return 10.0 * np.log10(p_clean / p_noise)


def test_scale_to_snr_hits_target():
    rng = np.random.default_rng(0)
    clean = rng.standard_normal(4000).astype(np.float32)
    for target in (-5.0, 0.0, 7.3, 20.0):
        noise = scale_to_snr(clean, 3.0 * white_noise(4000, rng), target)
        assert abs(_snr_reference(clean, noise) - target) < 1e-3
        assert abs(snr_db(clean, noise) - target) < 1e-3


def test_pink_noise_spectrum_falls_by_3db_per_octave():
    rng = np.random.default_rng(1)
    x = pink_noise(2**16, rng)
    power = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x))
    slope = np.polyfit(np.log10(freqs[10:]), np.log10(power[10:]), 1)[0]
    assert abs(slope + 1.0) < 0.05  # power ~ f^-1
    white = np.abs(np.fft.rfft(white_noise(2**16, rng))) ** 2
    assert abs(np.polyfit(np.log10(freqs[10:]), np.log10(white[10:]), 1)[0]) < 0.05


# ---------------------------------------------------------------- every kind
SR = 16000


def _welch(x: np.ndarray, n_fft: int = 4096):
    """Welch's average of Hann-windowed periodograms, half-overlapping frames ->
    (freqs in Hz, power)."""
    window = np.hanning(n_fft)
    starts = range(0, len(x) - n_fft + 1, n_fft // 2)
    frames = np.stack([x[s : s + n_fft] * window for s in starts])  # (T, n_fft)
    power = (np.abs(np.fft.rfft(frames, axis=1)) ** 2).mean(axis=0)  # (F,)
    return np.fft.rfftfreq(n_fft, 1 / SR), power


def _slope_db_per_octave(x: np.ndarray, lo: float = 100.0, hi: float = 4000.0):
    """The least-squares slope of 10 log10 power against log2 frequency."""
    freqs, power = _welch(x)
    band = (freqs >= lo) & (freqs <= hi)
    return np.polyfit(np.log2(freqs[band]), 10 * np.log10(power[band]), 1)[0]


def test_welch_slopes_white_pink_brown():
    rng = np.random.default_rng(2)
    # measured (seed 2, 10 s, 100-4000 Hz): white -0.01, pink -3.01, brown -6.02
    # dB/octave (brown -6.02 also over 50-1000 and 1000-7000 Hz)
    assert abs(_slope_db_per_octave(white_noise(10 * SR, rng))) < 0.2
    assert abs(_slope_db_per_octave(pink_noise(10 * SR, rng)) + 3.01) < 0.2
    for lo, hi in ((50, 1000), (100, 4000), (1000, 7000)):
        slope = _slope_db_per_octave(brown_noise(10 * SR, rng, SR), lo, hi)
        assert abs(slope + 6.02) < 0.3, (lo, hi, slope)
    # below the 10 Hz corner of the leak the spectrum is flat, and there is no DC
    brown = brown_noise(2**16, rng, SR)
    assert abs(float(np.mean(brown))) < 1e-6


def test_every_kind_unit_power_exact_snr_and_seeded():
    rng = np.random.default_rng(3)
    waves = [rng.standard_normal(5000), rng.standard_normal(7000)]  # "utterances"
    clean = (0.1 * rng.standard_normal(12000)).astype(np.float32)
    for kind in NOISE_KINDS:
        noise = make_noise(kind, 12000, np.random.default_rng(7), SR, waves)
        assert noise.dtype == np.float32 and noise.shape == (12000,), kind
        assert abs(float(np.mean(noise.astype(np.float64) ** 2)) - 1.0) < 1e-5, kind
        again = make_noise(kind, 12000, np.random.default_rng(7), SR, waves)
        other = make_noise(kind, 12000, np.random.default_rng(8), SR, waves)
        assert np.array_equal(noise, again) and not np.array_equal(noise, other), kind
        for target in (-5.0, 0.0, 12.5):
            scaled = scale_to_snr(clean, noise, target)
            assert abs(_snr_reference(clean, scaled) - target) < 1e-3, (kind, target)


def test_make_noise_refuses_unknown_kind_and_babble_without_waves():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="red"):
        make_noise("red", 100, rng)
    with pytest.raises(ValueError, match="babble"):
        make_noise("babble", 100, rng)


def test_bursts_duty_cycle_and_lengths():
    x = burst_noise(60 * SR, np.random.default_rng(4), SR)
    on = x != 0
    edges = np.flatnonzero(np.diff(on.astype(np.int8))) + 1  # run boundaries
    runs = np.split(on, edges)[1:-1]  # interior runs: whole bursts and gaps
    burst_ms = [1000 * len(r) / SR for r in runs if r[0]]
    gap_ms = [1000 * len(r) / SR for r in runs if not r[0]]
    assert min(burst_ms) >= 50 - 0.1 and max(burst_ms) <= 400, burst_ms
    assert min(gap_ms) >= 50 - 0.1 and max(gap_ms) <= 400, gap_ms
    # measured (seed 4, 60 s): duty 0.500 with uniform 50-400 ms bursts and gaps
    assert abs(on.mean() - 0.5) < 0.05
    assert abs(np.mean(x.astype(np.float64) ** 2) - 1.0) < 1e-5
    # a clip shorter than the first gap still gets a burst
    assert (burst_mask(80, np.random.default_rng(0), SR)).any()


def test_hum_peaks_at_harmonics_of_50_or_60_hz():
    fundamentals = set()
    for seed in range(6):
        x = hum_noise(SR, np.random.default_rng(seed), SR)  # 1 s: 1 Hz bins
        power = np.abs(np.fft.rfft(x)) ** 2  # (F,)
        f0 = 50 if power[50] > power[60] else 60
        fundamentals.add(f0)
        harmonics = [k * f0 for k in range(1, 11)]
        assert sorted(np.argsort(power)[-10:]) == harmonics, seed
        # every harmonic stands >= 40 dB above the median bin (seed 0: 49-68 dB)
        floor = np.median(power)
        assert all(10 * np.log10(power[h] / floor) > 40 for h in harmonics), seed
        # amplitudes fall as ~1/k (a factor in [0.5, 1] each): 10th below 1st
        assert power[10 * f0] < power[f0]
    assert fundamentals == {50, 60}
    x = hum_noise(SR, np.random.default_rng(0), SR, fundamental_hz=60.0)
    assert np.argmax(np.abs(np.fft.rfft(x))) == 60


def test_modulated_noise_follows_a_slow_envelope():
    rng = np.random.default_rng(5)
    x = modulated_noise(8 * SR, rng, SR, shape="sine", rate_hz=2.0)
    frame_power = (x.astype(np.float64) ** 2).reshape(-1, 160).mean(axis=1)  # 100/s
    spectrum = np.abs(np.fft.rfft(frame_power - frame_power.mean()))
    rates = np.fft.rfftfreq(len(frame_power), 1 / 100)
    assert rates[np.argmax(spectrum)] == 2.0
    for shape in ("sine", "random"):
        for seed in range(4):
            gain = envelope(4 * SR, np.random.default_rng(seed), SR, shape)
            assert gain.min() >= 0.1 - 1e-9 and gain.max() <= 1.0 + 1e-9
            assert gain.max() - gain.min() > 0.2, (shape, seed)  # it moves
            # slow: at most 4 Hz, so at most 0.9 * 2 pi 4 / SR per sample
            assert np.abs(np.diff(gain)).max() < 0.9 * 2 * np.pi * 4 / SR + 1e-9
