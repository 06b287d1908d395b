"""Griffin-Lim phase reconstruction: a waveform from a magnitude spectrogram alone.

Griffin & Lim 1984, "Signal estimation from modified short-time Fourier transform"
(IEEE TASSP 32(2)), the LSEE-MSTFTM iteration: given a target magnitude S,
alternate the two projections
    P_C2(X) = S * X / |X|              (keep the phase, impose the magnitude)
    P_C1(X) = STFT(ISTFT(X))           (the nearest consistent spectrogram; the
                                        least-squares ISTFT, their Eq. 6)
so that x_{n+1} = ISTFT(S exp(j angle STFT(x_n))), which never increases the
distance || |STFT(x)| - S || (their proof of the monotone decrease).
`momentum > 0` is the fast Griffin-Lim algorithm (FGLA) of Perraudin, Balazs &
Sondergaard 2013, "A fast Griffin-Lim algorithm" (WASPAA): c_n = P_C1(P_C2(t_{n-1})),
t_n = c_n + alpha (c_n - c_{n-1}) with alpha = 0.99 in the paper and c_0 = t_0 the
initial spectrogram.

Conventions are NeMo's `helpers.griffin_lim` (librosa.istft / librosa.stft): hop
n_fft // 4, a periodic Hann window, centred frames with zero padding (librosa >= 0.10's
pad_mode "constant"), phase exp(j 2 pi u) for uniform u, and a zero-magnitude bin
given phase 1 (librosa.magphase). With the same initial phase it reproduces NeMo's
output to float64 precision. Differs from NeMo: the random initial phase comes from
torch's generator (NeMo draws numpy's global state), the iterations run on a batch,
and the momentum variant is an option.

`mel_to_magnitude` turns a log-mel spectrogram back into a linear magnitude with the
pseudo-inverse of the mel filterbank (the least-squares solution of fb @ |X| = mel,
clamped at a small floor since it may go negative): a cheap, blurry inverse that makes
Griffin-Lim a vocoder (`griffin_lim_from_mel`) for any model that outputs NeMo mels.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from minispeech.audio.stft import get_window, istft, stft


def unit_phase(spec: Tensor) -> Tensor:
    """X / |X| elementwise; a zero bin gets phase 1 (librosa.magphase's rule)."""
    mag = spec.abs()
    return torch.where(mag > 0, spec / mag.clamp_min(torch.finfo(mag.dtype).tiny), 1)


def griffin_lim(
    magnitude: Tensor,
    n_iters: int = 32,
    n_fft: int | None = None,
    hop_length: int | None = None,
    win_length: int | None = None,
    momentum: float = 0.0,
    initial_phase: Tensor | None = None,
    length: int | None = None,
    window: Tensor | None = None,
) -> Tensor:
    """A waveform whose |STFT| approaches `magnitude` (F, T) or (B, F, T).

    n_fft defaults to 2 (F - 1), hop_length to n_fft // 4, win_length to n_fft and
    window to a periodic Hann of win_length (zero-padded to n_fft). initial_phase:
    angles in radians, shaped like `magnitude` (None: uniform random phases).
    momentum: alpha of fast Griffin-Lim (0: the original algorithm; 0.99 in
    Perraudin et al.). Returns (S,) or (B, S) with S = length, else hop (T - 1).
    """
    mag = torch.as_tensor(magnitude)
    assert mag.dim() in (2, 3) and not mag.is_complex(), (
        f"magnitude must be real (F, T) or (B, F, T), got {tuple(mag.shape)}"
    )
    n_fft = n_fft or 2 * (mag.shape[-2] - 1)
    if n_fft // 2 + 1 != mag.shape[-2]:
        raise ValueError(f"n_fft={n_fft} gives {n_fft // 2 + 1} bins, not {mag.shape}")
    if n_iters < 0 or not 0.0 <= momentum < 1.0:
        raise ValueError(f"need n_iters >= 0 and 0 <= momentum < 1, got {momentum}")
    win_length = win_length or n_fft
    if window is None:
        window = get_window("hann", win_length, periodic=True, dtype=mag.dtype)
    args = (n_fft, hop_length or n_fft // 4, win_length, window.to(mag))
    if initial_phase is None:
        initial_phase = 2 * math.pi * torch.rand(mag.shape, dtype=mag.dtype)
    assert initial_phase.shape == mag.shape, (
        f"initial_phase must be {tuple(mag.shape)}, got {tuple(initial_phase.shape)}"
    )
    angles = torch.polar(torch.ones_like(mag), initial_phase.to(mag))  # (..., F, T)
    previous = mag * angles  # c_0 = t_0
    for _ in range(n_iters):
        # c_n = P_C1(P_C2(t_{n-1})): impose S, then the nearest consistent spectrum
        rebuilt = stft(istft(mag * angles, *args), *args, pad_mode="constant")
        accelerated = rebuilt + momentum * (rebuilt - previous) if momentum else rebuilt
        previous, angles = rebuilt, unit_phase(accelerated)
    return istft(mag * angles, *args, length=length)  # (..., S)


def spectral_convergence(
    wave: Tensor,
    magnitude: Tensor,
    n_fft: int | None = None,
    hop_length: int | None = None,
    win_length: int | None = None,
    window: Tensor | None = None,
) -> Tensor:
    """|| |STFT(wave)| - S ||_F / || S ||_F per item (Griffin & Lim's error measure),
    for wave (S,) or (B, S) and S (F, T) or (B, F, T); STFT settings as in
    `griffin_lim`."""
    n_fft = n_fft or 2 * (magnitude.shape[-2] - 1)
    win_length = win_length or n_fft
    if window is None:
        window = get_window("hann", win_length, periodic=True, dtype=wave.dtype)
    hop = hop_length or n_fft // 4
    spec = stft(wave, n_fft, hop, win_length, window, pad_mode="constant").abs()
    frames = min(spec.shape[-1], magnitude.shape[-1])
    error = spec[..., :frames] - magnitude[..., :frames]  # (..., F, T)
    return error.flatten(-2).norm(dim=-1) / magnitude.flatten(-2).norm(dim=-1)


def mel_to_magnitude(
    mel_log: Tensor,
    filterbank: Tensor,
    mag_power: float = 1.0,
    log_zero_guard_type: str = "clamp",
    log_zero_guard_value: float = 1e-5,
    floor: float = 1e-8,
) -> Tensor:
    """Log-mel (M, T) or (B, M, T) -> linear magnitude |X| (F, T) or (B, F, T).

    Undoes MelSpectrogram's steps 5 and 4: mel = exp(mel_log) (minus the guard for
    the "add" guard type), then |X| ** mag_power = pinv(filterbank) @ mel, clamped at
    `floor` and raised to 1 / mag_power. filterbank is the (M, F) matrix of the
    features (MelSpectrogram.fb).
    """
    assert mel_log.dim() in (2, 3) and mel_log.shape[-2] == filterbank.shape[0], (
        f"mel_log must be (M, T) or (B, M, T) with M={filterbank.shape[0]}, "
        f"got {tuple(mel_log.shape)}"
    )
    if log_zero_guard_type not in ("add", "clamp"):
        raise ValueError(
            f"log_zero_guard_type must be add or clamp, got {log_zero_guard_type!r}"
        )
    mel = torch.exp(mel_log)  # (..., M, T)
    if log_zero_guard_type == "add":
        mel = mel - log_zero_guard_value
    inverse = torch.linalg.pinv(filterbank.to(torch.float64)).to(mel)  # (F, M)
    power = (inverse @ mel).clamp_min(floor)  # (F, M) @ (..., M, T) -> (..., F, T)
    return power if mag_power == 1.0 else power.pow(1.0 / mag_power)


def griffin_lim_from_mel(
    mel_log: Tensor,
    preprocessor,
    n_iters: int = 32,
    momentum: float = 0.99,
    initial_phase: Tensor | None = None,
) -> Tensor:
    """Griffin-Lim as a vocoder: NeMo-style log-mels (B, M, T) made by `preprocessor`
    (a MelSpectrogram) -> waves (B, T * hop), the length a HiFi-GAN gives.

    Uses the preprocessor's filterbank, log guard, mag_power, sizes and (symmetric)
    window. exact_pad frames are centred half a hop later than centred ones
    ((n_fft - hop) / 2 padding instead of n_fft / 2), so the output is delayed by
    hop / 2 samples to line up with the audio the mels came from.
    """
    assert mel_log.dim() == 3, f"mel_log must be (B, M, T), got {tuple(mel_log.shape)}"
    pre = preprocessor
    magnitude = mel_to_magnitude(
        mel_log.float(),
        pre.fb,
        pre.mag_power,
        pre.log_zero_guard_type,
        pre._guard(),
    )  # (B, F, T)
    hop, frames = pre.hop_length, mel_log.shape[-1]
    shift = hop // 2 if pre.exact_pad else 0
    wave = griffin_lim(
        magnitude,
        n_iters,
        pre.n_fft,
        hop,
        pre.win_length,
        momentum,
        initial_phase,
        length=frames * hop - shift,
        window=pre.window,
    )  # (B, T * hop - shift)
    return torch.nn.functional.pad(wave, (shift, 0))  # (B, T * hop)
