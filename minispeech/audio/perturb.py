"""Waveform augmentation for training: speed perturbation, pitch shift, additive noise.

- Speed perturbation (Ko et al. 2015, "Audio Augmentation for Speech Recognition",
  Interspeech): play the waveform `factor` times faster by resampling it from
  sr * factor to sr; tempo and pitch both change, as on a tape.
- Pitch shift: time-stretch by a phase vocoder (Flanagan & Golden 1966; phase locking
  left out, Laroche & Dolson 1999 Sec. 2), then resample, so the length is kept and
  the pitch moves by `semitones` (factor 2^(semitones / 12)).
- Noise: white or pink noise (minispeech/audio/noise.py) at an SNR drawn per utterance,
  or babble: the sum of `babble_speakers` other utterances of the dataset, which the
  dataset hands over as `babble_source` (a speaker model learns to follow the
  loudest voice among other voices, as in a room).
- Echo: a feedback comb filter y[t] = x[t] + g y[t - d] (Schroeder 1962, "Natural
  sounding artificial reverberation", J. Audio Eng. Soc. 10(3), Fig. 2), the building
  block of artificial reverberation: a room or a synthesizer's echo setting.

`AudioAugmentor` draws the random choices from torch's global generator, which the
training loop seeds and saves, so an augmented run resumes exactly.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import torch
from torch import Tensor

from minispeech.audio.resample import resample
from minispeech.audio.stft import get_window, istft, stft


def speed_perturb(wave: Tensor, factor: float, max_denominator: int = 100) -> Tensor:
    """wave (..., S) -> (..., ~S / factor): `factor` > 1 is faster and higher."""
    ratio = Fraction(factor).limit_denominator(max_denominator)  # sr*factor / sr
    if ratio == 1:
        return wave.clone()
    return resample(wave, ratio.numerator, ratio.denominator)


def time_stretch(wave: Tensor, rate: float, n_fft: int = 512, hop: int = 128) -> Tensor:
    """Phase-vocoder time stretch of wave (S,): `rate` > 1 is shorter (faster).

    Output frame k reads input position k * rate (in frames): magnitudes are
    interpolated between the two nearest input frames, and the phase advances by the
    measured instantaneous frequency of each bin (Flanagan & Golden 1966).
    """
    # float64: the phase is a running sum over thousands of frames
    x = wave.double()
    window = get_window("hann", n_fft, dtype=x.dtype).to(x.device)
    spec = stft(x, n_fft, hop, window=window)  # (F, T) complex
    n_bins, n_frames = spec.shape
    steps = torch.arange(0, n_frames - 1, rate, dtype=x.dtype, device=x.device)  # (T2,)
    left = steps.floor().long()  # (T2,)
    alpha = steps - left  # (T2,)
    mag = (1 - alpha) * spec[:, left].abs() + alpha * spec[:, left + 1].abs()  # (F, T2)
    # expected phase advance per hop for each bin, then the measured deviation
    omega = 2 * math.pi * hop * torch.arange(n_bins, device=wave.device) / n_fft  # (F,)
    delta = spec[:, left + 1].angle() - spec[:, left].angle()  # (F, T2)
    delta = delta - omega[:, None]
    delta = delta - 2 * math.pi * torch.round(delta / (2 * math.pi))  # to [-pi, pi]
    advance = omega[:, None] + delta  # (F, T2)
    phase = spec[:, :1].angle() + torch.cumsum(advance, dim=1) - advance  # (F, T2)
    out = torch.polar(mag, phase)  # (F, T2)
    length = int(round(wave.numel() / rate))
    stretched = istft(out, n_fft, hop, window=window, length=length)  # (S / rate,)
    return stretched.to(wave.dtype)


def pitch_shift(wave: Tensor, semitones: float) -> Tensor:
    """wave (S,) -> (S,) with the pitch moved by `semitones`, the tempo kept."""
    if semitones == 0:
        return wave.clone()
    factor = 2.0 ** (semitones / 12)
    stretched = time_stretch(wave, 1.0 / factor)  # (S * factor,) same pitch, slower
    shifted = speed_perturb(stretched, factor)  # (~S,) back to speed, pitch * factor
    out = torch.zeros_like(wave)
    n = min(out.numel(), shifted.numel())
    out[:n] = shifted[:n]
    return out


def add_noise(
    wave: Tensor, snr_db: float, kind: str, rng: np.random.Generator
) -> Tensor:
    """wave (S,) + white or pink noise scaled to `snr_db` (energy over the clip)."""
    from minispeech.audio.noise import pink_noise, scale_to_snr, white_noise

    makers = {"white": white_noise, "pink": pink_noise}
    if kind not in makers:
        raise ValueError(f"noise kind {kind!r}: use one of {sorted(makers)}")
    clean = wave.double().numpy()
    noise = scale_to_snr(clean, makers[kind](clean.size, rng), snr_db)
    return torch.from_numpy(clean + noise).to(wave.dtype)


def add_echo(wave: Tensor, delay: int, gain: float, n_echoes: int = 8) -> Tensor:
    """wave (S,) -> (S,): y[t] = sum_k gain^k x[t - k delay], the feedback comb filter
    truncated after `n_echoes` (gain^k is below 1% by then for gain <= 0.55)."""
    if not 0 <= gain < 1 or delay < 1:
        raise ValueError(
            f"echo needs 0 <= gain < 1 and delay >= 1 sample, got {gain}, {delay}"
        )
    out = wave.clone()
    for k in range(1, n_echoes + 1):
        shift = k * delay
        if shift >= wave.numel():
            break
        out[shift:] += gain**k * wave[:-shift]
    return out


class AudioAugmentor:
    """Random waveform augmentation for one utterance, from a dataset config section.

    speed: [min, max] factor or null; pitch: [min, max] semitones or null;
    noise_snr_db: [min, max] or null; noise_kinds: which noises (white, pink, babble);
    babble_speakers: utterances summed into babble; echo_delay_ms and
    echo_gain: [min, max] each, or null; prob: chance that each augmentation is applied
    to an utterance; sample_rate: of the waves (for the echo delay).
    """

    def __init__(
        self,
        speed=None,
        pitch=None,
        noise_snr_db=None,
        noise_kinds=("white", "pink"),
        babble_speakers: int = 3,
        echo_delay_ms=None,
        echo_gain=None,
        prob: float = 0.5,
        sample_rate: int = 16000,
    ):
        if (echo_delay_ms is None) != (echo_gain is None):
            raise ValueError(
                "augmentor: give both echo_delay_ms and echo_gain, or neither"
            )
        self.echo_delay_ms, self.echo_gain = echo_delay_ms, echo_gain
        self.sample_rate = sample_rate
        bounds = (
            ("speed", speed),
            ("pitch", pitch),
            ("noise_snr_db", noise_snr_db),
            ("echo_delay_ms", echo_delay_ms),
            ("echo_gain", echo_gain),
        )
        for name, value in bounds:
            if value is not None and (len(value) != 2 or value[0] > value[1]):
                raise ValueError(f"augmentor.{name} must be [min, max], got {value!r}")
        self.speed, self.pitch, self.noise_snr_db = speed, pitch, noise_snr_db
        self.noise_kinds, self.prob = list(noise_kinds), float(prob)
        unknown = set(self.noise_kinds) - {"white", "pink", "babble"}
        if unknown:
            raise ValueError(
                f"augmentor.noise_kinds: {sorted(unknown)} unknown; use white, pink "
                "or babble"
            )
        self.babble_speakers = int(babble_speakers)
        # babble_source(n) -> n waves (S_i,) of other utterances; the dataset sets it
        self.babble_source = None

    def _draw(self, bounds) -> float | None:
        """A uniform draw in `bounds` with probability `prob`, else None."""
        if bounds is None or float(torch.rand(())) >= self.prob:
            return None
        return bounds[0] + (bounds[1] - bounds[0]) * float(torch.rand(()))

    def __call__(self, wave: Tensor) -> Tensor:
        """wave (S,) -> augmented (S',)."""
        factor = self._draw(self.speed)
        if factor is not None:
            wave = speed_perturb(wave, factor)
        semitones = self._draw(self.pitch)
        if semitones is not None:
            wave = pitch_shift(wave, semitones)
        delay_ms = self._draw(self.echo_delay_ms)
        if delay_ms is not None:
            gain = self.echo_gain[0] + (self.echo_gain[1] - self.echo_gain[0]) * float(
                torch.rand(())
            )
            wave = add_echo(
                wave, max(1, round(delay_ms * self.sample_rate / 1000)), gain
            )
        snr = self._draw(self.noise_snr_db)
        if snr is not None:
            kind = self.noise_kinds[int(torch.randint(len(self.noise_kinds), ()))]
            rng = np.random.default_rng(int(torch.randint(2**31 - 1, ())))
            if kind == "babble":
                wave = self.add_babble(wave, snr, rng)
            else:
                wave = add_noise(wave, snr, kind, rng)
        return wave

    def add_babble(self, wave: Tensor, snr_db: float, rng) -> Tensor:
        """wave (S,) + babble of `babble_speakers` other utterances at `snr_db`."""
        from minispeech.audio.noise import babble_noise, scale_to_snr

        if self.babble_source is None:
            raise ValueError(
                "augmentor: babble noise needs a dataset that supplies other "
                "utterances (babble_source)"
            )
        others = [w.double().numpy() for w in self.babble_source(self.babble_speakers)]
        clean = wave.double().numpy()
        noise = scale_to_snr(clean, babble_noise(others, clean.size, rng), snr_db)
        return torch.from_numpy(clean + noise).to(wave.dtype)
