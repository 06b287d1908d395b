"""Metrics: each a short exact function with its reference in the tests."""

from minispeech.metrics.der import DERResult, der, file_der, hungarian, pool
from minispeech.metrics.eer import eer, min_dcf
from minispeech.metrics.mcd import dtw, mcd, mcd_from_cepstra, mel_cepstrum
from minispeech.metrics.sdr import sdr, sdr_loss, si_sdr, snr
from minispeech.metrics.stoi import stoi
from minispeech.metrics.wer import (
    ErrorCounts,
    cer,
    char_errors,
    edit_alignment,
    wer,
    word_errors,
)
