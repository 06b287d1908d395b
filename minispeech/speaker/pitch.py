"""Pitch coordinates: an utterance's median F0 as a unit vector that cosine can score.

F0 is one of the oldest speaker features (Atal 1972, "Automatic speaker recognition
based on pitch contours", JASA 52(6B)); systems that fuse it with spectral
embeddings score the two apart and add the scores (e.g. Sönmez et al. 1998, "Modeling
dynamic prosodic variation for speaker verification", ICSLP). Here:

    f = median of log F0 over the voiced frames (YIN, minispeech.audio.pitch)
    phi_k(f) = exp(-(f - c_k)^2 / (2 w^2)),  c_k on a grid of step w / 2
    p = phi / |phi|                                    (K,), unit length

so that p(f_a) . p(f_b) = exp(-(f_a - f_b)^2 / (4 w^2)) up to the grid (a Gaussian
product integrated over the grid; exact for an infinitely fine, unbounded grid): 1
for equal pitch, 0 for pitches far apart compared with w, and never rising again.
With weight g, the scoring space concatenates sqrt(1 - g) times the unit
embedding with sqrt(g) p, so the cosine of two such vectors is

    (1 - g) cos(x_a, x_b) + g exp(-(f_a - f_b)^2 / (4 w^2)),

score fusion written as one vector per utterance: enrolment averages vectors, and
every scorer stays a cosine. An utterance with no voiced frame has p = 0: it is
scored by its embedding alone.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from minispeech.audio.pitch import yin

F0_RANGE = (50.0, 800.0)  # Hz searched: the corpus's lowest male to a child's voice
VOICING_THRESHOLD = 0.15  # YIN's absolute threshold (step 4)


def log_pitch(wave: Tensor, sample_rate: int) -> float:
    """Median natural-log F0 (Hz) of the voiced frames of a wave (S,), or NaN when
    no frame is voiced. The median ignores isolated octave errors."""
    assert wave.dim() == 1, f"log_pitch expects a mono wave (S,), got {wave.shape}"
    tau_max = math.ceil(sample_rate / F0_RANGE[0])  # longest period, in samples
    frame_length = 2 * tau_max + 2  # YIN's window W = tau_max plus the lags
    if wave.numel() < frame_length:
        return math.nan
    f0 = yin(
        wave,
        sample_rate,
        fmin=F0_RANGE[0],
        fmax=F0_RANGE[1],
        frame_length=frame_length,
        hop_length=round(0.016 * sample_rate),  # (T,) frames every 16 ms
        threshold=VOICING_THRESHOLD,
    )
    voiced = f0[f0 > 0]  # (T_voiced,)
    return float(voiced.double().log().median()) if len(voiced) else math.nan


def pitch_grid(width: float) -> Tensor:
    """Centres c_k (K,) in log Hz: step width / 2 over F0_RANGE, 3 widths beyond."""
    low = math.log(F0_RANGE[0]) - 3 * width
    high = math.log(F0_RANGE[1]) + 3 * width
    return torch.arange(low, high + width / 4, width / 2, dtype=torch.float64)


def pitch_coordinates(log_f0: Tensor, width: float) -> Tensor:
    """log F0 (N,) -> unit vectors (N, K) (module docstring); rows of NaN are 0."""
    log_f0 = torch.as_tensor(log_f0, dtype=torch.float64)
    assert log_f0.dim() == 1, f"log_f0 must be (N,), got {tuple(log_f0.shape)}"
    centres = pitch_grid(width)  # (K,)
    voiced = ~torch.isnan(log_f0)  # (N,)
    f = torch.where(voiced, log_f0, 0.0)  # (N,)
    phi = torch.exp(-((f[:, None] - centres) ** 2) / (2 * width**2))  # (N, K)
    phi = torch.nn.functional.normalize(phi, dim=1)  # (N, K) unit rows
    return phi * voiced[:, None]  # (N, K)
