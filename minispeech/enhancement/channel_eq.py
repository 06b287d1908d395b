"""Random channel equalisation: one augmentation for training enhancement models.

A recording reaches the model through a microphone, a room and a codec, each a filter
with its own frequency response. `ChannelEQ` draws one such response per training
pair and applies it to the noisy input and the clean target alike, so the task (find
the speech in the mixture) is unchanged while the spectra of both speech and noise
vary. White, pink and babble noise then lose their one fixed spectral shape, so the
estimator cannot tell noise from speech by where the energy sits in frequency alone
and must lean on how each behaves over time: a steady hum or rumble it never heard is
still steady. This is channel augmentation: a random microphone colouring, the
spectral part of what room-impulse-response augmentation does (Ko et al. 2017, "A
study on data augmentation of reverberant speech for robust speech recognition",
ICASSP) without the reverberation; the noise kinds stay the training ones.

The gain in dB over frequency f (f in octaves from 1 kHz: o = log2(f / 1000 Hz)):

    g(f) = s * o + sum_k a_k exp(-(o - c_k)^2 / (2 w_k^2))

a tilt s ~ U(-max_tilt_db, max_tilt_db) dB per octave and `bumps` Gaussian bumps on the
log-frequency axis, centres c_k log-uniform over [min_hz, max_hz], widths w_k ~
U(0.25, 1.5) octaves, gains a_k ~ U(-max_gain_db, max_gain_db); g is clamped to
+-max_total_db. The filter is zero-phase (a real gain on each rfft bin of the whole
crop, a circular convolution whose smooth response keeps its impulse response short).
Both signals are then scaled by one factor that keeps the noisy input's power, so
the equaliser does not change the input level. Each pair is filtered with
probability `probability`; the draws come from torch's global generator, which the
training loop seeds and saves.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from minispeech.core.config import ConfigError


class ChannelEQ:
    """(noisy (B, S), clean (B, S)) -> both through one random response per pair."""

    def __init__(
        self,
        sample_rate: int = 16000,
        probability: float = 0.5,
        bumps: int = 3,
        max_gain_db: float = 12.0,
        max_tilt_db: float = 3.0,
        max_total_db: float = 18.0,
        min_hz: float = 50.0,
        max_hz: float = 7000.0,
    ):
        if not 0.0 <= probability <= 1.0:
            raise ConfigError(f"channel_eq.probability: in [0, 1], got {probability}")
        if not 0.0 < min_hz < max_hz <= sample_rate / 2:
            raise ConfigError(
                f"channel_eq: need 0 < min_hz < max_hz <= {sample_rate / 2:g} Hz, "
                f"got {min_hz} and {max_hz}"
            )
        if bumps < 0 or min(max_gain_db, max_tilt_db, max_total_db) < 0:
            raise ConfigError("channel_eq: bumps and the dB limits must be >= 0")
        self.sample_rate, self.probability = int(sample_rate), float(probability)
        self.bumps, self.max_gain_db = int(bumps), float(max_gain_db)
        self.max_tilt_db, self.max_total_db = float(max_tilt_db), float(max_total_db)
        self.octave_range = (math.log2(min_hz / 1000.0), math.log2(max_hz / 1000.0))

    def gains_db(self, batch: int, n_bins: int) -> Tensor:
        """Random responses in dB on the rfft bins of a signal, (B, n_bins); the rows
        of pairs left unfiltered are 0."""
        lo, hi = self.octave_range
        gains = response_db(
            bin_octaves(n_bins, self.sample_rate),
            tilt=uniform((batch,), self.max_tilt_db),
            centres=lo + (hi - lo) * torch.rand(batch, self.bumps),
            widths=0.25 + 1.25 * torch.rand(batch, self.bumps),
            heights=uniform((batch, self.bumps), self.max_gain_db),
            max_total_db=self.max_total_db,
        )  # (B, F)
        chosen = torch.rand(batch, 1) < self.probability  # (B, 1)
        return gains * chosen

    def __call__(
        self, noisy: Tensor, clean: Tensor, lengths: Tensor
    ) -> tuple[Tensor, Tensor]:
        """noisy, clean (B, S) or (B, C, S), lengths (B,) -> both filtered, the
        noisy power kept, samples past each length 0."""
        n = noisy.size(-1)
        gain_db = self.gains_db(noisy.size(0), n // 2 + 1).to(noisy.device)  # (B, F)
        valid = torch.arange(n, device=noisy.device) < lengths[:, None]  # (B, S)
        out = []
        for x in (noisy, clean):
            extra = (1,) * (x.dim() - 2)  # channel axes
            gain = (10.0 ** (gain_db / 20.0)).view(x.size(0), *extra, -1)
            y = torch.fft.irfft(torch.fft.rfft(x) * gain, n=n)
            out.append(y * valid.view(x.size(0), *extra, n))
        power_in = noisy.pow(2).flatten(1).sum(1)  # (B,)
        power_out = out[0].pow(2).flatten(1).sum(1).clamp(min=1e-20)
        scale = (power_in / power_out).sqrt()  # (B,)
        return tuple(y * scale.view(-1, *(1,) * (y.dim() - 1)) for y in out)


def bin_octaves(n_bins: int, sample_rate: int, dtype=torch.float32) -> Tensor:
    """Octaves from 1 kHz of the rfft bins 0 .. sample_rate / 2, (n_bins,); bins
    below 10 Hz count as 10 Hz (DC has no octave)."""
    freqs = torch.linspace(0.0, sample_rate / 2, n_bins, dtype=dtype)  # (F,) Hz
    return torch.log2(freqs.clamp(min=10.0) / 1000.0)


def response_db(
    octaves: Tensor,
    tilt: Tensor,
    centres: Tensor,
    widths: Tensor,
    heights: Tensor,
    max_total_db: float,
) -> Tensor:
    """g(o) = tilt * o + sum_k heights_k exp(-(o - centres_k)^2 / (2 widths_k^2)),
    clamped to +-max_total_db: octaves (F,), tilt (B,), the bumps (B, K) -> (B, F)."""
    bumps = heights[..., None] * torch.exp(
        -0.5 * ((octaves - centres[..., None]) / widths[..., None]) ** 2
    )  # (B, K, F)
    gains = tilt[:, None] * octaves + bumps.sum(1)  # (B, F)
    return gains.clamp(-max_total_db, max_total_db)


def uniform(shape: tuple, half_width: float) -> Tensor:
    """U(-half_width, half_width) of `shape`."""
    return (2.0 * torch.rand(shape) - 1.0) * half_width
