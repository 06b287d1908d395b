"""Noise power spectral density (PSD) estimates from a noisy power spectrogram.

Two estimators of lambda_d(k, l), the noise PSD in bin k and frame l:

1. Leading frames: the first ~0.25 s is assumed noise-only and its periodograms are
   averaged, lambda_d(k) = mean_{l < n} |Y(k, l)|^2, the noise-only estimate of
   Boll 1979 (see classic.py) for a signal that starts before the speech does.
2. Minimum statistics: R. Martin, "Noise power spectral density estimation based on
   optimal smoothing and minimum statistics", IEEE TSAP 9(5), 2001. No voice
   activity detector: the noisy PSD is smoothed recursively and the noise PSD is the
   minimum of that smoothed PSD over a ~1.5 s window, times a bias correction:

       alpha(l) = alpha_max alpha_c(l) / (1 + (P(l-1) / lambda_d(l-1) - 1)^2)
       alpha_c(l) = 0.7 alpha_c(l-1) + 0.3 max(1 / (1 + (sum P / sum |Y|^2 - 1)^2), 0.7)
       P(l) = alpha(l) P(l-1) + (1 - alpha(l)) |Y(l)|^2            (optimal smoothing)
       1/Q_eq(l) = var{P(l)} / (2 lambda_d(l-1)^2)   (equivalent degrees of freedom)
       B_min(D, Q_eq) = 1 + (D - 1) 2 / Q~_eq,  Q~_eq = (Q_eq - 2 M(D)) / (1 - M(D))
       B_c(l) = 1 + 2.12 sqrt(mean_k 1/Q_eq(k, l))
       lambda_d(l) = min over the last D frames of B_c B_min P       (minimum tracking)

   var{P} comes from first and second moments of P smoothed with beta = min(alpha^2,
   0.8), and M(D) from the paper's table of the mean of a minimum of D chi-square
   variates (interpolated linearly here). The minimum over D = U V frames is tracked
   with U sub-windows of V frames: each finished sub-window pushes its minimum into a
   ring of U values, so only U + 1 values are kept per bin.

   When a sub-window held a local minimum less than noise_slope_max (1.2 to 8, from
   mean 1/Q_eq) times the window minimum, the whole ring jumps to it, so a slowly
   rising noise floor is followed within a sub-window; a bigger step up (10 dB) is
   followed after one window, D + V frames (~1.7 s).

   Simplified from the paper: alpha_min is fixed (no long-term SNR); M(D) is linear
   between table entries and held at 0.91 for D > 160 frames; the first frame
   starts with 1/Q_eq = 1/2 (one periodogram). Added (offline, optional): a warm
   start over the first window played backwards. The recursion is a Python loop over
   frames, vectorized over batch and bins. Window lengths are in seconds; alpha_max
   and alpha_min are per frame, the paper's values, used here at an 8 ms hop.
"""

import math

import numpy as np
import torch
from torch import Tensor

# Martin 2001, table of M(D): D frames -> M(D) for the bias of the minimum.
_TABLE_D = (1, 2, 5, 8, 10, 15, 20, 30, 40, 60, 80, 120, 140, 160)
_TABLE_M = (0, 0.26, 0.48, 0.58, 0.61, 0.668, 0.705, 0.762, 0.8, 0.841, 0.865, 0.89)
_TABLE_M = _TABLE_M + (0.9, 0.91)


def _check_power(power: Tensor) -> None:
    assert power.dim() >= 2, f"power must be (..., F, T), got {tuple(power.shape)}"
    assert not power.is_complex(), "power must be real |Y|^2, not complex"


def noise_psd_leading(power: Tensor, n_frames: int = 31) -> Tensor:
    """Mean periodogram of the first `n_frames` frames, (..., F, T) -> (..., F, 1).

    The default 31 frames is 0.25 s at a hop of 128 samples at 16 kHz (31 x 8 ms).
    """
    _check_power(power)
    n = max(1, min(n_frames, power.shape[-1]))
    return power[..., :n].mean(dim=-1, keepdim=True)  # (..., F, 1)


def mean_of_minimum(d: int) -> float:
    """M(D) of Martin 2001's table, linear in D between entries, held beyond 160."""
    return float(np.interp(d, _TABLE_D, _TABLE_M))


def _smoothing_factor(p, noise, frame, alpha_c, alpha_max, alpha_min):
    """Optimal smoothing parameter alpha(l) (N, F) and the updated correction
    alpha_c (N, 1), from P(l-1), lambda_d(l-1) and |Y(l)|^2."""
    ratio = p.sum(-1, keepdim=True) / frame.sum(-1, keepdim=True).clamp_min(1e-30)
    alpha_c_tilde = 1 / (1 + (ratio - 1) ** 2)  # (N, 1)
    alpha_c = 0.7 * alpha_c + 0.3 * alpha_c_tilde.clamp_min(0.7)
    alpha = alpha_max * alpha_c / (1 + (p / noise - 1) ** 2)  # (N, F)
    return alpha.clamp_min(alpha_min), alpha_c


def _bias_factors(inv_q, d, v):
    """B_c B_min(D) and B_c B_min(V) (N, F) from 1/Q_eq (N, F)."""
    m_d, m_v = mean_of_minimum(d), mean_of_minimum(v)
    q_tilde_d = (1 / inv_q - 2 * m_d) / (1 - m_d)  # Q~_eq for the window
    q_tilde_v = (1 / inv_q - 2 * m_v) / (1 - m_v)  # and for a sub-window
    b_min = 1 + (d - 1) * 2 / q_tilde_d
    b_min_sub = 1 + (v - 1) * 2 / q_tilde_v
    b_c = 1 + 2.12 * inv_q.mean(-1, keepdim=True).sqrt()  # (N, 1)
    return b_c * b_min, b_c * b_min_sub


def _noise_slope_max(inv_q_mean: Tensor) -> Tensor:
    """How far above the window minimum a local minimum may be and still be trusted
    as noise: 8, 4, 2 or 1.2 as mean 1/Q_eq grows past 0.03, 0.05, 0.06."""
    slope = torch.full_like(inv_q_mean, 1.2)
    for limit, value in ((0.06, 2.0), (0.05, 4.0), (0.03, 8.0)):
        slope = torch.where(inv_q_mean < limit, value, slope)
    return slope


def _follow_rising_noise(ring, act_min_sub, local_min, slope) -> None:
    """Martin's fast tracking of a rising noise floor, in place on ring (U, N, F):
    where the sub-window had a local minimum between the window minimum and
    slope times it, the whole ring is set to that minimum."""
    window_min = ring.min(0).values  # (N, F)
    rise = local_min & (act_min_sub > window_min) & (act_min_sub < slope * window_min)
    ring.copy_(torch.where(rise, act_min_sub, ring))


def noise_psd_min_stats(
    power: Tensor,
    hop_s: float,
    window_s: float = 1.536,
    n_sub_windows: int = 8,
    alpha_max: float = 0.96,
    alpha_min: float = 0.3,
    beta_max: float = 0.8,
    warm_start: bool = False,
) -> Tensor:
    """Noise PSD by minimum statistics (Martin 2001), (..., F, T) -> (..., F, T).

    power: |Y(k, l)|^2 of the noisy STFT; hop_s: the frame hop in seconds. The
    minimum is searched over window_s seconds split in n_sub_windows sub-windows
    (the paper's D = U V; 1.536 s = 8 sub-windows of 0.192 s). Causal: frame l
    sees frames <= l only, so the first window's estimate is the minimum so far.
    warm_start (offline, not in the paper): first run the recursion over the first
    window played backwards, so that frame 0 starts from a full minimum search;
    this matters for short utterances that start with speech.
    """
    _check_power(power)
    *lead, n_freq, n_frames = power.shape
    y2 = power.reshape(-1, n_freq, n_frames).to(torch.float64)  # (N, F, T)
    v = max(1, round(window_s / hop_s / n_sub_windows))  # V frames per sub-window
    n_warm = min(n_frames, n_sub_windows * v) if warm_start else 0  # D frames or 0
    y2 = torch.cat([y2[..., :n_warm].flip(-1), y2], dim=-1)  # (N, F, n_warm + T)
    noise = _track_minimum(y2, v, n_sub_windows, alpha_max, alpha_min, beta_max)
    noise = noise[..., n_warm:]  # (N, F, T)
    return noise.reshape(*lead, n_freq, n_frames).to(power.dtype)


def _track_minimum(y2, v, n_sub_windows, alpha_max, alpha_min, beta_max) -> Tensor:
    """The recursion of noise_psd_min_stats over the frames of y2 (N, F, T)."""
    d = n_sub_windows * v  # D frames in the search window
    # 1) state: P, lambda_d, moments of P, minima (inf = not seen yet)
    p = noise = y2[..., 0].clamp_min(1e-30)  # (N, F)
    p_bar, p_sq_bar = p, 2 * p**2  # var = p^2: one periodogram, 1/Q_eq = 1/2
    alpha_c = torch.ones_like(p[:, :1])  # (N, 1)
    ring = p.new_full((n_sub_windows, *p.shape), math.inf)  # (U, N, F)
    act_min = act_min_sub = torch.full_like(p, math.inf)
    local_min = torch.zeros_like(p, dtype=torch.bool)  # a minimum inside the sub-window
    out = torch.empty_like(y2)
    for frame_index in range(y2.shape[-1]):
        frame = y2[..., frame_index]  # (N, F)
        # 2) optimally smoothed periodogram P(l)
        alpha, alpha_c = _smoothing_factor(
            p, noise, frame, alpha_c, alpha_max, alpha_min
        )
        p = alpha * p + (1 - alpha) * frame
        # 3) variance of P -> 1/Q_eq -> bias factors
        beta = (alpha**2).clamp_max(beta_max)
        p_bar = beta * p_bar + (1 - beta) * p
        p_sq_bar = beta * p_sq_bar + (1 - beta) * p**2
        inv_q = ((p_sq_bar - p_bar**2) / (2 * noise**2)).clamp(1e-6, 0.5)
        bias, bias_sub = _bias_factors(inv_q, d, v)
        # 4) minimum of the current sub-window
        smaller = p * bias < act_min
        act_min = torch.where(smaller, p * bias, act_min)
        act_min_sub = torch.where(smaller, p * bias_sub, act_min_sub)
        position = frame_index % v  # frame within its sub-window
        if position < v - 1:
            local_min |= smaller & (position > 0)
        else:  # 5) the sub-window ends: push it into the ring of U minima
            ring[frame_index // v % n_sub_windows] = act_min
            slope = _noise_slope_max(inv_q.mean(-1, keepdim=True))  # (N, 1)
            _follow_rising_noise(ring, act_min_sub, local_min & ~smaller, slope)
            act_min = torch.full_like(p, math.inf)
            local_min = torch.zeros_like(local_min)
        noise = torch.minimum(ring.min(0).values, act_min_sub).clamp_min(1e-30)
        out[..., frame_index] = noise
    return out
