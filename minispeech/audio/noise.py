"""Noise for augmentation and test sets, and scaling it to an exact SNR.

SNR = 10 log10(sum clean^2 / sum noise^2) in dB; the noise is scaled by
sqrt(P_clean / (P_noise 10^(SNR/10))). White noise is Gaussian; pink noise (power
spectral density ~ 1/f) is made by FFT shaping: the Fourier coefficients of white
Gaussian noise are multiplied by f^(-1/2), the method of J. Timmer and M. Koenig, "On
generating power law noise", A&A 300:707 (1995), with beta = 1. Babble is the sum of
other utterances, each at equal power.
"""

import numpy as np


def _power(x: np.ndarray) -> float:
    return float(np.mean(np.asarray(x, dtype=np.float64) ** 2))


def snr_db(clean: np.ndarray, noise: np.ndarray) -> float:
    """10 log10(P_clean / P_noise) in dB."""
    return 10.0 * np.log10(_power(clean) / _power(noise))


def scale_to_snr(clean: np.ndarray, noise: np.ndarray, target_db: float) -> np.ndarray:
    """`noise` rescaled so that snr_db(clean, result) == target_db."""
    if _power(noise) == 0.0:
        raise ValueError("cannot scale silent noise to an SNR")
    gain = np.sqrt(_power(clean) / (_power(noise) * 10.0 ** (target_db / 10.0)))
    return (np.asarray(noise, dtype=np.float64) * gain).astype(np.float32)


def white_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian white noise, unit variance, (S,)."""
    return rng.standard_normal(n).astype(np.float32)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """1/f noise by FFT shaping (Timmer & Koenig 1995, beta = 1), unit power, (S,)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))  # (S/2+1,)
    freqs = np.fft.rfftfreq(n)
    freqs[0] = freqs[1] if n > 1 else 1.0  # no infinite DC gain
    pink = np.fft.irfft(spectrum / np.sqrt(freqs), n=n)  # power ~ 1/f
    return (pink / pink.std()).astype(np.float32)


def babble_noise(waves: list, n: int, rng: np.random.Generator) -> np.ndarray:
    """Sum of `waves`, each looped to n samples from a random offset and set to unit
    power, (S,)."""
    total = np.zeros(n, dtype=np.float64)
    for wave in waves:
        start = int(rng.integers(len(wave)))
        looped = np.resize(np.roll(wave, -start), n)
        total += looped / np.sqrt(_power(looped) + 1e-20)
    return total.astype(np.float32)
