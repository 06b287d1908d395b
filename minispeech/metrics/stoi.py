"""STOI: short-time objective intelligibility of processed speech, from 0 to 1.

References: 1) Taal, Hendriks, Heusdens, Jensen 2011, "An algorithm for intelligibility
prediction of time-frequency weighted noisy speech", IEEE TASLP 19(7) (STOI).
2) Jensen, Taal 2016, "An algorithm for predicting the intelligibility of speech masked
by modulated noise maskers", IEEE TASLP 24(11) (extended STOI). The numbers and every
step follow the authors' MATLAB code as ported by the `pystoi` package.

Steps (x clean, y processed; both mono, the same length):
    0) resample both to 10 kHz (Octave's `resample`: a Kaiser-windowed sinc, polyphase)
    1) drop the frames where x is silent: 256-sample Hann frames, hop 128, kept when
       their energy is within 40 dB of the loudest frame of x; overlap-add the rest
    2) STFT: the same frames, zero-padded to 512 points -> (T, F = 257)
    3) Eq. (1): J = 15 one-third octave bands from 150 Hz,
       X_j(m) = sqrt(sum_{k in band j} |X(k, m)|^2)  -> (J, T)
    4) Eq. (2): segments of N = 30 frames (384 ms) ending at every frame m >= N
       -> x_{j,m}, y_{j,m} of length N, M = T - N + 1 segments
    5) Eq. (3): normalise and clip, beta = -15 dB:
       y'_{j,m} = min(||x_{j,m}|| / ||y_{j,m}|| y_{j,m}, (1 + 10^(-beta/20)) x_{j,m})
    6) Eq. (4): d_{j,m} = correlation coefficient of x_{j,m} and y'_{j,m}
    7) Eq. (5): d = 1/(J M) sum_{j,m} d_{j,m}
Extended STOI replaces 5)-7): each segment (J, N) is normalised to zero mean and unit
norm along time (rows), then along frequency (columns); d = 1/(M N) sum of the
column-by-column inner products of the clean and processed segments.

Differences from pystoi: a signal with fewer than N frames left after step 1 raises a
ValueError (pystoi warns and returns 1e-5); extended STOI adds EPS to the norms instead
of adding EPS-sized random noise to the segments: the same value to ~1e-15, and
deterministic; an all-zero processed signal scores 0 (pystoi: a small random number).
"""

from __future__ import annotations

import math

import numpy as np
import torch

EPS = np.finfo(np.float64).eps  # the norm regulariser of pystoi and the MATLAB code


def _as_numpy(signal) -> np.ndarray:
    """A mono (S,) numpy array or torch tensor -> float64 numpy (S,)."""
    if isinstance(signal, torch.Tensor):
        signal = signal.detach().cpu().numpy()
    return np.asarray(signal, dtype=np.float64)


def kaiser_lowpass(up: int, down: int, rejection_db: float = 60.0) -> np.ndarray:
    """Octave's `resample` anti-aliasing filter: a sinc cut at 1/(2 max(up, down)) of
    the upsampled rate, Kaiser window, transition width a tenth of the cutoff, unit
    DC gain. 581 taps for 16 kHz -> 10 kHz (up 5, down 8)."""
    cutoff = 1.0 / (2 * max(up, down))  # cycles per upsampled sample
    roll_off = cutoff / 10
    half_len = math.ceil((rejection_db - 8) / (28.714 * roll_off))  # Kaiser's formula
    beta = 0.1102 * (rejection_db - 8.7)  # Kaiser's beta for rejection > 50 dB
    taps = np.kaiser(2 * half_len + 1, beta) * np.sinc(
        2 * cutoff * np.arange(-half_len, half_len + 1)
    )
    return taps / taps.sum()


def resample(signal: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
    """Polyphase resampling by up/down = new_sr/orig_sr with `kaiser_lowpass`, equal to
    scipy's resample_poly(signal, up, down, window=taps) (what pystoi calls):
        y[k] = up sum_n x[n] h[L + k down - n up],   L = (len(h) - 1) / 2."""
    g = math.gcd(orig_sr, new_sr)
    up, down = new_sr // g, orig_sr // g
    h = up * kaiser_lowpass(up, down)
    half_len = (len(h) - 1) // 2
    n_out = -(-len(signal) * up // down)  # ceil(S up / down)
    # output k sits at L + k down on the upsampled grid: its phase selects the taps
    # h[phase], h[phase + up], ... that meet the input samples last, last - 1, ...
    position = half_len + np.arange(n_out) * down  # (S',)
    phase, last = position % up, position // up  # (S',), (S',)
    n_taps = -(-len(h) // up)
    polyphase = np.zeros((up, n_taps))
    for r in range(up):
        polyphase[r, : len(h[r::up])] = h[r::up]
    # filtered[r, n] = sum_i polyphase[r, i] x[n - i], for every phase r
    filtered = np.stack([np.convolve(signal, taps) for taps in polyphase])
    return filtered[phase, last]  # (S',)


def hann(length: int) -> np.ndarray:
    """MATLAB's `hanning(length)`: the Hann window without its zero end points."""
    return np.hanning(length + 2)[1:-1]


def frames(signal: np.ndarray, frame_len: int, hop: int) -> np.ndarray:
    """Hann-windowed frames at 0, hop, ... < S - frame_len: (S,) -> (T, frame_len)."""
    starts = range(0, len(signal) - frame_len, hop)
    window = hann(frame_len)
    framed = [window * signal[i : i + frame_len] for i in starts]
    return np.stack(framed) if framed else np.zeros((0, frame_len))


def overlap_add(framed: np.ndarray, hop: int) -> np.ndarray:
    """(T, frame_len) -> ((T - 1) hop + frame_len,): the frames summed back in place."""
    n_frames, frame_len = framed.shape
    out = np.zeros((n_frames - 1) * hop + frame_len)
    for t, frame in enumerate(framed):
        out[t * hop : t * hop + frame_len] += frame
    return out


def remove_silent_frames(
    clean: np.ndarray,
    processed: np.ndarray,
    dyn_range: float = 40.0,
    frame_len: int = 256,
    hop: int = 128,
) -> tuple[np.ndarray, np.ndarray]:
    """Step 1: keep the frames whose clean energy is within dyn_range dB of the
    loudest clean frame, in both signals, and overlap-add them again."""
    if len(clean) <= frame_len:
        raise ValueError(
            f"STOI needs more than {frame_len} samples at 10 kHz, got {len(clean)}"
        )
    clean_frames = frames(clean, frame_len, hop)  # (T, frame_len)
    processed_frames = frames(processed, frame_len, hop)  # (T, frame_len)
    energy_db = 20 * np.log10(np.linalg.norm(clean_frames, axis=1) + EPS)  # (T,)
    keep = energy_db > energy_db.max() - dyn_range  # (T,)
    clean = overlap_add(clean_frames[keep], hop)  # (S',)
    processed = overlap_add(processed_frames[keep], hop)  # (S',)
    return clean, processed


def third_octave_bands(
    sample_rate: int, n_fft: int, n_bands: int, min_freq: float
) -> np.ndarray:
    """(J, F) 0/1 matrix: band j sums the FFT bins from the bin nearest its lower edge
    min_freq 2^((2j-1)/6) up to, not including, the bin nearest its upper edge
    min_freq 2^((2j+1)/6) (the centre is min_freq 2^(j/3))."""
    bin_freqs = np.arange(n_fft // 2 + 1) * sample_rate / n_fft  # (F,)
    bands = np.zeros((n_bands, len(bin_freqs)))
    for j in range(n_bands):
        low = np.argmin(np.abs(bin_freqs - min_freq * 2 ** ((2 * j - 1) / 6)))
        high = np.argmin(np.abs(bin_freqs - min_freq * 2 ** ((2 * j + 1) / 6)))
        bands[j, low:high] = 1.0
    return bands


def band_envelopes(
    signal: np.ndarray, bands: np.ndarray, frame_len: int = 256, n_fft: int = 512
) -> np.ndarray:
    """Steps 2-3, Eq. (1): (S,) -> one-third octave band magnitudes (J, T)."""
    spectrum = np.fft.rfft(frames(signal, frame_len, frame_len // 2), n=n_fft)
    power = np.abs(spectrum) ** 2  # (T, F)
    return np.sqrt(bands @ power.T)  # (J, F) x (F, T) -> (J, T)


def segments(envelopes: np.ndarray, n_frames: int) -> np.ndarray:
    """Step 4, Eq. (2): (J, T) -> (M, J, N), segment m ends at frame m + N - 1."""
    view = np.lib.stride_tricks.sliding_window_view(envelopes, n_frames, axis=1)
    return view.transpose(1, 0, 2)  # (J, M, N) -> (M, J, N)


def _unit(x: np.ndarray, axis: int) -> np.ndarray:
    """Zero mean and unit norm along axis (EPS keeps an all-zero vector at zero)."""
    x = x - x.mean(axis=axis, keepdims=True)
    return x / (np.linalg.norm(x, axis=axis, keepdims=True) + EPS)


def stoi_from_segments(
    clean_seg: np.ndarray, processed_seg: np.ndarray, beta: float = -15.0
) -> float:
    """Steps 5-7, Eqs. (3)-(5) on (M, J, N) segments."""
    scale = np.linalg.norm(clean_seg, axis=2, keepdims=True) / (
        np.linalg.norm(processed_seg, axis=2, keepdims=True) + EPS
    )  # (M, J, 1)
    clipped = np.minimum(scale * processed_seg, clean_seg * (1 + 10 ** (-beta / 20)))
    products = _unit(clipped, axis=2) * _unit(clean_seg, axis=2)  # (M, J, N)
    correlations = products.sum(axis=2)  # (M, J)
    return float(correlations.mean())


def estoi_from_segments(clean_seg: np.ndarray, processed_seg: np.ndarray) -> float:
    """Extended STOI on (M, J, N) segments: rows (time), then columns (bands)
    normalised, mean column inner product."""
    clean_n = _unit(_unit(clean_seg, axis=2), axis=1)  # (M, J, N)
    processed_n = _unit(_unit(processed_seg, axis=2), axis=1)  # (M, J, N)
    return float((clean_n * processed_n).sum(axis=1).mean())  # mean over M and N


def stoi(
    clean,
    processed,
    sample_rate: int,
    extended: bool = False,
    internal_rate: int = 10000,
    n_bands: int = 15,
    min_freq: float = 150.0,
    n_frames: int = 30,
) -> float:
    """STOI (or extended STOI) of `processed` against `clean`, mono (S,) arrays or
    tensors at sample_rate. Raises ValueError when fewer than n_frames (30 = 384 ms)
    non-silent frames remain."""
    clean, processed = _as_numpy(clean), _as_numpy(processed)
    if clean.ndim != 1 or clean.shape != processed.shape:
        raise ValueError(
            f"clean {clean.shape} and processed {processed.shape} must be the same (S,)"
        )
    if sample_rate != internal_rate:  # step 0
        clean = resample(clean, sample_rate, internal_rate)  # (S',)
        processed = resample(processed, sample_rate, internal_rate)  # (S',)
    clean, processed = remove_silent_frames(clean, processed)  # step 1
    bands = third_octave_bands(internal_rate, 512, n_bands, min_freq)  # (J, F)
    clean_env = band_envelopes(clean, bands)  # (J, T)
    processed_env = band_envelopes(processed, bands)  # (J, T)
    if clean_env.shape[1] < n_frames:
        raise ValueError(
            f"STOI needs {n_frames} STFT frames of speech, got {clean_env.shape[1]} "
            "after removing silent frames: the signal is too short or nearly silent"
        )
    clean_seg = segments(clean_env, n_frames)  # (M, J, N)
    processed_seg = segments(processed_env, n_frames)  # (M, J, N)
    if extended:
        return estoi_from_segments(clean_seg, processed_seg)
    return stoi_from_segments(clean_seg, processed_seg)
