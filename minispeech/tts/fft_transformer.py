"""FastPitch's FFT stacks: a feed-forward Transformer over tokens (encoder) or frames.

Lancucki 2021, "FastPitch: Parallel Text-to-speech with Pitch Prediction"
(arXiv:2006.06873), Sec. 2 and Fig. 1: the input and output stacks are the "FFT"
blocks of FastSpeech (Ren et al. 2019, arXiv:1905.09263, Sec. 3.1): multi-head
self-attention (Vaswani et al. 2017, arXiv:1706.03762, Sec. 3.2) then a 1-D
convolutional feed-forward (conv k, ReLU, conv k), each post-LN:
    h = LN(x + MHA(x)) * mask,    y = LN(h + Conv(ReLU(Conv(h)))) * mask.
Positions are Vaswani's sinusoids (Sec. 3.5) added to the input without scaling, but,
as NeMo's `PositionalEmbedding`, concatenated rather than interleaved:
    PE(p) = [sin(p f_0), ..., sin(p f_{D/2-1}), cos(p f_0), ..., cos(p f_{D/2-1})],
    f_i = 1 / 10000^(2i / D), zeroed on padding.

Module and parameter names are NeMo's (nemo/collections/tts/modules/transformer.py:
`word_emb`, `layers.N.dec_attn.{qkv_net,o_net,layer_norm}`,
`layers.N.pos_ff.{CoreNet,layer_norm}`) so its checkpoints load by key; `o_net` has no
bias, q, k and v come from one `qkv_net`, the score scale is 1/sqrt(d_head).

Differs from NeMo: padded keys are masked (-inf) in both, but NeMo does not zero the
padding between the feed-forward's two convolutions, so the hidden values the first
conv writes on padded positions reach the last valid ones through the second conv,
and an item's output depends on how far its batch is padded (0.3 at the last token of
"hello world." padded from 14 to 23 tokens). With `mask_padding=True` (the default)
the hidden is zeroed on padding; `mask_padding=False` reproduces NeMo (the NeMo
importer sets it).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from minispeech.nn.attention import padding_mask
from minispeech.nn.dropout import Dropout


def sinusoid_positions(n_positions: int, d_model: int, device=None) -> Tensor:
    """[sin(p f), cos(p f)] for p = 0..n_positions-1: (T, D), f_i = 1/10000^(2i/D)."""
    two_i = torch.arange(0.0, d_model, 2.0, device=device)  # (D/2,)
    inv_freq = 1.0 / (10000.0 ** (two_i / d_model))  # (D/2,)
    position = torch.arange(n_positions, device=device, dtype=torch.float32)
    angle = position[:, None] * inv_freq[None, :]  # (T, D/2)
    return torch.cat([angle.sin(), angle.cos()], dim=1)  # (T, D)


class FFTAttention(nn.Module):
    """Post-LN multi-head self-attention: LN(x + W_o Attention(W_qkv x))."""

    def __init__(
        self,
        n_head: int,
        d_model: int,
        d_head: int,
        dropout: float = 0.0,
        dropatt: float = 0.0,
    ):
        super().__init__()
        self.n_head, self.d_head = n_head, d_head
        self.qkv_net = nn.Linear(d_model, 3 * n_head * d_head)
        self.o_net = nn.Linear(n_head * d_head, d_model, bias=False)
        self.layer_norm = nn.LayerNorm(d_model)
        self.drop = Dropout(dropout)
        self.dropatt = Dropout(dropatt)

    def forward(self, x: Tensor, valid: Tensor) -> Tensor:
        """x (B, T, D), valid (B, T) bool -> (B, T, D)."""
        n_batch, n_time, _ = x.shape
        qkv = self.qkv_net(x).view(n_batch, n_time, 3, self.n_head, self.d_head)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # 3 x (B, H, T, d_head)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.d_head)  # (B, H, T, T)
        padded_key = ~valid[:, None, None, :]  # (B, 1, 1, T)
        scores = scores.masked_fill(padded_key, -float("inf"))
        attn = self.dropatt(scores.softmax(dim=-1))  # (B, H, T, T)
        out = (attn @ v).transpose(1, 2).reshape(n_batch, n_time, -1)  # (B, T, H*dh)
        return self.layer_norm(x + self.drop(self.o_net(out)))  # (B, T, D)


class ConvFeedForward(nn.Module):
    """Post-LN convolutional feed-forward: LN(x + Conv(ReLU(Conv(x))))."""

    def __init__(
        self,
        d_model: int,
        d_inner: int,
        kernel_size: int,
        dropout: float = 0.0,
        mask_padding: bool = True,
    ):
        super().__init__()
        self.mask_padding = mask_padding
        assert kernel_size % 2 == 1, f"kernel_size must be odd, got {kernel_size}"
        pad = kernel_size // 2
        self.CoreNet = nn.Sequential(  # NeMo's name, so its weights load by key
            nn.Conv1d(d_model, d_inner, kernel_size, padding=pad),
            nn.ReLU(),
            nn.Conv1d(d_inner, d_model, kernel_size, padding=pad),
            Dropout(dropout),
        )
        self.layer_norm = nn.LayerNorm(d_model)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """x (B, T, D), mask (B, T, 1) float -> (B, T, D)."""
        conv1, relu, conv2, drop = self.CoreNet
        hidden = relu(conv1(x.transpose(1, 2)))  # (B, d_inner, T)
        if self.mask_padding:  # NeMo leaves it on padding (module docstring)
            hidden = hidden * mask.transpose(1, 2)
        core = drop(conv2(hidden)).transpose(1, 2)  # (B, T, D)
        return self.layer_norm(x + core)


class FFTLayer(nn.Module):
    """One FFT block: attention then conv feed-forward, zeroed on padding after each."""

    def __init__(
        self,
        n_head: int,
        d_model: int,
        d_head: int,
        d_inner: int,
        kernel_size: int,
        dropout: float = 0.0,
        dropatt: float = 0.0,
        mask_padding: bool = True,
    ):
        super().__init__()
        self.dec_attn = FFTAttention(n_head, d_model, d_head, dropout, dropatt)
        self.pos_ff = ConvFeedForward(
            d_model, d_inner, kernel_size, dropout, mask_padding
        )

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """x (B, T, D), mask (B, T, 1) float -> (B, T, D)."""
        x = self.dec_attn(x, mask[..., 0] > 0) * mask
        return self.pos_ff(x, mask) * mask


class FFTransformer(nn.Module):
    """A stack of FFT blocks over (B, T, D) inputs with lengths: FastPitch's decoder."""

    def __init__(
        self,
        n_layer: int,
        n_head: int,
        d_model: int,
        d_head: int,
        d_inner: int,
        kernel_size: int = 3,
        dropout: float = 0.0,
        dropatt: float = 0.0,
        dropemb: float = 0.0,
        mask_padding: bool = True,
    ):
        super().__init__()
        assert d_model % 2 == 0, f"d_model must be even (sin|cos halves): {d_model}"
        self.d_model = d_model
        self.drop = Dropout(dropemb)
        self.layers = nn.ModuleList(
            FFTLayer(
                n_head,
                d_model,
                d_head,
                d_inner,
                kernel_size,
                dropout,
                dropatt,
                mask_padding,
            )  # fmt: skip
            for _ in range(n_layer)
        )

    def forward(self, x: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, T, D), lens (B,) -> (out (B, T, D), mask (B, T, 1) float)."""
        assert x.dim() == 3 and x.shape[-1] == self.d_model, (
            f"input must be (B, T, {self.d_model}), got {tuple(x.shape)}"
        )
        mask = padding_mask(lens, x.shape[1]).unsqueeze(2).to(x.dtype)  # (B, T, 1)
        positions = sinusoid_positions(x.shape[1], self.d_model, x.device)  # (T, D)
        out = self.drop(x + positions.to(x.dtype) * mask)  # (B, T, D)
        for layer in self.layers:
            out = layer(out, mask)
        return out, mask


class FFTransformerEncoder(FFTransformer):
    """Token embedding + FFT stack: FastPitch's encoder, (B, U) ids -> (B, U, D)."""

    def __init__(
        self,
        n_embed: int,
        padding_idx: int,
        n_layer: int,
        n_head: int,
        d_model: int,
        d_head: int,
        d_inner: int,
        kernel_size: int = 3,
        dropout: float = 0.0,
        dropatt: float = 0.0,
        dropemb: float = 0.0,
        mask_padding: bool = True,
    ):
        super().__init__(
            n_layer, n_head, d_model, d_head, d_inner, kernel_size, dropout, dropatt,
            dropemb, mask_padding,
        )  # fmt: skip
        # the pad row stays 0 and gets no gradient
        self.word_emb = nn.Embedding(n_embed, d_model, padding_idx=padding_idx)

    def forward(self, tokens: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
        """tokens (B, U), lens (B,) -> (out (B, U, D), mask (B, U, 1) float)."""
        assert tokens.dim() == 2, f"tokens must be (B, U), got {tuple(tokens.shape)}"
        return super().forward(self.word_emb(tokens), lens)  # (B, U, D)
