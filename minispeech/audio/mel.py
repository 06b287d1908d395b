"""Mel scales and the triangular mel filterbank.

Stevens, Volkmann & Newman 1937, "A scale for the measurement of the psychological
magnitude pitch" (the mel scale). Two standard formulas are implemented:
- HTK (Young et al., "The HTK Book", Sec. 5.4): mel = 2595 log10(1 + f / 700).
- Slaney (Slaney 1998, "Auditory Toolbox", Interval Research TR-1998-010): linear
  below 1 kHz, mel = 3 f / 200, and logarithmic above it with 27 mels per factor
  6.4 in frequency, mel = 15 + 27 ln(f / 1000) / ln(6.4).
Filter m is a triangle over the FFT bin frequencies, rising from the mel point m to
m + 1 and falling to m + 2, the n_mels + 2 points spaced evenly in mel between f_min
and f_max. Slaney normalization scales triangle m by 2 / (f_{m+2} - f_m) so that each
filter has unit area in Hz ("constant energy per channel"). The result equals
`librosa.filters.mel` (its defaults: Slaney scale and Slaney norm); other librosa
norms (p-norms) are not offered.
"""

import math

import torch
from torch import Tensor

_F_SP = 200.0 / 3  # Slaney: Hz per mel below the break (3 mels per 200 Hz)
_MIN_LOG_HZ = 1000.0  # Slaney: the linear -> log break
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP  # 15 mels at 1 kHz
_LOGSTEP = math.log(6.4) / 27.0  # Slaney: 27 mels per factor 6.4 above the break


def hz_to_mel(freqs: Tensor, htk: bool = False) -> Tensor:
    """Frequency in Hz -> mel (HTK or Slaney formula, see the module docstring)."""
    freqs = torch.as_tensor(freqs, dtype=torch.float64)
    if htk:
        return 2595.0 * torch.log10(1.0 + freqs / 700.0)
    linear = freqs / _F_SP
    log = (
        _MIN_LOG_MEL + torch.log(freqs.clamp_min(_MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    )
    return torch.where(freqs >= _MIN_LOG_HZ, log, linear)


def mel_to_hz(mels: Tensor, htk: bool = False) -> Tensor:
    """Mel -> frequency in Hz, the inverse of `hz_to_mel`."""
    mels = torch.as_tensor(mels, dtype=torch.float64)
    if htk:
        return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    linear = _F_SP * mels
    log = _MIN_LOG_HZ * torch.exp(
        _LOGSTEP * (mels.clamp_min(_MIN_LOG_MEL) - _MIN_LOG_MEL)
    )
    return torch.where(mels >= _MIN_LOG_MEL, log, linear)


def mel_points(n_mels: int, f_min: float, f_max: float, htk: bool = False) -> Tensor:
    """The n_mels + 2 triangle corners in Hz, evenly spaced on the mel scale."""
    lo, hi = hz_to_mel(torch.tensor(f_min), htk), hz_to_mel(torch.tensor(f_max), htk)
    return mel_to_hz(
        torch.linspace(0, 1, n_mels + 2, dtype=torch.float64) * (hi - lo) + lo, htk
    )


def mel_filterbank(
    sample_rate: int,
    n_fft: int,
    n_mels: int,
    f_min: float = 0.0,
    f_max: float | None = None,
    htk: bool = False,
    norm: str | None = "slaney",
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Triangular mel filters (M, F) with F = n_fft // 2 + 1; `filters @ power_spec`."""
    f_max = sample_rate / 2 if f_max is None else f_max
    if norm not in ("slaney", None):
        raise ValueError(f"norm must be 'slaney' or None, got {norm!r}")
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(
            f"need 0 <= f_min < f_max <= sample_rate / 2 = {sample_rate / 2}, "
            f"got f_min={f_min}, f_max={f_max}"
        )
    if n_mels <= 0 or n_fft <= 0:
        raise ValueError(f"n_mels and n_fft must be > 0, got {n_mels}, {n_fft}")
    # bin frequencies 0, sr/n_fft, ..., sr/2
    fft_freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    corners = mel_points(n_mels, f_min, f_max, htk)  # (M + 2,)
    lower, centre, upper = corners[:-2, None], corners[1:-1, None], corners[2:, None]
    rising = (fft_freqs - lower) / (centre - lower)  # (M, F)
    falling = (upper - fft_freqs) / (upper - centre)  # (M, F)
    weights = torch.minimum(rising, falling).clamp_min(0.0)  # (M, F)
    if norm == "slaney":  # unit area: a triangle of base (upper - lower) Hz
        weights = weights * (2.0 / (upper - lower))
    return weights.to(dtype)
