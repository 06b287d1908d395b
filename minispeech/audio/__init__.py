"""Audio: file I/O, resampling, STFT, mel features, SpecAugment and pitch (YIN)."""

from minispeech.audio.augment import SpecAugment
from minispeech.audio.features import MelSpectrogram
from minispeech.audio.freq_warp import FrequencyWarp, vtlp_warp
from minispeech.audio.io import (
    AudioError,
    AudioInfo,
    audio_info,
    load_audio,
    save_audio,
)
from minispeech.audio.mel import mel_filterbank
from minispeech.audio.perturb import (
    AudioAugmentor,
    add_echo,
    add_noise,
    pitch_shift,
    speed_perturb,
    time_stretch,
)
from minispeech.audio.pitch import yin
from minispeech.audio.resample import resample
from minispeech.audio.stft import get_window, istft, stft
