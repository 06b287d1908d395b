"""Speaker recognition: TitaNet and ECAPA encoders, pooling, ArcFace, SpeakerModel,
verification trials."""

from minispeech.speaker.dataset import SpeakerDataset, collate_speaker, speaker_labels
from minispeech.speaker.ecapa import ECAPAEncoder
from minispeech.speaker.losses import SpeakerLoss, angular_softmax_loss
from minispeech.speaker.model import SpeakerModel
from minispeech.speaker.pooling import (
    AttentivePoolLayer,
    SpeakerDecoder,
    StatsPoolLayer,
)
from minispeech.speaker.titanet import TitaNetEncoder
from minispeech.speaker.trials import verification_trials, write_trials
