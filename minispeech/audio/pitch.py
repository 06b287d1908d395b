"""Fundamental frequency (F0) by YIN, one value per frame, and per-speaker pitch stats.

de Cheveigné & Kawahara 2002, "YIN, a fundamental frequency estimator for speech and
music", JASA 111(4). For a frame x_1..x_{W+tau_max+1} (frame_length samples):
  1) difference function, Eq. 6:  d(tau) = sum_{j=1}^{W} (x_j - x_{j+tau})^2,
     computed through Eq. 7, d(tau) = r(0) + r_tau(0) - 2 r(tau), with the
     correlation r(tau) (Eq. 1) from one FFT per frame and the energies r(0),
     r_tau(0) from a cumulative sum of x^2;
  2) cumulative mean normalized difference, Eq. 8:
     d'(0) = 1,  d'(tau) = d(tau) / [(1/tau) sum_{j=1}^{tau} d(j)];
  3) absolute threshold (step 4): the smallest tau in [sr/fmax, sr/fmin] with
     d'(tau) < threshold, moved on to the bottom of that dip;
  4) parabolic interpolation (step 5) of d around that tau: the period in samples.
F0 = sample_rate / period. Frames are those of torch.stft(center=True) with zero
padding, so T = S // hop_length + 1 lines up with a mel spectrogram of the same hop.

Differences from the paper:
- Voicing: a frame with no dip below the threshold is unvoiced (F0 = 0), where the
  paper takes the global minimum instead; a frame whose energy is zero (d = 0, so
  Eq. 8 is 0/0) is unvoiced as well. No energy rule: white noise (at any level) has
  d' near 1 and comes out unvoiced by the threshold alone. With the paper's 0.1,
  46% of the TTS voice's frames are voiced (53% at 0.15, 59% at 0.2).
- W defaults to the longest period searched, tau_max = ceil(sr / fmin) (the
  default of the first author's own short implementation): the W + tau_max + 1
  samples read sit in the middle of each frame, and the rest of the frame is unused.
  On the corpus' espeak-ng voices a shorter W finds more voiced frames (their pitch
  moves within a long window): the four far speakers at -p <= 15 are 2-32% voiced
  with W = 776 (the whole 1024-sample frame at 16 kHz), 20-49% with W = 248.
- Step 6 (best local estimate) is not implemented; an optional median filter over
  the voiced frames (`median_width`) removes isolated octave errors instead.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor


def lag_range(
    sample_rate: int, fmin: float, fmax: float, frame_length: int, win_length=None
) -> tuple[int, int, int]:
    """-> (tau_min, tau_max, W): the lags searched and the integration window W."""
    assert 0 < fmin < fmax < sample_rate / 2, f"need 0 < fmin < fmax < sr/2: {fmin=}"
    tau_min = max(1, int(sample_rate / fmax))  # shortest period, in samples
    tau_max = math.ceil(sample_rate / fmin)  # longest period, in samples
    window = tau_max if win_length is None else win_length  # W
    assert window + tau_max + 1 <= frame_length, (
        f"frame_length={frame_length} too short for W={window} and fmin={fmin} Hz "
        f"at {sample_rate} Hz: need >= {window + tau_max + 1} samples"
    )
    return tau_min, tau_max, window


def frame_signal(
    wave: Tensor, frame_length: int, hop_length: int, center: bool = True
) -> Tensor:
    """(S,) -> (T, frame_length); centred frames are zero padded like torch.stft."""
    if center:
        pad = frame_length // 2
        wave = torch.nn.functional.pad(wave, (pad, pad))  # (S + 2 pad,)
    assert wave.numel() >= frame_length, (
        f"{wave.numel()} samples, shorter than one frame of {frame_length}"
    )
    return wave.unfold(0, frame_length, hop_length)  # (T, frame_length)


def difference_function(frames: Tensor, window: int, n_lags: int) -> Tensor:
    """Eq. 6 through Eq. 7: (T, N) frames -> d (T, n_lags) for lags 0..n_lags-1.

    Needs window + n_lags - 1 <= N, so a circular correlation of size >= N wraps
    nothing into the lags kept.
    """
    n_samples = frames.shape[-1]
    assert window + n_lags - 1 <= n_samples, (window, n_lags, n_samples)
    n_fft = 1 << (n_samples - 1).bit_length()  # a power of 2 >= N: fast, no wrap
    spectrum = torch.fft.rfft(frames, n=n_fft)  # (T, n_fft//2+1)
    head = torch.fft.rfft(frames[:, :window], n=n_fft)  # (T, n_fft//2+1)
    # r(tau) = sum_{j<W} x_j x_{j+tau}, Eq. 1, as a cross-correlation
    corr = torch.fft.irfft(spectrum * head.conj(), n=n_fft)[:, :n_lags]  # (T, L)
    energy = torch.cumsum(frames**2, dim=-1)  # (T, N)
    energy = torch.nn.functional.pad(energy, (1, 0))  # (T, N+1), energy[k] = sum_{j<k}
    lags = torch.arange(n_lags, device=frames.device)
    r_shift = energy[:, lags + window] - energy[:, lags]  # r_tau(0): (T, L)
    d = energy[:, window : window + 1] + r_shift - 2 * corr  # (T, L)
    return d.clamp_min(0.0)  # rounding can make d(tau) slightly negative


def cumulative_mean_normalized_difference(d: Tensor) -> Tensor:
    """Eq. 8: d (T, L) -> d' (T, L); d'(0) = 1, and 1 where the mean is 0 (silence)."""
    lags = torch.arange(1, d.shape[-1], device=d.device, dtype=d.dtype)  # tau = 1..L-1
    mean = torch.cumsum(d[:, 1:], dim=-1) / lags  # (1/tau) sum_{j=1}^{tau} d(j)
    ratio = torch.where(mean > 0, d[:, 1:] / mean.clamp_min(1e-300), 1.0)  # (T, L-1)
    return torch.nn.functional.pad(ratio, (1, 0), value=1.0)  # (T, L)


def _select_lag(cmnd: Tensor, tau_min: int, tau_max: int, threshold: float):
    """Step 4: bottom of the first dip below threshold -> (tau (T,), voiced (T,))."""
    search = cmnd[:, tau_min : tau_max + 1]  # (T, K)
    after = torch.nn.functional.pad(search[:, 1:], (0, 1), value=math.inf)  # (T, K)
    # first lag below threshold whose next value does not go lower: the dip's bottom
    candidate = (search < threshold) & (after >= search)  # (T, K)
    voiced = candidate.any(dim=-1)  # (T,)
    tau = candidate.to(torch.int8).argmax(dim=-1) + tau_min  # (T,) first True
    return tau, voiced


def _parabolic_period(d: Tensor, tau: Tensor) -> Tensor:
    """Step 5: vertex of the parabola through d(tau-1), d(tau), d(tau+1) -> (T,)."""
    rows = torch.arange(d.shape[0], device=d.device)
    left, mid, right = d[rows, tau - 1], d[rows, tau], d[rows, tau + 1]  # (T,) each
    curvature = left - 2 * mid + right
    shift = torch.where(
        curvature > 0, 0.5 * (left - right) / curvature.clamp_min(1e-300), 0.0
    )
    return tau.to(d.dtype) + shift.clamp(-1.0, 1.0)  # (T,)


def median_filter_voiced(f0: Tensor, width: int) -> Tensor:
    """Median over the voiced frames of a centred window of `width` (odd) frames.

    Unvoiced frames stay 0 and do not vote, so a voiced run keeps its edges.
    """
    assert width >= 1 and width % 2 == 1, f"median width must be odd, got {width}"
    if width == 1:
        return f0
    values = torch.where(f0 > 0, f0, torch.nan)  # (T,)
    half = width // 2
    padded = torch.nn.functional.pad(values, (half, half), value=math.nan)  # (T+w-1,)
    medians = padded.unfold(0, width, 1).nanmedian(dim=-1).values  # (T,)
    return torch.where(f0 > 0, medians, 0.0)


def yin(
    wave: Tensor | np.ndarray,
    sample_rate: int,
    fmin: float = 65.0,
    fmax: float = 400.0,
    frame_length: int = 1024,
    hop_length: int = 256,
    threshold: float = 0.1,
    center: bool = True,
    win_length: int | None = None,
    median_width: int = 1,
) -> Tensor:
    """F0 in Hz per frame of a mono wave (S,) -> (T,) float32, 0 where unvoiced.

    T = S // hop_length + 1 when `center` (like torch.stft), else
    1 + (S - frame_length) // hop_length. `win_length` is W of Eq. 6 (default
    ceil(sr / fmin)); W + ceil(sr / fmin) + 1 <= frame_length. `median_width` (odd)
    > 1 median-filters the voiced frames. Computed in float64 on the wave's device.
    """
    wave = torch.as_tensor(wave)
    assert wave.ndim == 1, f"yin expects a mono wave (S,), got {tuple(wave.shape)}"
    tau_min, tau_max, window = lag_range(
        sample_rate, fmin, fmax, frame_length, win_length
    )
    frames = frame_signal(wave.double(), frame_length, hop_length, center)  # (T, N)
    span = window + tau_max + 1  # samples that lags 0..tau_max+1 read
    start = (frame_length - span) // 2  # the span sits in the middle of the frame
    frames = frames[:, start : start + span]  # (T, span)
    d = difference_function(frames, window, tau_max + 2)  # (T, tau_max + 2)
    cmnd = cumulative_mean_normalized_difference(d)  # (T, tau_max + 2)
    tau, voiced = _select_lag(cmnd, tau_min, tau_max, threshold)  # (T,), (T,)
    period = _parabolic_period(d, tau)  # (T,) in samples
    f0 = torch.where(voiced, sample_rate / period, 0.0)  # (T,)
    return median_filter_voiced(f0, median_width).float()


def pitch_statistics(pitches: list[Tensor]) -> tuple[float, float]:
    """Mean and standard deviation (1/n, no Bessel correction) of the voiced frames
    (F0 > 0) of all tracks together, e.g. of one speaker, to normalise its pitch."""
    voiced = torch.cat([torch.as_tensor(p).reshape(-1) for p in pitches]).double()
    voiced = voiced[voiced > 0]  # (n_voiced,)
    if voiced.numel() == 0:
        raise ValueError(f"no voiced frame in {len(pitches)} pitch tracks")
    return voiced.mean().item(), voiced.std(correction=0).item()
