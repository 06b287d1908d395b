"""Vocal tract length perturbation (VTLP) on mel features: new speakers for free.

Jaitly & Hinton 2013, "Vocal Tract Length Perturbation (VTLP) improves speech
recognition", ICML Workshop on Deep Learning for Audio, Speech and Language, Eq. 1:
each utterance draws a warp factor alpha and frequencies move by the piecewise-linear
map

    W(f) = f * alpha                               f <= F_hi * min(alpha, 1) / alpha
    W(f) = S/2 - (S/2 - F_hi min(alpha, 1)) / (S/2 - F_hi min(alpha, 1) / alpha)
                 * (S/2 - f)

(S the sample rate, F_hi = 4800 Hz), which keeps 0 and Nyquist fixed. A longer or
shorter vocal tract scales the formants by about that factor, so the model sees more
voices.
Differs from the paper: the warp is applied to the finished (B, M, T) features, by
reading each mel channel at W(its centre frequency) with linear interpolation between
neighbouring channels, instead of warping the filterbank; it costs one gather per batch.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from minispeech.audio.mel import hz_to_mel, mel_points


def vtlp_warp(
    freqs: Tensor, alpha: Tensor, sample_rate: float, f_hi: float = 4800.0
) -> Tensor:
    """W(f), Jaitly & Hinton 2013 Eq. 1: Hz (..., M), alpha (..., 1) -> Hz (..., M)."""
    nyquist = sample_rate / 2
    knee = f_hi * alpha.clamp(max=1.0) / alpha  # (..., 1)
    high = nyquist - (nyquist - f_hi * alpha.clamp(max=1.0)) / (nyquist - knee) * (
        nyquist - freqs
    )
    return torch.where(freqs <= knee, freqs * alpha, high)


class FrequencyWarp(nn.Module):
    """Random VTLP of features (B, M, T): factor ~ U[min_factor, max_factor] per
    utterance, applied with probability `prob`. Mel layout as MelSpectrogram's."""

    def __init__(
        self,
        sample_rate: int = 16000,
        features: int = 64,
        lowfreq: float = 0.0,
        highfreq: float | None = None,
        min_factor: float = 0.9,
        max_factor: float = 1.1,
        boundary_hz: float = 4800.0,
        prob: float = 1.0,
    ):
        super().__init__()
        if not 0 < min_factor <= max_factor:
            raise ValueError(
                "FrequencyWarp: need 0 < min_factor <= max_factor, "
                f"got {min_factor}, {max_factor}"
            )
        self.sample_rate, self.boundary_hz, self.prob = sample_rate, boundary_hz, prob
        self.min_factor, self.max_factor = min_factor, max_factor
        # the M+2 corner frequencies (Hz) of the mel triangles
        corners = mel_points(features, lowfreq, highfreq or sample_rate / 2)
        mels = hz_to_mel(corners)  # (M+2,) evenly spaced
        self.register_buffer("centers", corners[1:-1].float(), persistent=False)  # (M,)
        self.mel_lo, self.mel_step = float(mels[1]), float(mels[2] - mels[1])

    def source_index(self, alpha: Tensor) -> Tensor:
        """alpha (B,) -> the fractional input channel of each output channel (B, M)."""
        src_hz = vtlp_warp(
            self.centers[None], alpha[:, None], self.sample_rate, self.boundary_hz
        )
        index = (hz_to_mel(src_hz.double()) - self.mel_lo) / self.mel_step  # (B, M)
        return index.float().clamp(0, self.centers.numel() - 1)

    def forward(
        self, feats: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """feats (B, M, T) -> warped feats (B, M, T)."""
        assert feats.dim() == 3 and feats.shape[1] == self.centers.numel(), (
            f"feats must be (B, {self.centers.numel()}, T), got {tuple(feats.shape)}"
        )
        n_batch = feats.shape[0]
        u = torch.rand(n_batch, generator=generator, device=feats.device)  # (B,)
        alpha = self.min_factor + (self.max_factor - self.min_factor) * u  # (B,)
        keep = (
            torch.rand(n_batch, generator=generator, device=feats.device) >= self.prob
        )
        alpha = torch.where(keep, torch.ones_like(alpha), alpha)
        index = self.source_index(alpha)  # (B, M)
        lo = index.floor().long().clamp(max=feats.shape[1] - 2)  # (B, M)
        frac = (index - lo)[:, :, None]  # (B, M, 1)
        lo_t = lo[:, :, None].expand(-1, -1, feats.shape[2])  # (B, M, T)
        lower, upper = feats.gather(1, lo_t), feats.gather(1, lo_t + 1)  # (B, M, T)
        return (1 - frac) * lower + frac * upper  # (B, M, T)
