"""Speech enhancement: classic baselines (spectral subtraction, Wiener), noisy/clean
pairs, STFT transforms, mask estimators and the mask-based model."""

from minispeech.enhancement.classic import spectral_subtraction, wiener_filter
from minispeech.enhancement.dataset import (
    PairDataset,
    build_pair_dataset,
    collate_pairs,
)
from minispeech.enhancement.estimators import (
    MaskEstimatorConformer,
    MaskEstimatorRNN,
    MaskReferenceChannel,
)
from minispeech.enhancement.model import EnhancementModel
from minispeech.enhancement.noise_psd import noise_psd_leading, noise_psd_min_stats
from minispeech.enhancement.pairs import NoisyExample, noisy_examples, write_noisy_copy
from minispeech.enhancement.transforms import AudioToSpectrogram, SpectrogramToAudio
