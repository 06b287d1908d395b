"""Noise at an exact SNR; white and pink spectra."""

import numpy as np

from minispeech.audio.noise import pink_noise, scale_to_snr, snr_db, white_noise


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
