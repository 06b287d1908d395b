"""Mel-cepstral distortion (MCD) in dB between two waves, aligned by time warping (DTW).

References: 1) Kubichek 1993, "Mel-cepstral distance measure for objective speech
quality assessment", IEEE PACRIM: the distance between two frames of mel cepstra,
    MCD = (10 / ln 10) * sqrt(2 * sum_{d=1}^{D-1} (c_d - c'_d)^2)   [dB],
c0 (the frame's log energy) left out. 2) Sakoe & Chiba 1978, "Dynamic programming
algorithm optimization for spoken word recognition", IEEE TASSP 26(1): DTW, the
accumulated cost g(i, j) = cost(i, j) + min(g(i-1, j-1), g(i-1, j), g(i, j-1)),
g(0, 0) = cost(0, 0), and the path read back from g(N-1, M-1).

Mel cepstra here (`mel_cepstrum`): |STFT|^2 with a periodic Hann window (centred,
reflect padding, as torch.stft) -> an HTK triangular mel filterbank (no area
normalisation: a per-band gain is a constant in the log and cancels in MCD) -> the
natural log L_m (floor 1e-10, librosa's amin) -> an orthonormal DCT-II X_n -> divided
by sqrt(2M): c_n = X_n / sqrt(2M) are then the coefficients of the cosine series
L_m = c'_0 + 2 sum_{n>=1} c_n cos(pi n (m + 1/2) / M), the cepstrum of the log mel
power spectrum, so that Parseval makes Kubichek's MCD the RMS over the M mel bands of
the difference of the two log mel spectra in dB (10 log10), its mean over bands (c0)
removed and smoothed to n_mfcc coefficients. n_mfcc = 13 by default (c1..c12 enter
the distance, the usual MFCC count). `mcd` averages the frame distance over the DTW
path: sum over the path / its length (each aligned pair counts once).

Differences from the papers: the cepstra come from a mel filterbank and a DCT (MFCC
style) rather than Kubichek's cepstra or an SPTK mel-cepstrum. SPTK's is the cepstrum
of ln|X| = (ln P) / 2, so the same spectral difference scores half as much there;
and our values depend on n_mels and n_mfcc: compare numbers made with the same
settings only (on the corpus: 3.5 / 6.2 / 9.4 dB at 40 / 30 / 20 dB SNR white noise,
about 8 dB between two sentences of one voice).
DTW uses unit weights for all three steps (Sakoe & Chiba weight the diagonal 2) and
no slope or window constraint. Silent frames are kept unless `silence_db` is given.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

MCD_SCALE = 10.0 / math.log(10.0) * math.sqrt(2.0)  # (10 / ln 10) sqrt(2) = 6.14185


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0, f_max=None
) -> Tensor:
    """HTK-mel triangles, peak 1, no normalisation -> (M, F) float64, F = n_fft//2+1."""
    f_max = sample_rate / 2 if f_max is None else f_max
    mel_min, mel_max = (2595.0 * math.log10(1.0 + f / 700.0) for f in (f_min, f_max))
    mels = torch.linspace(mel_min, mel_max, n_mels + 2, dtype=torch.float64)
    edges = 700.0 * (10.0 ** (mels / 2595.0) - 1.0)  # (M + 2,) Hz
    freqs = torch.arange(n_fft // 2 + 1, dtype=torch.float64) * sample_rate / n_fft
    lower, center, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs - lower) / (center - lower)  # (M, F)
    falling = (upper - freqs) / (upper - center)  # (M, F)
    return torch.minimum(rising, falling).clamp_min(0.0)  # (M, F)


def dct_matrix(n_out: int, n_in: int) -> Tensor:
    """Orthonormal DCT-II, the first n_out rows -> (n_out, n_in) float64:
    C[k, m] = sqrt(2 / n_in) cos(pi k (m + 1/2) / n_in), row 0 times 1/sqrt(2)."""
    k = torch.arange(n_out, dtype=torch.float64)[:, None]  # (n_out, 1)
    m = torch.arange(n_in, dtype=torch.float64)[None, :]  # (1, n_in)
    basis = math.sqrt(2.0 / n_in) * torch.cos(math.pi * k * (m + 0.5) / n_in)
    basis[0] /= math.sqrt(2.0)
    return basis  # (n_out, n_in)


def mel_cepstrum(
    wave: Tensor | np.ndarray,
    sample_rate: int,
    n_mfcc: int = 13,
    n_fft: int = 1024,
    hop_length: int = 256,
    n_mels: int = 80,
    silence_db: float | None = None,
) -> Tensor:
    """Mel cepstra c_0..c_{n_mfcc-1} of a mono wave (S,) -> (T, n_mfcc) float64:
    the orthonormal DCT-II of the natural-log mel power, divided by sqrt(2 n_mels).

    T = S // hop_length + 1. With `silence_db`, the frames whose mel power is more
    than silence_db dB below the loudest frame are dropped (T shrinks).
    """
    wave = torch.as_tensor(wave).double()
    assert wave.ndim == 1, f"expected a mono wave (S,), got {tuple(wave.shape)}"
    assert n_mfcc <= n_mels, f"n_mfcc={n_mfcc} > n_mels={n_mels}"
    window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
    spec = torch.stft(wave, n_fft, hop_length, window=window, return_complex=True)
    power = spec.abs() ** 2  # (F, T)
    mel = mel_filterbank(sample_rate, n_fft, n_mels) @ power  # (M, T)
    log_mel = mel.clamp_min(1e-10).log()  # (M, T), natural log
    ceps = (dct_matrix(n_mfcc, n_mels) @ log_mel).T  # (T, n_mfcc)
    ceps = ceps / math.sqrt(2 * n_mels)  # cosine-series scale: see the module doc
    if silence_db is not None:
        frame_db = 10 * torch.log10(mel.sum(0).clamp_min(1e-10))  # (T,)
        ceps = ceps[frame_db > frame_db.max() - silence_db]  # (T_kept, n_mfcc)
    return ceps


def _accumulate_reference(cost: np.ndarray) -> np.ndarray:
    """g(i, j) cell by cell, two loops (the readable version) -> (N, M)."""
    n_rows, n_cols = cost.shape
    acc = np.full((n_rows, n_cols), np.inf)
    for i in range(n_rows):
        for j in range(n_cols):
            if i == 0 and j == 0:
                acc[i, j] = cost[i, j]
                continue
            diagonal = acc[i - 1, j - 1] if i > 0 and j > 0 else np.inf
            up = acc[i - 1, j] if i > 0 else np.inf
            left = acc[i, j - 1] if j > 0 else np.inf
            acc[i, j] = cost[i, j] + min(diagonal, up, left)
    return acc


def _accumulate_fast(cost: np.ndarray) -> np.ndarray:
    """g(i, j) one anti-diagonal i + j = k at a time (its cells depend only on the
    two previous anti-diagonals) -> (N, M), bit-identical to the reference."""
    n_rows, n_cols = cost.shape
    acc = np.full((n_rows + 1, n_cols + 1), np.inf)  # acc[i+1, j+1] = g(i, j)
    acc[0, 0] = 0.0  # so that g(0, 0) = cost(0, 0)
    for k in range(n_rows + n_cols - 1):
        i = np.arange(max(0, k - n_cols + 1), min(n_rows, k + 1))  # rows on diagonal k
        j = k - i
        best = np.minimum(np.minimum(acc[i, j], acc[i, j + 1]), acc[i + 1, j])
        acc[i + 1, j + 1] = cost[i, j] + best
    return acc[1:, 1:]  # (N, M)


def _backtrack(acc: np.ndarray) -> list[tuple[int, int]]:
    """The path from (0, 0) to (N-1, M-1), read back through the cheapest
    predecessor; ties go to the diagonal, then (i-1, j), then (i, j-1)."""
    i, j = acc.shape[0] - 1, acc.shape[1] - 1
    path = [(i, j)]
    while i > 0 or j > 0:
        steps = [(i - 1, j - 1), (i - 1, j), (i, j - 1)]
        steps = [(a, b) for a, b in steps if a >= 0 and b >= 0]
        i, j = min(steps, key=lambda step: acc[step])  # first of equal minima
        path.append((i, j))
    return path[::-1]


def _as_cost(cost) -> np.ndarray:
    cost = np.asarray(torch.as_tensor(cost).detach().cpu(), dtype=np.float64)
    assert cost.ndim == 2 and cost.size > 0, f"cost must be (N, M), got {cost.shape}"
    return cost


def dtw_reference(cost: Tensor | np.ndarray) -> tuple[float, list[tuple[int, int]]]:
    """DTW on a cost matrix (N, M), two plain loops -> (total cost, path)."""
    acc = _accumulate_reference(_as_cost(cost))
    return float(acc[-1, -1]), _backtrack(acc)


def dtw(cost: Tensor | np.ndarray) -> tuple[float, list[tuple[int, int]]]:
    """DTW on a cost matrix (N, M) -> (total cost, path of (i, j) from (0, 0) to
    (N-1, M-1) with steps (1, 0), (0, 1), (1, 1)); the same as `dtw_reference`,
    vectorised over anti-diagonals (N + M - 1 numpy steps)."""
    acc = _accumulate_fast(_as_cost(cost))
    return float(acc[-1, -1]), _backtrack(acc)


def mcd_from_cepstra(c_ref: Tensor, c_syn: Tensor, use_dtw: bool = True) -> float:
    """MCD in dB between mel cepstra (N, D) and (M, D); c0 (column 0) is left out.

    With DTW: the mean frame distance over the optimal path. Without: frame t
    against frame t, over the first min(N, M) frames.
    """
    c_ref, c_syn = torch.as_tensor(c_ref).double(), torch.as_tensor(c_syn).double()
    assert c_ref.ndim == 2 and c_ref.shape[1] == c_syn.shape[1] > 1, (
        f"cepstra must be (N, D) and (M, D) with D > 1: {c_ref.shape}, {c_syn.shape}"
    )
    if not use_dtw:
        n_frames = min(len(c_ref), len(c_syn))
        diff = c_ref[:n_frames, 1:] - c_syn[:n_frames, 1:]  # (T, D-1)
        return MCD_SCALE * diff.norm(dim=1).mean().item()
    exact = "donot_use_mm_for_euclid_dist"  # the matmul shortcut leaves ~1e-7 for 0
    distances = torch.cdist(c_ref[:, 1:], c_syn[:, 1:], compute_mode=exact)  # (N, M)
    total, path = dtw(MCD_SCALE * distances)  # frame distances in dB
    return total / len(path)


def mcd(
    reference_wave: Tensor | np.ndarray,
    synthesized_wave: Tensor | np.ndarray,
    sample_rate: int,
    n_mfcc: int = 13,
    n_fft: int = 1024,
    hop_length: int = 256,
    n_mels: int = 80,
    silence_db: float | None = None,
    use_dtw: bool = True,
) -> float:
    """MCD in dB between two mono waves (S,) and (S',) of one sample rate."""
    settings = dict(n_mfcc=n_mfcc, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels)
    settings["silence_db"] = silence_db
    c_ref = mel_cepstrum(reference_wave, sample_rate, **settings)  # (N, n_mfcc)
    c_syn = mel_cepstrum(synthesized_wave, sample_rate, **settings)  # (M, n_mfcc)
    return mcd_from_cepstra(c_ref, c_syn, use_dtw=use_dtw)
