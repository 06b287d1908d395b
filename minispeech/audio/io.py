"""Reading and writing audio files: a thin, strict layer over soundfile (libsndfile).

`load_audio` seeks to `offset` and decodes only the frames asked for, converts any
PCM or float format to float32 (PCM maps to [-1, 1)), mixes down to mono by
averaging channels, and resamples with the windowed-sinc `resample` when asked
for another rate. `audio_info` reads the header only. `save_audio` writes WAV,
FLAC or OGG (Vorbis/Opus) chosen by the file extension, through a temporary file
that is renamed into place, so a failed write leaves an existing file as it was.

Every failure raises `AudioError` naming the file and the problem, before any
work is done on bad data: a missing file, bytes libsndfile cannot parse, no
audio frames, an offset past the end, a negative offset or duration, NaN/inf
samples in a float file.

Differences from torchaudio/librosa: float files are returned as stored (values
beyond [-1, 1] are neither clipped nor rescaled, so levels never change
silently), and a request that runs past the end of the file is shortened to
the frames that exist (manifests round durations) rather than padded.
"""

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from minispeech.audio.resample import resample
from minispeech.errors import MinispeechError

# Extension -> (libsndfile container, default subtype). PCM_16 is the speech default.
FORMATS = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
    ".opus": ("OGG", "OPUS"),
}
_FLOAT_SUBTYPES = {"FLOAT", "DOUBLE"}


class AudioError(MinispeechError):
    """An audio file could not be read or written; the message names the file."""


@dataclass(frozen=True)
class AudioInfo:
    """What the header of an audio file says."""

    sample_rate: int  # frames per second
    num_frames: int  # samples per channel
    num_channels: int  # 1 mono, 2 stereo, ...
    duration: float  # seconds: num_frames / sample_rate


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Read the header of `path` (no samples are decoded)."""
    path = _existing_file(path)
    try:
        info = sf.info(str(path))
    except sf.SoundFileError as error:
        raise AudioError(
            f"{path}: not a readable audio file ({_reason(error)})"
        ) from None
    if info.frames <= 0:
        raise AudioError(f"{path}: empty audio (0 frames)")
    return AudioInfo(
        sample_rate=info.samplerate,
        num_frames=info.frames,
        num_channels=info.channels,
        duration=info.frames / info.samplerate,
    )


def load_audio(
    path: str | os.PathLike,
    sample_rate: int | None = None,
    offset: float = 0.0,
    duration: float | None = None,
    mono: bool = True,
) -> tuple[torch.Tensor, int]:
    """Read `duration` seconds from `offset` -> (float32 (S,) if mono else (C, S), sr).

    `sample_rate=None` keeps the file's rate; any other rate is reached with
    `resample`. The returned rate is always the rate of the returned samples.
    """
    path = _existing_file(path)
    _check_request(path, sample_rate, offset, duration)
    try:
        with sf.SoundFile(str(path)) as f:
            samples, file_sr = _read_frames(f, path, offset, duration)  # (S, C)
    except sf.SoundFileError as error:
        raise AudioError(
            f"{path}: not a readable audio file ({_reason(error)})"
        ) from None
    wave = torch.from_numpy(np.ascontiguousarray(samples.T))  # (C, S)
    if mono:
        wave = wave.mean(dim=0)  # (S,)
    if sample_rate is not None and int(sample_rate) != file_sr:
        wave = resample(wave, file_sr, int(sample_rate))  # (..., S')
        return wave, int(sample_rate)
    return wave, file_sr


def _check_request(path: Path, sample_rate, offset, duration) -> None:
    """Refuse impossible arguments before the file is opened."""
    if offset < 0 or not math.isfinite(offset):
        raise AudioError(f"{path}: offset must be a finite number >= 0, got {offset}")
    if duration is not None and (duration <= 0 or not math.isfinite(duration)):
        raise AudioError(
            f"{path}: duration must be a finite number > 0, got {duration}"
        )
    if sample_rate is not None and (
        int(sample_rate) != sample_rate or sample_rate <= 0
    ):
        raise AudioError(
            f"{path}: sample_rate must be a positive integer, got {sample_rate}"
        )


def _read_frames(f: sf.SoundFile, path: Path, offset: float, duration):
    """Seek to `offset` and decode only the frames asked for -> ((S, C) float32, sr)."""
    sr, total = f.samplerate, f.frames
    if total <= 0:
        raise AudioError(f"{path}: empty audio (0 frames)")
    start = int(round(offset * sr))
    if start >= total:
        raise AudioError(
            f"{path}: offset {offset:.3f} s (frame {start}) is past the end of the "
            f"file ({total} frames = {total / sr:.3f} s)"
        )
    wanted = total - start if duration is None else int(round(duration * sr))
    if wanted == 0:
        raise AudioError(f"{path}: duration {duration} s is less than one frame")
    wanted = min(wanted, total - start)
    if start > 0:
        f.seek(start)
    samples = f.read(frames=wanted, dtype="float32", always_2d=True)  # (S, C)
    if samples.shape[0] < wanted:
        raise AudioError(
            f"{path}: corrupt or truncated: the header promises {total} frames but "
            f"only {start + samples.shape[0]} could be decoded"
        )
    if f.subtype in _FLOAT_SUBTYPES and not np.isfinite(samples).all():
        bad = int((~np.isfinite(samples)).any(axis=1).argmax()) + start
        raise AudioError(f"{path}: NaN or inf sample at frame {bad}")
    return samples, sr


def save_audio(
    path: str | os.PathLike,
    wave: torch.Tensor | np.ndarray,
    sample_rate: int,
    subtype: str | None = None,
) -> None:
    """Write `wave` (S,) or (C, S) to `path`; the extension picks the format.

    `subtype` overrides the default encoding (PCM_16 for WAV/FLAC, e.g. "PCM_24" or
    "FLOAT"). Integer encodings cannot hold values beyond [-1, 1]: those samples are
    clipped, with a warning that says how many.
    """
    path = Path(path)
    container, default_subtype = _format_for(path)
    subtype = subtype or default_subtype
    samples = _as_frames(path, wave)  # (S, C)
    if int(sample_rate) != sample_rate or sample_rate <= 0:
        raise AudioError(
            f"{path}: sample_rate must be a positive integer, got {sample_rate}"
        )
    if subtype not in _FLOAT_SUBTYPES:
        n_out = int((np.abs(samples) > 1.0).sum())
        if n_out:
            warnings.warn(
                f"{path}: {n_out} samples outside [-1, 1] were clipped", stacklevel=2
            )
            samples = np.clip(samples, -1.0, 1.0)
    # libsndfile truncates the target before it checks e.g. the Opus rate: write
    # beside it and rename, so a failed save never destroys an existing file
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        sf.write(
            str(partial), samples, int(sample_rate), subtype=subtype, format=container
        )
        os.replace(partial, path)
    except (sf.SoundFileError, ValueError, TypeError) as error:
        raise AudioError(
            f"{path}: cannot write {container}/{subtype} at {sample_rate} Hz "
            f"({_reason(error)})"
        ) from None
    finally:
        partial.unlink(missing_ok=True)


def _format_for(path: Path) -> tuple[str, str]:
    """The (container, default subtype) for the file extension, or AudioError."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        known = ", ".join(sorted(FORMATS))
        raise AudioError(
            f"{path}: unknown audio extension {suffix!r} (use one of {known})"
        )
    return FORMATS[suffix]


def _as_frames(path: Path, wave) -> np.ndarray:
    """A (S,) or (C, S) Tensor/ndarray -> finite float (S, C) ndarray for soundfile."""
    if isinstance(wave, torch.Tensor):
        wave = wave.detach().cpu().numpy()
    wave = np.asarray(wave)
    if wave.dtype.kind != "f":
        raise AudioError(
            f"{path}: wave must be floating point in [-1, 1], got {wave.dtype}"
        )
    if wave.ndim not in (1, 2) or wave.shape[-1] == 0:
        raise AudioError(
            f"{path}: wave must be non-empty (S,) or (C, S), got {wave.shape}"
        )
    if wave.ndim == 2 and wave.shape[0] > wave.shape[1]:
        raise AudioError(
            f"{path}: wave of shape {wave.shape} has more channels than samples; "
            "pass (C, S), not (S, C)"
        )
    if not np.isfinite(wave).all():
        raise AudioError(f"{path}: wave contains NaN or inf")
    return np.atleast_2d(wave).T.astype(
        np.float32 if wave.itemsize <= 4 else np.float64
    )


def _existing_file(path) -> Path:
    """`path` as a Path, or AudioError if there is no file there."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if not path.is_file():
        raise AudioError(f"{path}: not a file")
    return path


def _reason(error: Exception) -> str:
    """libsndfile's own words on one line, without soundfile's 'Error opening ...'
    prefix."""
    text = " ".join(str(error).split())
    return text.split(": ", 1)[-1] if text.startswith("Error opening") else text
