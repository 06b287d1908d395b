"""Analysis and synthesis transforms of mask-based enhancement: STFT in, iSTFT out.

Allen & Rabiner 1977, "A unified approach to short-time Fourier analysis and
synthesis" (Proc. IEEE 65(11)): a periodic Hann window of length fft_length, frames
every hop_length samples, the least-squares overlap-add inverse (minispeech/audio/
stft.py). NeMo's conventions (nemo/collections/audio/modules/transforms.py,
AudioToSpectrogram and SpectrogramToAudio), kept exactly so that a NeMo model imports:

    frames   T = S // hop + 1         centred STFT, zero (constant) padding
    samples  S' = (T - 1) * hop       centred iSTFT of T frames (8800 -> 35 -> 8704)

Frames at or past a signal's T are set to 0, and each utterance of a batch is
inverted from its own T valid frames, then zero-padded past its S'. Optional magnitude
compression |X|^p (`magnitude_power`) and a gain (`scale`) on the analysis side are
undone on the synthesis side. Differs from NeMo: 1) the FFT is minispeech's own
(`stft`/`istft`, torch's numbers to float precision); 2) NeMo inverts the padded
batch at once, so with hop < fft_length / 2 the last fft_length / 2 - hop valid
samples of a shorter utterance are also divided by the windows of the zeroed frames
after it (attenuated), and an utterance decodes differently alone and in a batch.
With hop = fft_length / 2 (NeMo's masking.yaml, 512/256) the two agree.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minispeech.audio.stft import get_window, istft, stft
from minispeech.nn.attention import padding_mask


def _check(fft_length: int, magnitude_power: float, scale: float) -> None:
    if fft_length % 2 != 0:
        raise ValueError(f"fft_length = {fft_length} must be even")
    if magnitude_power <= 0:
        raise ValueError(f"magnitude_power must be > 0, got {magnitude_power}")
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")


class _StftSettings(nn.Module):
    """What both transforms hold: STFT sizes, NeMo's magnitude power and scale, and
    the Hann window, a buffer as in NeMo's state dict (`encoder.window`)."""

    def __init__(
        self,
        fft_length: int = 512,
        hop_length: int = 256,
        magnitude_power: float = 1.0,
        scale: float = 1.0,
    ):
        super().__init__()
        _check(fft_length, magnitude_power, scale)
        self.fft_length, self.hop_length = fft_length, hop_length
        self.magnitude_power, self.scale = magnitude_power, scale
        self.num_subbands = fft_length // 2 + 1  # F
        self.register_buffer("window", get_window("hann", fft_length))


class AudioToSpectrogram(_StftSettings):
    """audio (B, C, S), audio_lens (B,) -> complex spec (B, C, F, T), spec_lens (B,)."""

    def output_length(self, audio_lens: Tensor) -> Tensor:
        """Valid frames of a centred STFT: S // hop + 1."""
        return audio_lens.div(self.hop_length, rounding_mode="floor").add(1).long()

    def forward(
        self, audio: Tensor, audio_lens: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        assert audio.dim() in (2, 3), f"audio must be (B, [C,] S), got {audio.shape}"
        b, s = audio.size(0), audio.size(-1)
        audio = audio.reshape(b, -1, s).float()  # (B, C, S)
        spec = stft(
            audio,
            self.fft_length,
            self.hop_length,
            window=self.window,
            center=True,
            pad_mode="constant",
        )  # (B, C, F, T)
        if self.magnitude_power != 1:  # |X|^p with the phase kept
            spec = torch.polar(spec.abs().pow(self.magnitude_power), spec.angle())
        if self.scale != 1:
            spec = self.scale * spec
        if audio_lens is None:  # every frame valid
            return spec, torch.full((b,), spec.size(-1), device=spec.device)
        spec_lens = self.output_length(audio_lens)
        valid = padding_mask(spec_lens, spec.size(-1))  # (B, T)
        return spec * valid[:, None, None, :], spec_lens  # (B, C, F, T)


class SpectrogramToAudio(_StftSettings):
    """complex spec (B, C, F, T), spec_lens (B,) -> audio (B, C, S'), lens (B,)."""

    def output_length(self, spec_lens: Tensor) -> Tensor:
        """Valid samples of a centred iSTFT of T frames: (T - 1) * hop."""
        return spec_lens.sub(1).mul(self.hop_length).long()

    def forward(
        self, spec: Tensor, spec_lens: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        assert spec.is_complex(), f"spec must be complex, got {spec.dtype}"
        b, f, t = spec.size(0), spec.size(-2), spec.size(-1)
        assert f == self.num_subbands, f"expected F={self.num_subbands}, got {f}"
        spec = spec.reshape(b, -1, f, t).to(torch.complex64)  # (B, C, F, T)
        if self.scale != 1:
            spec = spec / self.scale
        if self.magnitude_power != 1:  # undo the compression: |X|^(1/p)
            spec = torch.polar(spec.abs().pow(1 / self.magnitude_power), spec.angle())
        if spec_lens is None:  # every frame valid
            audio = self.istft(spec)  # (B, C, (T - 1) * hop)
            return audio, torch.full((b,), audio.size(-1), device=audio.device)
        # each utterance from its own valid frames (T_b - 1) * hop samples, zero-padded
        audio_lens = self.output_length(spec_lens)
        n_samples = (t - 1) * self.hop_length
        audio = torch.stack(
            [
                F.pad(
                    self.istft(spec[i, :, :, :n]),
                    (0, n_samples - (n - 1) * self.hop_length),
                )
                for i, n in enumerate(spec_lens.tolist())
            ]
        )  # (B, C, (T - 1) * hop)
        return audio, audio_lens

    def istft(self, spec: Tensor) -> Tensor:
        """(..., F, T) -> (..., (T - 1) * hop): centred, Hann, least squares."""
        return istft(
            spec, self.fft_length, self.hop_length, window=self.window, center=True
        )
