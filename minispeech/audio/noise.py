"""Noise for augmentation and test sets, and scaling it to an exact SNR.

SNR = 10 log10(sum clean^2 / sum noise^2) in dB; the noise is scaled by
sqrt(P_clean / (P_noise 10^(SNR/10))). The kinds (NOISE_KINDS; `make_noise` returns
any of them at exactly unit power, (S,) float32, drawn from an np.random.Generator):

- white: Gaussian, flat spectrum.
- pink: power spectral density ~ 1/f (-3 dB/octave) by FFT shaping: the Fourier
  coefficients of white Gaussian noise are multiplied by f^(-1/2), the method of
  J. Timmer and M. Koenig, "On generating power law noise", A&A 300:707 (1995),
  with beta = 1.
- brown: PSD ~ 1/f^2 (-6 dB/octave), integrated white noise. A pure integrator's
  power grows without bound (a random walk), so the integrator leaks: the RC
  integrator H(f) = 1 / (1 + j f / f_c), |H|^2 ~ (f_c / f)^2 above the corner f_c and
  flat below it; the DC bin is removed. Applied in the frequency domain (circular, so
  the noise is stationary from its first sample). Differs from the recursion
  y[t] = a y[t-1] + w[t]: its |H|^2 = 1 / (1 - 2a cos w + a^2) falls ~1 dB/octave
  short of -6 dB near the Nyquist frequency; the analog response keeps the slope.
- babble: the sum of other utterances, each at equal power.
- modulated: white or pink noise times a slow gain curve at 0.5-4 Hz, a sinusoid or a
  smooth random curve (traffic passing, a fan speeding up).
- bursts: white or pink noise switched on and off: bursts of 50-400 ms separated by
  gaps of 50-400 ms (a 50% duty cycle on average; hard switching, clicks included).
- hum: mains hum, a 50 or 60 Hz fundamental and its harmonics with amplitudes
  ~ 1/k (k the harmonic number, a random factor in [0.5, 1] each) and random phases,
  plus white noise 30 dB below it.

white_noise, pink_noise and babble_noise keep the scale they always had (unit variance
in expectation; babble ~ the number of utterances), so the bundled corpus's samples
(minispeech/data/corpus_far.py) do not change; `make_noise` normalizes every kind.
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


NOISE_KINDS = ("white", "pink", "brown", "babble", "modulated", "bursts", "hum")


def _unit_power(x: np.ndarray) -> np.ndarray:
    """x / sqrt(mean x^2), float32 (S,)."""
    x = np.asarray(x, dtype=np.float64)
    return (x / np.sqrt(_power(x) + 1e-30)).astype(np.float32)


def _base_noise(n: int, rng: np.random.Generator, base: str | None) -> np.ndarray:
    """White or pink noise (drawn when `base` is None), (S,)."""
    base = ("white", "pink")[int(rng.integers(2))] if base is None else base
    if base not in ("white", "pink"):
        raise ValueError(f"base noise {base!r}: use white or pink")
    return white_noise(n, rng) if base == "white" else pink_noise(n, rng)


def brown_noise(
    n: int, rng: np.random.Generator, sample_rate: int = 16000, corner_hz=10.0
) -> np.ndarray:
    """1/f^2 noise: white noise through the leaky integrator 1 / (1 + j f / f_c),
    f_c = `corner_hz`; no DC; unit power, (S,)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))  # (S/2+1,)
    freqs = np.fft.rfftfreq(n, d=1.0 / sample_rate)  # (S/2+1,) Hz
    spectrum /= 1.0 + 1j * freqs / corner_hz  # |H|^2 ~ (f_c / f)^2 above f_c
    spectrum[0] = 0.0  # DC removal
    return _unit_power(np.fft.irfft(spectrum, n=n))


def envelope(
    n: int,
    rng: np.random.Generator,
    sample_rate: int = 16000,
    shape: str | None = None,
    rate_hz: float | None = None,
    floor: float = 0.1,
) -> np.ndarray:
    """A slow gain curve in [floor, 1], (S,): a sinusoid at `rate_hz`, or ("random")
    a uniform random value every 1 / rate_hz s joined by raised-cosine steps. The
    shape (sine or random) and rate (0.5-4 Hz) are drawn when None."""
    shape = ("sine", "random")[int(rng.integers(2))] if shape is None else shape
    rate = rng.uniform(0.5, 4.0) if rate_hz is None else rate_hz
    position = np.arange(n) * rate / sample_rate  # (S,) in periods of the curve
    if shape == "sine":
        phase = rng.uniform(0.0, 2.0 * np.pi)
        gain = 0.5 + 0.5 * np.sin(2.0 * np.pi * position + phase)  # (S,) in [0, 1]
    elif shape == "random":
        points = rng.uniform(0.0, 1.0, int(position[-1]) + 2)  # one per period
        k = position.astype(np.int64)  # (S,) the point before each sample
        step = 0.5 - 0.5 * np.cos(np.pi * (position - k))  # 0 -> 1, smooth
        gain = points[k] * (1.0 - step) + points[k + 1] * step  # (S,) in [0, 1]
    else:
        raise ValueError(f"envelope shape {shape!r}: use sine or random")
    return floor + (1.0 - floor) * gain


def modulated_noise(
    n: int,
    rng: np.random.Generator,
    sample_rate: int = 16000,
    base: str | None = None,
    shape: str | None = None,
    rate_hz: float | None = None,
) -> np.ndarray:
    """White or pink noise times `envelope` (0.5-4 Hz); unit power, (S,)."""
    noise = _base_noise(n, rng, base)
    return _unit_power(noise * envelope(n, rng, sample_rate, shape, rate_hz))


def burst_mask(
    n: int,
    rng: np.random.Generator,
    sample_rate: int = 16000,
    burst_ms=(50.0, 400.0),
    gap_ms=(50.0, 400.0),
) -> np.ndarray:
    """On/off pattern, bool (S,): a gap of 0 to max(gap_ms) first (the clip starts
    anywhere in the cycle), then bursts and gaps with uniform random lengths; at
    least one burst even in a clip shorter than the first gap."""
    mask = np.zeros(n, dtype=bool)
    t = int(rng.uniform(0.0, gap_ms[1]) * sample_rate / 1000)
    t = t if t < n else 0
    while t < n:
        burst = max(1, int(rng.uniform(*burst_ms) * sample_rate / 1000))
        mask[t : t + burst] = True
        t += burst + int(rng.uniform(*gap_ms) * sample_rate / 1000)
    return mask


def burst_noise(
    n: int,
    rng: np.random.Generator,
    sample_rate: int = 16000,
    burst_ms=(50.0, 400.0),
    gap_ms=(50.0, 400.0),
    base: str | None = None,
) -> np.ndarray:
    """White or pink noise during the bursts of `burst_mask`, exact zeros between;
    unit power over the whole clip, (S,)."""
    mask = burst_mask(n, rng, sample_rate, burst_ms, gap_ms)
    return _unit_power(_base_noise(n, rng, base) * mask)


def hum_noise(
    n: int,
    rng: np.random.Generator,
    sample_rate: int = 16000,
    fundamental_hz: float | None = None,
    n_harmonics: int = 10,
    noise_db: float = -30.0,
) -> np.ndarray:
    """Mains hum: sum_k a_k sin(2 pi k f0 t + phi_k) for k = 1..n_harmonics below
    the Nyquist frequency, a_k = u_k / k with u_k ~ U(0.5, 1), phi_k ~ U(0, 2 pi),
    f0 50 or 60 Hz (drawn when None), plus white noise `noise_db` below; unit
    power, (S,)."""
    f0 = fundamental_hz or (50.0, 60.0)[int(rng.integers(2))]
    t = np.arange(n) / sample_rate  # (S,) seconds
    hum = np.zeros(n)
    for k in range(1, n_harmonics + 1):
        if k * f0 >= sample_rate / 2:
            break
        amplitude = rng.uniform(0.5, 1.0) / k
        hum += amplitude * np.sin(2.0 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi))
    hiss = 10.0 ** (noise_db / 20.0) * white_noise(n, rng)
    return _unit_power(_unit_power(hum) + hiss)


def make_noise(
    kind: str,
    n: int,
    rng: np.random.Generator,
    sample_rate: int = 16000,
    waves=(),
) -> np.ndarray:
    """Noise of any of NOISE_KINDS at exactly unit power, (S,) float32; babble sums
    `waves` (other utterances, each (S_i,))."""
    if kind == "babble":
        if len(waves) == 0:
            raise ValueError("babble noise needs other utterances (waves)")
        return _unit_power(babble_noise(list(waves), n, rng))
    makers = {
        "white": lambda: white_noise(n, rng),
        "pink": lambda: pink_noise(n, rng),
        "brown": lambda: brown_noise(n, rng, sample_rate),
        "modulated": lambda: modulated_noise(n, rng, sample_rate),
        "bursts": lambda: burst_noise(n, rng, sample_rate),
        "hum": lambda: hum_noise(n, rng, sample_rate),
    }
    if kind not in makers:
        raise ValueError(f"noise kind {kind!r}: use one of {', '.join(NOISE_KINDS)}")
    return _unit_power(makers[kind]())
