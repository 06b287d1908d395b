"""Short-time Fourier transform, its inverse, and the classic analysis windows.

Allen & Rabiner 1977, "A unified approach to short-time Fourier analysis and
synthesis" (Proc. IEEE 65(11)); Griffin & Lim 1984, "Signal estimation from modified
short-time Fourier transform" (IEEE TASSP 32(2)), Eq. 6 for the least-squares
overlap-add inverse:

    X[f, t] = sum_n x[n + t * hop] w[n] exp(-2j pi f n / n_fft)          (analysis)
    x[n]    = sum_t w[n - t hop] y_t[n - t hop] / sum_t w[n - t hop]^2    (synthesis)

where y_t is the inverse DFT of frame t. The inverse exists where the squared-window
envelope never vanishes: the "nonzero overlap-add" (NOLA) condition.

Same signature and output convention as `torch.stft(..., return_complex=True)` and
`torch.istft`: complex (..., F, T) with F = n_fft // 2 + 1 when onesided; a window
shorter than n_fft is zero-padded on both sides to n_fft; `center=True` pads n_fft // 2
samples on each side so that frame t is centred on sample t * hop. Differs from torch:
any number of leading batch dimensions is accepted, and the result is always complex.
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor

WINDOWS = ("hann", "hamming", "blackman", "bartlett", "ones")


def get_window(
    name: str, n: int, periodic: bool = True, dtype: torch.dtype = torch.float32
) -> Tensor:
    """The window `name` of length n, from its formula; equals `torch.<name>_window`.

    A periodic window is the first n points of the symmetric window of length n + 1
    (spectral analysis); a symmetric one ends where it starts (filter design).
    """
    if name not in WINDOWS:
        raise ValueError(f"unknown window {name!r}; choose one of {WINDOWS}")
    if n < 0:
        raise ValueError(f"window length must be >= 0, got {n}")
    if n <= 1 or name == "ones":
        return torch.ones(n, dtype=dtype)
    denom = n if periodic else n - 1  # N in the formulas below
    k = torch.arange(n, dtype=torch.float64)
    phase = 2 * math.pi * k / denom
    if name == "hann":  # 0.5 - 0.5 cos(2 pi k / N)
        w = 0.5 - 0.5 * torch.cos(phase)
    elif name == "hamming":  # 0.54 - 0.46 cos(2 pi k / N)
        w = 0.54 - 0.46 * torch.cos(phase)
    elif name == "blackman":  # 0.42 - 0.5 cos(2 pi k / N) + 0.08 cos(4 pi k / N)
        w = 0.42 - 0.5 * torch.cos(phase) + 0.08 * torch.cos(2 * phase)
    else:  # bartlett (triangle): 1 - |2k / N - 1|
        w = 1 - (2 * k / denom - 1).abs()
    return w.to(dtype)


def _padded_window(
    window: Tensor | None, n_fft: int, win_length: int, like: Tensor
) -> Tensor:
    """The analysis window zero-padded (centred) to n_fft, as torch.stft does."""
    real_dtype = like.real.dtype if like.is_complex() else like.dtype
    if window is None:
        window = torch.ones(win_length, dtype=real_dtype, device=like.device)
    if window.dim() != 1 or window.numel() != win_length:
        raise ValueError(
            f"window must be 1-D of length win_length={win_length}, "
            f"got shape {tuple(window.shape)}"
        )
    left = (n_fft - win_length) // 2
    window = window.to(device=like.device, dtype=real_dtype)
    return F.pad(window, (left, n_fft - win_length - left))  # (n_fft,)


def _check_sizes(n_fft: int, hop_length: int, win_length: int) -> None:
    if n_fft <= 0 or hop_length <= 0:
        raise ValueError(f"n_fft and hop_length must be > 0, got {n_fft}, {hop_length}")
    if not 0 < win_length <= n_fft:
        raise ValueError(f"win_length must be in 1..n_fft={n_fft}, got {win_length}")


def _center_pad(x: Tensor, n_fft: int, pad_mode: str) -> Tensor:
    """Pad n_fft // 2 samples on both sides of the last dimension."""
    pad = n_fft // 2
    if pad_mode == "constant":
        return F.pad(x, (pad, pad))
    if pad_mode not in ("reflect", "replicate", "circular"):
        raise ValueError(f"unknown pad_mode {pad_mode!r}")
    if pad_mode == "reflect" and pad >= x.shape[-1]:
        raise ValueError(
            f"reflect padding of {pad} samples needs a signal longer than {pad}, "
            f"got {x.shape[-1]} samples; use pad_mode='constant' or a smaller n_fft"
        )
    # F.pad's non-constant modes want 3-D input
    flat = x.reshape(-1, 1, x.shape[-1])  # (N, 1, S)
    return F.pad(flat, (pad, pad), mode=pad_mode).reshape(*x.shape[:-1], -1)


def stft(
    input: Tensor,
    n_fft: int,
    hop_length: int | None = None,
    win_length: int | None = None,
    window: Tensor | None = None,
    center: bool = True,
    pad_mode: str = "reflect",
    normalized: bool = False,
    onesided: bool | None = None,
) -> Tensor:
    """Complex STFT (..., S) -> (..., F, T), the convention of torch.stft.

    hop_length defaults to n_fft // 4 and win_length to n_fft; window None is
    rectangular. onesided (default: True for real input) keeps F = n_fft // 2 + 1
    bins; normalized multiplies by n_fft ** -0.5.
    """
    hop_length = n_fft // 4 if hop_length is None else hop_length
    win_length = n_fft if win_length is None else win_length
    _check_sizes(n_fft, hop_length, win_length)
    if input.dim() < 1:
        raise ValueError(f"stft input must be (..., S), got shape {tuple(input.shape)}")
    onesided = not input.is_complex() if onesided is None else onesided
    if onesided and input.is_complex():
        raise ValueError("onesided=True needs a real input; pass onesided=False")
    # 1) centre frame t on sample t * hop by padding n_fft // 2 on both sides
    x = _center_pad(input, n_fft, pad_mode) if center else input
    if x.shape[-1] < n_fft:
        raise ValueError(
            f"input has {x.shape[-1]} samples (after padding), n_fft={n_fft}"
        )
    # 2) frames as a strided view (no copy), then window them
    frames = x.unfold(-1, n_fft, hop_length)  # (..., T, n_fft)
    frames = frames * _padded_window(window, n_fft, win_length, input)
    # 3) DFT of each frame; rfft keeps the non-negative frequencies of a real signal
    norm = "ortho" if normalized else "backward"
    if onesided:
        spec = torch.fft.rfft(frames, n=n_fft, norm=norm)  # (..., T, F)
    else:
        spec = torch.fft.fft(frames, n=n_fft, norm=norm)  # (..., T, n_fft)
    return spec.transpose(-1, -2)  # (..., F, T)


def _overlap_add(frames: Tensor, hop_length: int) -> Tensor:
    """Sum frames (N, T, n_fft) into a signal (N, n_fft + hop * (T - 1))."""
    n, n_frames, n_fft = frames.shape
    n_chunks = -(-n_fft // hop_length)  # ceil(n_fft / hop) hop-sized chunks per frame
    out = frames.new_zeros(n, n_frames + n_chunks - 1, hop_length)  # (N, T+c-1, hop)
    # chunk j of frame t lands on output block t + j: add chunk j of every frame at once
    for j in range(n_chunks):
        chunk = frames[:, :, j * hop_length : (j + 1) * hop_length]  # (N, T, <= hop)
        out[:, j : j + n_frames, : chunk.shape[-1]] += chunk
    return out.reshape(n, -1)[:, : n_fft + hop_length * (n_frames - 1)]  # (N, L)


def istft(
    input: Tensor,
    n_fft: int,
    hop_length: int | None = None,
    win_length: int | None = None,
    window: Tensor | None = None,
    center: bool = True,
    normalized: bool = False,
    onesided: bool | None = None,
    length: int | None = None,
    return_complex: bool = False,
) -> Tensor:
    """Inverse STFT (..., F, T) -> (..., S): least-squares overlap-add (Griffin-Lim).

    Raises ValueError where the window fails NOLA (its squared overlap-add envelope
    is ~0 somewhere in the output), as torch.istft does.
    """
    hop_length = n_fft // 4 if hop_length is None else hop_length
    win_length = n_fft if win_length is None else win_length
    _check_sizes(n_fft, hop_length, win_length)
    if input.dim() < 2 or not input.is_complex():
        raise ValueError(
            f"istft input must be complex (..., F, T), got {input.dtype} "
            f"of shape {tuple(input.shape)}"
        )
    onesided = input.shape[-2] != n_fft if onesided is None else onesided
    if onesided and return_complex:
        raise ValueError("return_complex=True needs onesided=False")
    batch_shape, n_frames = input.shape[:-2], input.shape[-1]
    spec = input.reshape(-1, *input.shape[-2:]).transpose(1, 2)  # (N, T, F)
    # 1) inverse DFT of every frame
    norm = "ortho" if normalized else "backward"
    if onesided:
        frames = torch.fft.irfft(spec, n=n_fft, norm=norm)  # (N, T, n_fft)
    else:
        frames = torch.fft.ifft(spec, n=n_fft, norm=norm)  # (N, T, n_fft)
        frames = frames if return_complex else frames.real
    # 2) window again and overlap-add; divide by the overlap-added squared window
    w = _padded_window(window, n_fft, win_length, frames)  # (n_fft,)
    y = _overlap_add(frames * w, hop_length)  # (N, L)
    envelope = _overlap_add((w * w).expand(1, n_frames, n_fft), hop_length)[0]  # (L,)
    # 3) drop the centre padding, or cut to `length`
    start = n_fft // 2 if center else 0
    if length is not None:
        end = start + length
    else:
        end = y.shape[-1] - (n_fft // 2 if center else 0)
    y, envelope = y[:, start:end], envelope[start:end]
    if envelope.numel() and envelope.abs().min() < 1e-11:
        raise ValueError(
            "istft: the window fails the NOLA condition (its squared overlap-add is ~0 "
            f"at some output sample; min {envelope.abs().min().item():.3g}); use a "
            "smaller hop, another window, or center=True"
        )
    y = y / envelope  # (N, S)
    if (
        length is not None and y.shape[-1] < length
    ):  # asked for more than the frames hold
        y = F.pad(y, (0, length - y.shape[-1]))
    return y.reshape(*batch_shape, y.shape[-1])  # (..., S)
