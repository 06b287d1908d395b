"""Text-to-speech: tokenizer, FastPitch with a learned aligner, vocoders.

Pitch tracking (YIN) lives in `minispeech.audio`, shared with the speaker task.
"""

from minispeech.tts.aligner import (
    BetaBinomialInterpolator,
    average_features,
    beta_binomial_prior,
    bin_loss,
    binarize_attention,
    forward_sum_loss,
    regulate_len,
)
from minispeech.tts.fastpitch_model import FastPitchModel
from minispeech.tts.griffin_lim import (
    griffin_lim,
    griffin_lim_from_mel,
    mel_to_magnitude,
)
from minispeech.tts.hifigan_model import HifiGanModel
from minispeech.tts.mas import mas, mas_reference
from minispeech.tts.synthesis import Synthesis, Synthesizer
from minispeech.tts.tokenizer import EnglishCharsTokenizer, TokenizerError
