"""Neural building blocks: attention, subsampling, Conformer and Transformer."""

from minispeech.nn.attention import MultiHeadAttention, RelPositionMultiHeadAttention
from minispeech.nn.conformer import ConformerEncoder
from minispeech.nn.conformer_block import ConformerLayer
from minispeech.nn.ctc import ctc_loss, ctc_loss_reference
from minispeech.nn.freeze import freeze
from minispeech.nn.positional import PositionalEncoding, RelPositionalEncoding
from minispeech.nn.subsampling import ConvSubsampling
from minispeech.nn.transformer import (
    DecoderCache,
    TransformerDecoder,
    TransformerEncoder,
)
