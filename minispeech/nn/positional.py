"""Sinusoidal positional encodings: absolute (Transformer) and relative
(Transformer-XL).

Absolute: Vaswani et al. 2017, "Attention Is All You Need", arXiv:1706.03762, Sec. 3.5:
    PE(pos, 2i) = sin(pos / 10000^(2i/D)),   PE(pos, 2i+1) = cos(pos / 10000^(2i/D)).
Relative: Dai et al. 2019, "Transformer-XL", arXiv:1901.02860, Sec. 3.3 and Appendix B:
the same sinusoids evaluated at the relative distances i - j, here ordered T-1, T-2,
..., -(T-1) (positive = key to the left of the query), which is the order `rel_shift` in
attention.py expects. Conformer (Gulati et al. 2020, arXiv:2005.08100, Sec. 2.1) uses
this relative scheme.

Both modules also do the encoder "x-scaling": multiply the input by sqrt(D) before
adding or returning positions (Vaswani Sec. 3.4 scales embeddings by sqrt(D)); then
dropout. The absolute table can instead be scaled down (`pos_scale`): NeMo's
Transformer decoder adds PE / sqrt(D) to unscaled embeddings (the same ratio of
embedding to position, at 1/sqrt(D) the size).

Rotary: Su et al. 2021, "RoFormer: Enhanced Transformer with Rotary Position Embedding",
arXiv:2104.09864, Sec. 3.4.2, Eq. 34: the pair (x_{2i-1}, x_{2i}) of a query or key at
position m is rotated by the angle m theta_i, theta_i = base^(-2(i-1)/d), so that
q_m . k_n depends on m - n only. `RotaryEmbedding` takes per-item positions (B, L), so
left-padded sequences rotate from their first real token.

Differences from the papers: none in the formulas. As in NeMo, the table is precomputed
for `max_len` positions and grown on demand, and the relative encoding does NOT add
positions to x: it returns them for the attention layers (Transformer-XL's R matrix).
"""

import math

import torch
from torch import nn

from minispeech.nn.dropout import Dropout


def sinusoid_table(positions: torch.Tensor, d_model: int) -> torch.Tensor:
    """Sinusoids at the given (float) positions: (P,) -> (P, D). Vaswani Sec. 3.5."""
    # 1 / 10000^(2i/D) for i = 0 .. D/2-1, written as exp(-2i ln(10000) / D)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float32, device=positions.device)
    inv_freq = torch.exp(two_i * -(math.log(10000.0) / d_model))  # (D/2,)
    angles = positions.to(torch.float32).unsqueeze(1) * inv_freq  # (P, D/2)
    table = torch.zeros(len(positions), d_model, device=positions.device)
    table[:, 0::2] = torch.sin(angles)
    table[:, 1::2] = torch.cos(angles[:, : d_model // 2])
    return table  # (P, D)


class PositionalEncoding(nn.Module):
    """Absolute sinusoidal positions: x -> dropout(x * xscale + PE[:T] * pos_scale)."""

    def __init__(
        self,
        d_model: int,
        max_len: int = 5000,
        xscale: float | None = None,
        dropout: float = 0.0,
        dropout_emb: float = 0.0,
        pos_scale: float | None = None,
    ):
        super().__init__()
        self.d_model = d_model
        self.xscale = xscale
        self.pos_scale = pos_scale  # None: the plain table (1.0)
        self.dropout = Dropout(dropout)
        self.dropout_emb = Dropout(dropout_emb)
        self.register_buffer("pe", self._table(max_len), persistent=False)

    def extra_repr(self) -> str:
        scale = "" if self.pos_scale is None else f", pos_scale={self.pos_scale}"
        return (
            f"d_model={self.d_model}, xscale={self.xscale}{scale}, "
            f"pe={tuple(self.pe.shape)}"
        )

    def _table(self, length: int) -> torch.Tensor:
        return sinusoid_table(torch.arange(length, dtype=torch.float32), self.d_model)

    def positions(self, length: int, offset: int = 0) -> torch.Tensor:
        """PE rows offset .. offset+length-1: (length, D); grows the table if needed."""
        if offset + length > self.pe.size(0):
            self._grow(offset + length)
        return self.pe[offset : offset + length]

    def _grow(self, length: int) -> None:
        """Replace the table with one of `length` positions (distances for the
        relative table). Built outside inference mode even when decoding grows it:
        an inference-mode tensor could not be saved for backward by a later
        training step that reads these rows."""
        with torch.inference_mode(False):
            self.pe = self._table(length).to(self.pe.device)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """x (B, T, D) -> (B, T, D); `offset` is the position of x[:, 0] (decoding)."""
        assert x.dim() == 3 and x.size(-1) == self.d_model, x.shape
        if self.xscale is not None:
            x = x * self.xscale
        pos = self.positions(x.size(1), offset).to(x.dtype)  # (T, D)
        if self.pos_scale is not None:
            pos = pos * self.pos_scale
        return self.dropout(x + self.dropout_emb(pos))


class RelPositionalEncoding(PositionalEncoding):
    """Relative sinusoids: x -> (dropout(x * xscale), R) with R (1, 2T-1, D).

    The same constructor and dropouts as PositionalEncoding; only the table (indexed by
    distance instead of position) and forward differ.
    """

    def _table(self, length: int) -> torch.Tensor:
        # distances length-1, ..., 0, ..., -(length-1): row length-1 is distance 0
        distances = torch.arange(length - 1, -length, -1, dtype=torch.float32)
        return sinusoid_table(distances, self.d_model)  # (2*length-1, D)

    def relative_positions(self, length: int) -> torch.Tensor:
        """Encodings of distances T-1 .. -(T-1): (2T-1, D); grows the table."""
        max_len = (self.pe.size(0) + 1) // 2
        if length > max_len:
            self._grow(length)
            max_len = length
        center = max_len - 1  # the row of distance 0
        return self.pe[center - length + 1 : center + length]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, D) -> (x (B, T, D), pos_emb (1, 2T-1, D))."""
        assert x.dim() == 3 and x.size(-1) == self.d_model, x.shape
        if self.xscale is not None:
            x = x * self.xscale
        pos_emb = self.relative_positions(x.size(1)).to(x.dtype)  # (2T-1, D)
        if self.pos_scale is not None:
            pos_emb = pos_emb * self.pos_scale
        pos_emb = pos_emb.unsqueeze(0)  # (1, 2T-1, D)
        return self.dropout(x), self.dropout_emb(pos_emb)


class RotaryEmbedding(nn.Module):
    """Rotary positions (RoFormer Eq. 34): x (B, H, L, d), positions (B, L) -> rotated.

    R x = x * cos(m theta) + rot(x) * sin(m theta) with rot(x) = (-x2, x1, -x4, x3, ...)
    on the interleaved pairs of the paper (not the half-split layout of GPT-NeoX). No
    parameters and no table: the angles are computed from `positions` on each call, in
    float64 for float64 inputs and float32 otherwise.
    """

    def __init__(self, head_dim: int, base: float = 10000.0):
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary head_dim must be even, got {head_dim}")
        self.head_dim, self.base = head_dim, base

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, base={self.base}"

    def angles(self, positions: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """m theta_i for positions (B, L) -> (B, L, d/2); theta_i = base^(-2(i-1)/d)."""
        two_i = torch.arange(0, self.head_dim, 2, dtype=dtype, device=positions.device)
        theta = self.base ** (-two_i / self.head_dim)  # (d/2,)
        return positions.to(dtype).unsqueeze(-1) * theta  # (B, L, d/2)

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """x (B, H, L, d), positions (B, L) long -> (B, H, L, d)."""
        assert x.dim() == 4 and x.size(-1) == self.head_dim, x.shape
        assert positions.shape == (x.size(0), x.size(2)), (positions.shape, x.shape)
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        angles = self.angles(positions, dtype).repeat_interleave(2, dim=-1)  # (B, L, d)
        cos = angles.cos().unsqueeze(1)  # (B, 1, L, d), the same for every head
        sin = angles.sin().unsqueeze(1)
        pairs = x.to(dtype).unflatten(-1, (-1, 2))  # (B, H, L, d/2, 2)
        rotated = torch.stack([-pairs[..., 1], pairs[..., 0]], dim=-1).flatten(-2)
        return (x.to(dtype) * cos + rotated * sin).to(x.dtype)  # (B, H, L, d)
