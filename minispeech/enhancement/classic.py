"""Classic single-channel speech enhancement: spectral subtraction and a Wiener filter.

Both work on the STFT of the noisy signal Y(k, l) = S(k, l) + D(k, l) (bin k, frame
l), keep the noisy phase, and need the noise PSD lambda_d(k, l) = E|D(k, l)|^2 from
minispeech/enhancement/noise_psd.py (minimum statistics or leading frames). A Hann
window at 75% overlap and the least-squares inverse STFT make the round trip exact,
so a gain of 1 returns the input.

1. Spectral subtraction. S. Boll, "Suppression of acoustic noise in speech using
   spectral subtraction", IEEE TASSP 27(2), 1979 (subtract the noise magnitude
   bias, keep the noisy phase, half-wave rectify), with the over-subtraction
   factor a and spectral floor b of M. Berouti, R. Schwartz, J. Makhoul,
   "Enhancement of speech corrupted by acoustic noise", ICASSP 1979:

       |S^(k, l)|^p = max(|Y|^p - a lambda_d^(p/2), b lambda_d^(p/2))

   p = 1 is Boll's magnitude subtraction, p = 2 Berouti's power subtraction.
   Differs from Boll: no magnitude averaging over frames, no residual-noise
   reduction and no extra attenuation of non-speech frames.

2. Wiener filter with the decision-directed a-priori SNR. Y. Ephraim, D. Malah,
   "Speech enhancement using a minimum mean-square error short-time spectral
   amplitude estimator", IEEE TASSP 32(6), 1984, Eq. 51-53:

       gamma(k, l) = |Y(k, l)|^2 / lambda_d(k, l)                 (a-posteriori SNR)
       xi(k, l) = alpha |A(k, l-1)|^2 / lambda_d(k, l-1)
                  + (1 - alpha) max(gamma(k, l) - 1, 0)           (a-priori SNR, Eq. 51)
       G(k, l) = max(xi / (1 + xi), G_min),  A(k, l) = G(k, l) |Y(k, l)|   (Wiener gain)

   Differs: the Wiener gain xi / (1 + xi) replaces the MMSE-STSA gain (the
   decision-directed estimator is the paper's, the gain rule is the simpler one),
   and the first frame uses xi = max(gamma - 1, 0) (no previous amplitude).
"""

import torch
from torch import Tensor

from minispeech.audio.stft import get_window, istft, stft
from minispeech.enhancement.noise_psd import noise_psd_leading, noise_psd_min_stats

NOISE_ESTIMATORS = ("min_stats", "leading")


def _check_wave(noisy: Tensor) -> Tensor:
    """(S,) or (B, S) -> (B, S)."""
    assert noisy.dim() in (1, 2), f"noisy must be (S,) or (B, S), got {noisy.shape}"
    assert noisy.is_floating_point(), f"noisy must be float, got {noisy.dtype}"
    return noisy.reshape(-1, noisy.shape[-1])  # (B, S)


def estimate_noise_psd(
    power: Tensor,
    noise: str,
    hop_s: float,
    causal: bool = False,
    leading_s: float = 0.25,
) -> Tensor:
    """lambda_d for `power` (B, F, T): (B, F, T) (min_stats) or (B, F, 1) (leading).

    causal=False lets minimum statistics warm up on the first window (offline).
    """
    if noise == "min_stats":
        return noise_psd_min_stats(power, hop_s, warm_start=not causal)  # (B, F, T)
    if noise == "leading":
        n_frames = max(1, round(leading_s / hop_s))  # 0.25 s / 8 ms = 31 frames
        return noise_psd_leading(power, n_frames)  # (B, F, 1)
    raise ValueError(f"unknown noise estimator {noise!r}; choose {NOISE_ESTIMATORS}")


def _enhance(noisy: Tensor, gain_fn, n_fft, hop, noise, causal, sample_rate):
    """STFT -> noise PSD -> gain_fn(power, noise_psd) -> gain x Y -> iSTFT, same
    shape and length as `noisy`."""
    wave = _check_wave(noisy)  # (B, S)
    window = get_window("hann", n_fft, dtype=wave.dtype).to(wave.device)
    spec = stft(wave, n_fft, hop, window=window)  # (B, F, T) complex
    power = spec.real**2 + spec.imag**2  # |Y|^2 (B, F, T)
    noise_psd = estimate_noise_psd(power, noise, hop / sample_rate, causal)
    gain = gain_fn(power, noise_psd.expand_as(power))  # (B, F, T)
    out = istft(spec * gain, n_fft, hop, window=window, length=wave.shape[-1])
    return out.reshape(noisy.shape)  # (S,) or (B, S)


def subtraction_gain(
    power: Tensor,
    noise_psd: Tensor,
    exponent: float = 2.0,
    over_subtraction: float = 5.0,
    floor: float = 0.01,
) -> Tensor:
    """Gain |S^| / |Y| of Boll/Berouti subtraction, (B, F, T) -> (B, F, T).

    |S^|^p = max(|Y|^p - a lambda_d^(p/2), b lambda_d^(p/2)), p = `exponent`.
    """
    magnitude_p = power ** (exponent / 2)  # |Y|^p
    noise_p = noise_psd ** (exponent / 2)  # lambda_d^(p/2)
    clean_p = torch.maximum(magnitude_p - over_subtraction * noise_p, floor * noise_p)
    return (clean_p / magnitude_p.clamp_min(1e-30)) ** (1 / exponent)


def spectral_subtraction(
    noisy: Tensor,
    sample_rate: int = 16000,
    n_fft: int = 512,
    hop: int = 128,
    noise: str = "min_stats",
    exponent: float = 2.0,
    over_subtraction: float = 5.0,
    floor: float = 0.01,
    causal: bool = False,
) -> Tensor:
    """Spectral subtraction (Boll 1979, Berouti 1979), (S,) or (B, S) -> same shape.

    exponent 1 subtracts magnitudes, 2 powers; over_subtraction is Berouti's alpha,
    floor his beta (the residual kept, as a fraction of the noise). 512/128 at
    16 kHz is a 32 ms window and an 8 ms hop.
    """

    def gain_fn(power, noise_psd):
        return subtraction_gain(power, noise_psd, exponent, over_subtraction, floor)

    return _enhance(noisy, gain_fn, n_fft, hop, noise, causal, sample_rate)


def decision_directed_gain(
    power: Tensor, noise_psd: Tensor, alpha_dd: float = 0.98, gain_floor: float = 0.1
) -> Tensor:
    """Wiener gain with the decision-directed a-priori SNR (Ephraim & Malah 1984,
    Eq. 51), (B, F, T) -> (B, F, T): a loop over frames, vectorized over B and F."""
    assert power.shape == noise_psd.shape, (power.shape, noise_psd.shape)
    noise_psd = noise_psd.clamp_min(1e-30)
    gamma = power / noise_psd  # a-posteriori SNR (B, F, T)
    ml_xi = (gamma - 1).clamp_min(0)  # max(gamma - 1, 0)
    gain = torch.empty_like(power)
    xi = ml_xi[..., 0]  # first frame: no previous amplitude (B, F)
    for frame in range(power.shape[-1]):
        if frame > 0:  # Eq. 51: |A(l-1)|^2 / lambda_d(l-1) = G^2(l-1) gamma(l-1)
            previous = gain[..., frame - 1] ** 2 * gamma[..., frame - 1]
            xi = alpha_dd * previous + (1 - alpha_dd) * ml_xi[..., frame]
        gain[..., frame] = (xi / (1 + xi)).clamp_min(gain_floor)  # Wiener gain
    return gain


def decision_directed_gain_reference(
    power: Tensor, noise_psd: Tensor, alpha_dd: float = 0.98, gain_floor: float = 0.1
) -> Tensor:
    """decision_directed_gain with plain Python floats, one bin and frame at a time.

    Slow; the readable statement of Eq. 51, kept to test the vectorized one.
    """
    n_batch, n_freq, n_frames = power.shape
    out = torch.empty(n_batch, n_freq, n_frames, dtype=torch.float64)
    for b in range(n_batch):
        for k in range(n_freq):
            amplitude_sq, previous_noise = 0.0, 1.0  # |A(k, -1)|^2, lambda_d(k, -1)
            for frame in range(n_frames):
                y2 = float(power[b, k, frame])
                lambda_d = max(float(noise_psd[b, k, frame]), 1e-30)
                ml_xi = max(y2 / lambda_d - 1, 0.0)
                if frame == 0:
                    xi = ml_xi
                else:
                    xi = alpha_dd * amplitude_sq / previous_noise
                    xi += (1 - alpha_dd) * ml_xi
                gain = max(xi / (1 + xi), gain_floor)
                amplitude_sq, previous_noise = gain * gain * y2, lambda_d
                out[b, k, frame] = gain
    return out.to(power.dtype)


def wiener_filter(
    noisy: Tensor,
    sample_rate: int = 16000,
    n_fft: int = 512,
    hop: int = 128,
    noise: str = "min_stats",
    alpha_dd: float = 0.98,
    gain_floor: float = 0.1,
    causal: bool = False,
) -> Tensor:
    """Decision-directed Wiener filter (Ephraim & Malah 1984, Eq. 51-53),
    (S,) or (B, S) -> same shape and length.

    alpha_dd: the decision-directed weight alpha; gain_floor: G_min (0.1 = -20 dB).
    """

    def gain_fn(power, noise_psd):
        return decision_directed_gain(power, noise_psd, alpha_dd, gain_floor)

    return _enhance(noisy, gain_fn, n_fft, hop, noise, causal, sample_rate)
