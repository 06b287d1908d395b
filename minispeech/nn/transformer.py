"""Transformer encoder and decoder (pre-LayerNorm) with an explicit key/value cache.

Vaswani et al. 2017, "Attention Is All You Need", arXiv:1706.03762, Sec. 3: encoder
layers of self-attention + position-wise feed-forward (Eq. 2, FFN(x) = max(0, x W1 + b1)
W2 + b2), decoder layers with causal ("masked") self-attention, cross-attention over the
encoder output and feed-forward, sinusoidal absolute positions (Sec. 3.5,
positional.py).

Differences from the paper: pre-LN residual blocks x + Sublayer(LN(x)) with a final
LayerNorm (Xiong et al. 2020, "On Layer Normalization in the Transformer Architecture",
arXiv:2002.04745), which train without warm-up tricks; the speech encoder starts with
the same convolution subsampling as the Conformer (Dong et al. 2018, Speech-Transformer)
and returns (B, D, T'). Step-by-step decoding passes a `DecoderCache` in and gets the
grown one back: nothing is hidden in hooks or module state, and a cached step equals
recomputing the whole prefix.

Decoder options for NeMo's Transformer (the Canary AED decoder): `xscaling=False` adds
PE / sqrt(D) to unscaled embeddings instead of E sqrt(D) + PE; `embedding_norm` puts a
LayerNorm after that sum; `tie_embedding` makes the output layer share the embedding
matrix (Press & Wolf 2017, "Using the Output Embedding to Improve Language Models",
arXiv:1608.05859); `token_lens` masks right-padded tokens as keys, so a padded
position attends to the valid tokens only, as NeMo's decoder mask does.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from minispeech.nn.attention import (
    MultiHeadAttention,
    padding_mask,
    self_attention_mask,
)
from minispeech.nn.dropout import Dropout
from minispeech.nn.positional import PositionalEncoding
from minispeech.nn.subsampling import ConvSubsampling


class FeedForward(nn.Module):
    """Linear (D -> d_ff), ReLU, dropout, Linear (d_ff -> D): Vaswani Eq. (2)."""

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.1):
        super().__init__()
        self.linear1 = nn.Linear(d_model, d_ff)
        self.dropout = Dropout(dropout)
        self.linear2 = nn.Linear(d_ff, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.dropout(F.relu(self.linear1(x))))


class TransformerEncoderLayer(nn.Module):
    """x + SelfAttn(LN(x)), then x + FFN(LN(x)). (B, T, D) -> (B, T, D)."""

    def __init__(
        self, d_model, n_heads, d_ff, dropout=0.1, dropout_att=0.0, impl="reference"
    ):
        super().__init__()
        self.norm_self_att = nn.LayerNorm(d_model)
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout_att, True, impl)
        self.norm_feed_forward = nn.LayerNorm(d_model)
        self.feed_forward = FeedForward(d_model, d_ff, dropout)
        self.dropout = Dropout(dropout)

    def forward(
        self, x: torch.Tensor, att_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        h = self.norm_self_att(x)
        x = x + self.dropout(self.self_attn(h, h, h, att_mask))
        return x + self.dropout(self.feed_forward(self.norm_feed_forward(x)))


class TransformerEncoder(nn.Module):
    """feats (B, M, T), feat_lens (B,) -> enc (B, D, T'), enc_lens (B,)."""

    def __init__(
        self,
        feat_in: int,
        n_layers: int,
        d_model: int,
        n_heads: int = 4,
        ff_expansion_factor: int = 4,
        subsampling: str = "striding",
        subsampling_factor: int = 4,
        subsampling_conv_channels: int = -1,
        att_context_size: list[int] | None = None,
        xscaling: bool = True,
        pos_emb_max_len: int = 5000,
        dropout: float = 0.1,
        dropout_pre_encoder: float = 0.1,
        dropout_att: float = 0.0,
        use_pytorch_sdpa: bool = False,
    ):
        super().__init__()
        self.feat_in = feat_in
        self.att_context_size = tuple(att_context_size or (-1, -1))
        channels = (
            d_model if subsampling_conv_channels == -1 else subsampling_conv_channels
        )
        self.pre_encode = ConvSubsampling(
            feat_in, d_model, subsampling, subsampling_factor, channels
        )
        xscale = math.sqrt(d_model) if xscaling else None
        self.pos_enc = PositionalEncoding(
            d_model, pos_emb_max_len, xscale, dropout_pre_encoder
        )
        impl = "sdpa" if use_pytorch_sdpa else "reference"
        d_ff = d_model * ff_expansion_factor
        self.layers = nn.ModuleList(
            TransformerEncoderLayer(d_model, n_heads, d_ff, dropout, dropout_att, impl)
            for _ in range(n_layers)
        )
        self.norm_out = nn.LayerNorm(d_model)

    def extra_repr(self) -> str:
        return f"att_context_size={self.att_context_size}"

    def forward(self, feats: torch.Tensor, feat_lens: torch.Tensor):
        """feats (B, M, T), feat_lens (B,) -> enc (B, D, T'), enc_lens (B,)."""
        assert feats.dim() == 3 and feats.size(1) == self.feat_in, (
            f"expected features (B, {self.feat_in}, T), got {tuple(feats.shape)}"
        )
        x, lens = self.pre_encode(feats.transpose(1, 2), feat_lens)  # (B, T', D)
        x = self.pos_enc(x)
        # (B, T', T'): the keys each query may see
        att_mask = self_attention_mask(lens, x.size(1), self.att_context_size)
        for layer in self.layers:
            x = layer(x, att_mask)
        return self.norm_out(x).transpose(1, 2), lens  # (B, D, T')


@dataclass
class DecoderCache:
    """What step-by-step decoding carries between calls (all per layer)."""

    # keys/values so far, (B, H, U, d_k) each
    self_kv: list[tuple[torch.Tensor, torch.Tensor]]
    # encoder keys/values, (B, H, T', d_k) each
    cross_kv: list[tuple[torch.Tensor, torch.Tensor]]
    # the last call's cross-attention weights (B, H, U_new, T') per layer, when asked
    cross_weights: list[torch.Tensor] | None = None

    @property
    def length(self) -> int:
        """Number of tokens already decoded."""
        return self.self_kv[0][0].size(2)


class TransformerDecoderLayer(nn.Module):
    """Causal self-attention, cross-attention, feed-forward; each pre-LN, residual."""

    def __init__(
        self, d_model, n_heads, d_ff, dropout=0.1, dropout_att=0.0, impl="reference"
    ):
        super().__init__()
        self.norm_self_att = nn.LayerNorm(d_model)
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout_att, True, impl)
        self.norm_cross_att = nn.LayerNorm(d_model)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, dropout_att, True, impl)
        self.norm_feed_forward = nn.LayerNorm(d_model)
        self.feed_forward = FeedForward(d_model, d_ff, dropout)
        self.dropout = Dropout(dropout)

    def forward(
        self, x, self_kv_past, cross_kv, self_mask, cross_mask, need_weights=False
    ):
        """x (B, U, D) new tokens; self_kv_past keys/values of earlier tokens (or None);
        cross_kv projected encoder output. Returns (x (B, U, D), self-attention
        keys/values so far[, cross-attention weights (B, H, U, T') if need_weights])."""
        h = self.norm_self_att(x)
        k, v = self.self_attn.project_kv(h, h)  # (B, H, U, d_k)
        if self_kv_past is not None:
            k = torch.cat([self_kv_past[0], k], dim=2)  # (B, H, U_past + U, d_k)
            v = torch.cat([self_kv_past[1], v], dim=2)
        q = self.self_attn.project_q(h)
        x = x + self.dropout(self.self_attn.attend(q, k, v, self_mask))
        q = self.cross_attn.project_q(self.norm_cross_att(x))
        out = self.cross_attn.attend(q, *cross_kv, cross_mask, None, need_weights)
        out, weights = out if need_weights else (out, None)
        x = x + self.dropout(out)
        x = x + self.dropout(self.feed_forward(self.norm_feed_forward(x)))
        return (x, (k, v), weights) if need_weights else (x, (k, v))


class TransformerDecoder(nn.Module):
    """tokens (B, U), enc (B, D, T'), enc_lens (B,) -> logits (B, U, V), cache."""

    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        n_layers: int,
        n_heads: int = 4,
        ff_expansion_factor: int = 4,
        max_len: int = 512,
        dropout: float = 0.1,
        dropout_att: float = 0.0,
        use_pytorch_sdpa: bool = False,
        xscaling: bool = True,
        embedding_norm: bool = False,
        tie_embedding: bool = False,
    ):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, d_model)
        # Vaswani Sec. 3.4: E sqrt(D) + PE; NeMo: E + PE / sqrt(D) (same ratio)
        scale = math.sqrt(d_model)
        self.pos_enc = PositionalEncoding(
            d_model,
            max_len,
            xscale=scale if xscaling else None,
            pos_scale=None if xscaling else 1.0 / scale,
        )
        self.embedding_norm = nn.LayerNorm(d_model) if embedding_norm else None
        self.dropout_emb = Dropout(dropout)
        impl = "sdpa" if use_pytorch_sdpa else "reference"
        d_ff = d_model * ff_expansion_factor
        self.layers = nn.ModuleList(
            TransformerDecoderLayer(d_model, n_heads, d_ff, dropout, dropout_att, impl)
            for _ in range(n_layers)
        )
        self.norm_out = nn.LayerNorm(d_model)
        self.output = nn.Linear(d_model, vocab_size)
        if tie_embedding:
            # one matrix for both; N(0, 1/D) keeps the initial logits near unit size
            nn.init.normal_(self.embedding.weight, std=d_model**-0.5)
            self.output.weight = self.embedding.weight

    def encode_memory(
        self, enc: torch.Tensor
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Cross-attention keys/values of the encoder output (B, D, T'), once."""
        memory = enc.transpose(1, 2)  # (B, T', D)
        return [layer.cross_attn.project_kv(memory, memory) for layer in self.layers]

    def embed(self, tokens: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """tokens (B, U) at positions offset.. -> decoder input (B, U, D)."""
        x = self.pos_enc(self.embedding(tokens), offset=offset)  # (B, U, D)
        if self.embedding_norm is not None:
            x = self.embedding_norm(x)
        return self.dropout_emb(x)

    def forward(
        self,
        tokens: torch.Tensor,
        enc: torch.Tensor,
        enc_lens: torch.Tensor,
        cache: DecoderCache | None = None,
        token_lens: torch.Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, DecoderCache]:
        """Decode `tokens` (B, U) that follow the `cache.length` tokens already decoded.

        Right-padding of `tokens` changes no valid position (causal attention never
        looks ahead); `token_lens` (B,), the valid new tokens per item, also hides the
        padding from the padded positions themselves (NeMo's decoder mask).
        `need_weights`: the returned cache also holds each layer's cross-attention
        weights over the encoder frames (computed by the readable attention path).
        """
        assert tokens.dim() == 2 and enc.dim() == 3, (tokens.shape, enc.shape)
        past = 0 if cache is None else cache.length
        cross_kv = self.encode_memory(enc) if cache is None else cache.cross_kv
        u = tokens.size(1)
        x = self.embed(tokens, offset=past)  # (B, U, D)
        self_mask = self.self_mask(tokens, past, token_lens)  # (B, U, U_past + U)
        cross_mask = padding_mask(enc_lens, enc.size(2)).unsqueeze(1).expand(-1, u, -1)
        new_self_kv, weights = [], []
        for i, layer in enumerate(self.layers):
            past_kv = None if cache is None else cache.self_kv[i]
            out = layer(x, past_kv, cross_kv[i], self_mask, cross_mask, need_weights)
            x, kv = out[:2]
            new_self_kv.append(kv)
            weights += out[2:]  # (B, H, U, T') when asked
        logits = self.output(self.norm_out(x))  # (B, U, V)
        return logits, DecoderCache(new_self_kv, cross_kv, weights or None)

    @staticmethod
    def self_mask(tokens, past: int, token_lens=None) -> torch.Tensor:
        """(B, U, U_past + U) bool: query i (absolute position past + i) may see keys
        0 .. past + i, and only valid ones when `token_lens` is given."""
        u, device = tokens.size(1), tokens.device
        q_pos = torch.arange(past, past + u, device=device).unsqueeze(1)  # (U, 1)
        k_pos = torch.arange(past + u, device=device)  # (U_past + U,)
        mask = (k_pos <= q_pos).expand(tokens.size(0), -1, -1)  # (B, U, U_past + U)
        if token_lens is not None:
            valid = k_pos < (past + token_lens).unsqueeze(1)  # (B, U_past + U)
            mask = mask & valid.unsqueeze(1)
        return mask
