"""ASR heads, losses and decoders: CTC, RNN-T/TDT, attention encoder-decoder."""

from minispeech.asr.aed_decoding import (
    aed_beam_search,
    aed_beam_search_reference,
    aed_greedy_decode,
)
from minispeech.asr.aed_model import AEDModel
from minispeech.asr.aed_tokenizer import AggregateTokenizer, build_aggregate_tokenizer
from minispeech.asr.alignment import (
    Alignment,
    TokenSpan,
    WordSpan,
    ctc_forced_align,
    ctc_forced_align_single,
    word_spans,
)
from minispeech.asr.asr_model import ASRModel
from minispeech.asr.ctc_decoding import (
    BeamHypothesis,
    ctc_greedy_decode,
    ctc_greedy_decode_single,
    ctc_prefix_beam_search,
    ctc_prefix_beam_search_single,
)
from minispeech.asr.ctc_model import CTCModel
from minispeech.asr.ngram_lm import NGramLM
from minispeech.asr.rnnt import rnnt_loss
from minispeech.asr.rnnt_decoding import (
    Hypothesis,
    rnnt_beam_search,
    rnnt_beam_search_reference,
    rnnt_greedy_decode,
    rnnt_greedy_decode_single,
)
from minispeech.asr.rnnt_reference import rnnt_loss_reference
from minispeech.asr.tdt import tdt_loss
from minispeech.asr.tdt_decoding import tdt_greedy_decode, tdt_greedy_decode_single
from minispeech.asr.transducer_model import TransducerModel
from minispeech.asr.transducer_nets import JointNetwork, PredictionNetwork
