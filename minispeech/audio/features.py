"""Log-mel features: NeMo's AudioToMelSpectrogramPreprocessor, written out step by step.

Davis & Mermelstein 1980, "Comparison of parametric representations for monosyllabic
word recognition" (IEEE TASSP 28(4)) for filterbank energies on a mel scale; the
recipe and every default follow NeMo's `AudioToMelSpectrogramPreprocessor` /
`FilterbankFeatures` (nemo/collections/asr/modules/audio_preprocessing.py and
nemo/collections/asr/parts/preprocessing/features.py). For a batch (B, S):
  1. dither: x += dither * N(0, 1) (training mode only);
  2. pre-emphasis: x[n] - preemph * x[n - 1], first sample kept, zero past each length;
  3. STFT with a *symmetric* window of win_length, zero-padded to n_fft, centre
     padding with zeros (pad_mode "constant"): T = S // hop + 1 frames;
  4. |X| ** mag_power, then the Slaney mel filterbank (M, F) @ (F, T);
  5. log(x + guard) or log(max(x, guard));
  6. normalize each utterance over its valid frames (per mel or over all mels, with
     the N - 1 standard deviation plus 1e-5);
  7. frames at or past the length L // hop are set to pad_value (so the last of the
     S // hop + 1 frames is always padding), then T is padded to a multiple of pad_to.
Differs from NeMo: the window and filterbank are computed here (no librosa) and are not
saved in the state dict; NeMo's deprecated `use_torchaudio`, `stft_conv` and
`stft_exact_pad` are accepted and ignored (with a warning), as NeMo itself does;
`pad_to="max"` and fixed-statistics normalization are refused.
"""

import inspect
import math
import random
import warnings

import torch
from torch import Tensor, nn

from minispeech.audio.mel import mel_filterbank
from minispeech.audio.stft import get_window, stft

CONSTANT = 1e-5  # NeMo's std guard and its sqrt guard when gradients flow
_NO_NORMALIZE = (None, False, "", "none", "None", "null", "NA")


def normalize_features(x: Tensor, lens: Tensor, kind: str | None) -> Tensor:
    """Mean 0, std 1: features (B, M, T) over each utterance's valid frames."""
    if kind in _NO_NORMALIZE:
        return x
    valid = torch.arange(x.shape[-1], device=x.device) < lens[:, None]  # (B, T)
    valid = valid[:, None, :]  # (B, 1, T)
    # a per-mel statistic sums over time only; "all_features" also over the M mels
    dims, count = (
        ((2,), lens[:, None]) if kind == "per_feature" else ((1, 2), lens * x.shape[1])
    )
    count = count.to(x.dtype).view(x.shape[0], -1, 1)  # (B, M or 1, 1)
    mean = x.masked_fill(~valid, 0.0).sum(dims, keepdim=True) / count.clamp_min(1)
    centred = (x - mean).masked_fill(~valid, 0.0)
    # N - 1 (unbiased) variance; one frame gives std 0 as NeMo's nan -> 0 rule does
    var = centred.pow(2).sum(dims, keepdim=True) / (count - 1).clamp_min(1)
    return centred / (var.sqrt() + CONSTANT)


def _window_samples(
    seconds: float | None, samples: int | None, sr: int, name: str
) -> int:
    """NeMo's rule: give a size either in seconds or in samples, never both."""
    if seconds and samples:
        raise ValueError(
            f"both {name}={seconds} and n_{name}={samples} were given; pass "
            f"{name}=None to use n_{name}"
        )
    n = int(seconds * sr) if seconds else samples
    if not isinstance(n, int) or n <= 0:
        raise ValueError(f"{name} must give a positive number of samples, got {n!r}")
    return n


def _warn_deprecated(**flags: bool) -> None:
    """NeMo ignores these deprecated switches with a warning; so do we."""
    for key, value in flags.items():
        if value:
            warnings.warn(
                f"MelSpectrogram: {key}=True is deprecated in NeMo and ignored; "
                "features use the one STFT path",
                stacklevel=2,
            )


class MelSpectrogram(nn.Module):
    """Audio (B, S) -> normalized log-mel features (B, M, T), as NeMo computes them.

    Argument names and defaults are NeMo's AudioToMelSpectrogramPreprocessor's (see
    its docstring); `features` is M. `max_duration` and `use_grads` come from NeMo's
    FilterbankFeatures; `rng` (a `random.Random`) drives narrow-band augmentation.
    `max_duration` is accepted for config compatibility and has no effect: NeMo reads
    it only for pad_to="max", which is refused here.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        window_size: float | None = 0.02,
        window_stride: float | None = 0.01,
        n_window_size: int | None = None,
        n_window_stride: int | None = None,
        window: str | None = "hann",
        normalize: str | None = "per_feature",
        n_fft: int | None = None,
        preemph: float | None = 0.97,
        features: int = 64,
        lowfreq: float = 0,
        highfreq: float | None = None,
        log: bool = True,
        log_zero_guard_type: str = "add",
        log_zero_guard_value: float | str = 2**-24,
        dither: float = 1e-5,
        pad_to: int = 16,
        frame_splicing: int = 1,
        exact_pad: bool = False,
        pad_value: float = 0,
        mag_power: float = 2.0,
        rng: random.Random | None = None,
        nb_augmentation_prob: float = 0.0,
        nb_max_freq: float = 4000,
        mel_norm: str | None = "slaney",
        use_torchaudio: bool = False,
        stft_exact_pad: bool = False,
        stft_conv: bool = False,
        use_grads: bool = False,
        max_duration: float = 16.7,
    ):
        super().__init__()
        _warn_deprecated(
            use_torchaudio=use_torchaudio,
            stft_conv=stft_conv,
            stft_exact_pad=stft_exact_pad,
        )
        self.sample_rate = sample_rate
        sizes = (window_size, n_window_size), (window_stride, n_window_stride)
        self.win_length = _window_samples(*sizes[0], sample_rate, "window_size")
        self.hop_length = _window_samples(*sizes[1], sample_rate, "window_stride")
        # n_fft: the next power of two of the window, 0.025 s * 16 kHz = 400 -> 512
        self.n_fft = n_fft or 2 ** math.ceil(math.log2(self.win_length))
        if exact_pad and self.hop_length % 2:
            raise ValueError(f"exact_pad=True needs an even hop, got {self.hop_length}")
        self._check_options(
            normalize, log_zero_guard_type, log_zero_guard_value, pad_to, frame_splicing
        )
        self.exact_pad, self.normalize, self.preemph, self.log = (
            exact_pad, normalize, preemph, log
        )  # fmt: skip
        self.log_zero_guard_type = log_zero_guard_type
        self.log_zero_guard_value = log_zero_guard_value
        self.dither, self.pad_to, self.pad_value = dither, pad_to, pad_value
        self.frame_splicing, self.mag_power = frame_splicing, mag_power
        self.use_grads = use_grads
        self.rng = random.Random() if rng is None else rng
        # narrow-band augmentation: zero the bins at and above nb_max_freq
        too_high = nb_max_freq >= sample_rate / 2
        self.nb_augmentation_prob = 0.0 if too_high else nb_augmentation_prob
        self.nb_max_bin = int(nb_max_freq / sample_rate * self.n_fft)
        # NeMo takes a *symmetric* window ("none" or None: rectangular)
        window = "ones" if window in (None, "none", "ones") else window
        window = get_window(window, self.win_length, periodic=False)  # (win_length,)
        self.register_buffer("window", window, persistent=False)
        f_max = highfreq or sample_rate / 2
        fb = mel_filterbank(
            sample_rate, self.n_fft, features, lowfreq, f_max, norm=mel_norm
        )
        self.register_buffer("fb", fb, persistent=False)  # (M, F)

    @staticmethod
    def _check_options(
        normalize, guard_type, guard_value, pad_to, frame_splicing
    ) -> None:
        if normalize not in _NO_NORMALIZE + ("per_feature", "all_features"):
            raise ValueError(
                f"normalize must be 'per_feature', 'all_features' or None "
                f"(fixed statistics are not supported), got {normalize!r}"
            )
        if guard_type not in ("add", "clamp"):
            raise ValueError(
                f"log_zero_guard_type must be 'add' or 'clamp', got {guard_type!r}"
            )
        if isinstance(guard_value, str) and guard_value not in ("tiny", "eps"):
            raise ValueError(
                f"log_zero_guard_value must be a number, 'tiny' or 'eps', "
                f"got {guard_value!r}"
            )
        if not isinstance(pad_to, int) or pad_to < 0:
            raise ValueError(
                f"pad_to must be an int >= 0 ('max' is not supported), got {pad_to!r}"
            )
        if not isinstance(frame_splicing, int) or frame_splicing < 1:
            raise ValueError(
                f"frame_splicing must be an int >= 1, got {frame_splicing!r}"
            )

    @classmethod
    def from_config(cls, cfg: dict) -> "MelSpectrogram":
        """Build from a NeMo `preprocessor:` config section, ignoring its `_target_`."""
        known = set(inspect.signature(cls.__init__).parameters) - {"self"}
        unknown = sorted(set(cfg) - known - {"_target_"})
        if unknown:
            raise ValueError(
                f"MelSpectrogram: unknown preprocessor key(s) {unknown}; "
                f"valid keys: {sorted(known)}"
            )
        return cls(**{k: v for k, v in cfg.items() if k != "_target_"})

    def feature_lens(self, audio_lens: Tensor) -> Tensor:
        """Valid frames per utterance: L // hop (NeMo: one less than computed)."""
        pad = (self.n_fft - self.hop_length) // 2 if self.exact_pad else self.n_fft // 2
        lens = torch.div(
            audio_lens + 2 * pad - self.n_fft, self.hop_length, rounding_mode="floor"
        )
        return torch.where(audio_lens == 0, 0, lens).long()

    def _guard(self) -> float:
        if self.log_zero_guard_value == "tiny":
            return torch.finfo(torch.float32).tiny
        if self.log_zero_guard_value == "eps":
            return torch.finfo(torch.float32).eps
        return self.log_zero_guard_value

    def _waveform(self, audio: Tensor, audio_lens: Tensor) -> Tensor:
        """Steps 1-2: exact-pad, dither and pre-emphasis of the samples (B, S)."""
        if self.exact_pad:  # then stft runs with center=False
            pad = (self.n_fft - self.hop_length) // 2
            audio = nn.functional.pad(audio, (pad, pad))  # (B, S + 2 pad)
        if self.training and self.dither > 0:
            audio = audio + self.dither * torch.randn_like(audio)
        if self.preemph is not None:
            audio = torch.cat(
                [audio[:, :1], audio[:, 1:] - self.preemph * audio[:, :-1]], 1
            )
            # NeMo masks by the unpadded length, also with exact_pad; kept for parity
            samples = torch.arange(audio.shape[1], device=audio.device)  # (S,)
            audio = audio.masked_fill(samples >= audio_lens[:, None], 0.0)
        return audio

    def _power_spectrum(self, audio: Tensor) -> Tensor:
        """Steps 3-4 (first half): |STFT| ** mag_power, (B, S) -> (B, F, T)."""
        # (B, S) -> complex (B, F, T)
        spec = stft(
            audio,
            self.n_fft,
            self.hop_length,
            self.win_length,
            self.window,
            center=not self.exact_pad,
            pad_mode="constant",
        )
        # |X|^2 = re^2 + im^2 from the two planes: summing view_as_real's last dim
        # (size 2) is a reduction kernel that runs 3-4x slower on the CPU
        power = torch.addcmul(spec.real.square(), spec.imag, spec.imag)  # (B, F, T)
        guard = CONSTANT if self.use_grads else 0.0  # keeps sqrt differentiable at 0
        if self.mag_power == 2.0 and not guard:
            out = power  # sqrt, then square: the same values up to rounding
        else:
            mag = torch.sqrt(power + guard)
            out = mag.pow(self.mag_power) if self.mag_power != 1.0 else mag
        if self.training and self.nb_augmentation_prob > 0:
            out = self._narrow_band(out)  # zeroed bins stay 0 under any power
        return out

    def _narrow_band(self, mag: Tensor) -> Tensor:
        """Zero the bins >= nb_max_freq of each utterance with nb_augmentation_prob."""
        # one coin per utterance from the Python rng, as NeMo draws them
        p = self.nb_augmentation_prob
        coins = torch.tensor([self.rng.random() < p for _ in range(len(mag))])
        high = torch.arange(mag.shape[1]) >= self.nb_max_bin  # (F,)
        drop = coins[:, None] & high  # (B, F)
        return mag.masked_fill(drop.to(mag.device)[:, :, None], 0.0)  # (B, F, T)

    def forward(self, audio: Tensor, audio_lens: Tensor) -> tuple[Tensor, Tensor]:
        """audio (B, S), audio_lens (B,) -> (feats (B, M, T), feat_lens (B,))."""
        assert audio.dim() == 2, f"audio must be (B, S), got shape {tuple(audio.shape)}"
        assert audio_lens.shape == audio.shape[:1], (
            f"audio_lens must be ({audio.shape[0]},), got {tuple(audio_lens.shape)}"
        )
        if (audio_lens > audio.shape[1]).any() or (audio_lens < 0).any():
            raise ValueError(
                f"audio_lens must be in 0..{audio.shape[1]}, got {audio_lens.tolist()}"
            )
        with (
            torch.set_grad_enabled(self.use_grads and torch.is_grad_enabled()),
            torch.autocast(audio.device.type, enabled=False),
        ):
            return self._features(audio.float(), audio_lens)

    def _features(self, audio: Tensor, audio_lens: Tensor) -> tuple[Tensor, Tensor]:
        feat_lens = self.feature_lens(audio_lens)  # (B,)
        x = self._power_spectrum(self._waveform(audio, audio_lens))  # (B, F, T)
        x = torch.matmul(self.fb.float(), x)  # (M, F) @ (B, F, T) -> (B, M, T)
        if self.log and self.log_zero_guard_type == "add":
            x = torch.log(x + self._guard())
        elif self.log:
            x = torch.log(x.clamp_min(self._guard()))
        if self.frame_splicing > 1:
            # NeMo's splice_frames concatenates *unshifted* copies; reproduced as is
            x = x.repeat(1, self.frame_splicing, 1)  # (B, M * frame_splicing, T)
        x = normalize_features(x, feat_lens, self.normalize)
        frames = torch.arange(x.shape[-1], device=x.device)  # (T,)
        padding = frames >= feat_lens[:, None]  # (B, T)
        x = x.masked_fill(padding[:, None, :], self.pad_value)
        if self.pad_to > 0 and x.shape[-1] % self.pad_to:
            extra = self.pad_to - x.shape[-1] % self.pad_to
            x = nn.functional.pad(x, (0, extra), value=self.pad_value)  # (B, M, T)
        return x, feat_lens
