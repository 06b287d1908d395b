"""Audio: file I/O, resampling, STFT, mel features and SpecAugment."""

from minispeech.audio.io import (
    AudioError,
    AudioInfo,
    audio_info,
    load_audio,
    save_audio,
)
from minispeech.audio.resample import resample
