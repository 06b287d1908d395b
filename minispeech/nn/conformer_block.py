"""One Conformer block: half feed-forward, self-attention, convolution, half
feed-forward.

Gulati et al. 2020, "Conformer: Convolution-augmented Transformer for Speech
Recognition", arXiv:2005.08100, Sec. 2.4, Eq. (1):
    x~  = x + 1/2 FFN(x)            (Macaron half-step feed-forward, Sec. 2.3)
    x'  = x~ + MHSA(x~)             (relative-position self-attention, Sec. 2.1)
    x'' = x' + Conv(x')             (convolution module, Sec. 2.2, Fig. 2)
    y   = LayerNorm(x'' + 1/2 FFN(x''))
Each module is pre-norm: it starts with its own LayerNorm. The convolution module is
pointwise conv (D -> 2D), GLU, depthwise conv (kernel k), BatchNorm, Swish, pointwise
conv. The feed-forward module is Linear (D -> 4D), Swish, dropout, Linear (4D -> D)
(Sec. 2.3).

Differences from the paper: as in NeMo, padded frames are zeroed before the depthwise
conv (so padding never reaches valid frames), LayerNorm may replace BatchNorm
(`conv_norm_type`), the depthwise padding may be asymmetric (`conv_context_size`, e.g.
causal), and `abs_pos` attention (no relative terms) is allowed. Module names follow
NeMo's `ConformerLayer`.
"""

import torch
import torch.nn.functional as F
from torch import nn

from minispeech.nn.attention import MultiHeadAttention, RelPositionMultiHeadAttention
from minispeech.nn.dropout import Dropout

CONV_NORM_TYPES = ("batch_norm", "layer_norm")


class ConformerFeedForward(nn.Module):
    """Linear (D -> d_ff), Swish, dropout, Linear (d_ff -> D)."""

    def __init__(
        self, d_model: int, d_ff: int, dropout: float = 0.1, use_bias: bool = True
    ):
        super().__init__()
        self.linear1 = nn.Linear(d_model, d_ff, bias=use_bias)
        self.dropout = Dropout(dropout)
        self.linear2 = nn.Linear(d_ff, d_model, bias=use_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, T, D)."""
        return self.linear2(self.dropout(F.silu(self.linear1(x))))  # Swish = SiLU


class ConformerConvolution(nn.Module):
    """Pointwise conv, GLU, depthwise conv, norm, Swish, pointwise (Gulati Fig. 2)."""

    def __init__(
        self,
        d_model: int,
        kernel_size: int = 31,
        norm_type: str = "batch_norm",
        context_size: tuple[int, int] | None = None,
        use_bias: bool = True,
    ):
        super().__init__()
        if norm_type not in CONV_NORM_TYPES:
            raise ValueError(
                f"conv_norm_type must be one of {CONV_NORM_TYPES}, got {norm_type!r}"
            )
        if context_size is None:  # centred kernel: (k-1)/2 frames on each side
            context_size = ((kernel_size - 1) // 2, (kernel_size - 1) // 2)
        if context_size[0] + context_size[1] + 1 != kernel_size:
            raise ValueError(
                f"conv context {context_size} does not fit kernel {kernel_size}"
            )
        self.context_size = tuple(context_size)
        self.norm_type = norm_type
        self.pointwise_conv1 = nn.Conv1d(d_model, 2 * d_model, 1, bias=use_bias)
        self.depthwise_conv = nn.Conv1d(
            d_model, d_model, kernel_size, groups=d_model, bias=use_bias
        )
        norm = nn.BatchNorm1d if norm_type == "batch_norm" else nn.LayerNorm
        self.batch_norm = norm(d_model)  # NeMo's name, whatever the norm
        self.pointwise_conv2 = nn.Conv1d(d_model, d_model, 1, bias=use_bias)

    def extra_repr(self) -> str:
        return f"context_size={self.context_size}, norm_type={self.norm_type}"

    def forward(
        self, x: torch.Tensor, pad_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x (B, T, D), pad_mask (B, T) True on valid frames -> (B, T, D)."""
        # a kernel-1 conv is a Linear over the channels: run the pointwise convs as
        # matmuls on (B, T, D), which skips conv's im2col copies (same weights)
        x = _pointwise(self.pointwise_conv1, x)  # (B, T, 2D)
        x = F.glu(x, dim=-1)  # (B, T, D): first half * sigmoid(second half)
        if pad_mask is not None:
            x = x.masked_fill(~pad_mask.unsqueeze(-1), 0.0)
        x = F.pad(x, (0, 0, *self.context_size))  # (B, T + k - 1, D)
        # the depthwise conv over time as a (1 x k) conv2d on the (B, D, 1, T) view
        # of (B, T, D) memory: a channels-last layout, which oneDNN runs 2x faster
        # than conv1d's (B, D, T), and the output stays (B, T, D) in memory
        x = x.transpose(1, 2).unsqueeze(2)  # (B, D, 1, T + k - 1), no copy
        weight, bias = self.depthwise_conv.weight, self.depthwise_conv.bias
        fold = (
            self.norm_type == "batch_norm"
            and not self.training
            and self.batch_norm.running_var is not None  # else eval uses batch stats
        )
        if fold:  # eval BatchNorm is per-channel affine: fold it into the conv
            weight, bias = fold_batch_norm(weight, bias, self.batch_norm)
        x = F.conv2d(x, weight.unsqueeze(2), bias, groups=weight.shape[0])
        x = x.squeeze(2)  # (B, D, T)
        if self.norm_type == "layer_norm":
            x = self.batch_norm(x.transpose(1, 2)).transpose(1, 2)
        elif not fold:
            x = self.batch_norm(x)
        return _pointwise(self.pointwise_conv2, F.silu(x).transpose(1, 2))  # (B, T, D)


def _pointwise(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """A kernel-1 Conv1d applied to x (B, T, C_in) -> (B, T, C_out)."""
    return F.linear(x, conv.weight.squeeze(-1), conv.bias)


def fold_batch_norm(
    weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.BatchNorm1d
) -> tuple[torch.Tensor, torch.Tensor]:
    """Conv weight (C, ...) and bias (C,) with an eval-mode BatchNorm folded in.

    BN(conv(x)) = g (conv(x) - mu) / sqrt(var + eps) + beta (Ioffe & Szegedy 2015,
    arXiv:1502.03167, Alg. 1) is conv(x) with weight * s and (bias - mu) * s + beta,
    s = g / sqrt(var + eps), per output channel, using the running statistics.
    """
    scale = torch.rsqrt(bn.running_var + bn.eps)  # (C,)
    if bn.weight is not None:
        scale = scale * bn.weight
    mean = bn.running_mean if bias is None else bn.running_mean - bias  # (C,)
    shift = -mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    return weight * scale.view(-1, *([1] * (weight.dim() - 1))), shift


class ConformerLayer(nn.Module):
    """One Conformer block, Gulati Eq. (1). forward: (B, T, D) -> (B, T, D)."""

    def __init__(
        self,
        d_model: int,
        d_ff: int,
        n_heads: int = 4,
        self_attention_model: str = "rel_pos",
        conv_kernel_size: int = 31,
        conv_norm_type: str = "batch_norm",
        conv_context_size: tuple[int, int] | None = None,
        dropout: float = 0.1,
        dropout_att: float = 0.1,
        use_bias: bool = True,
        impl: str = "reference",
        pos_bias_u: nn.Parameter | None = None,
        pos_bias_v: nn.Parameter | None = None,
    ):
        super().__init__()
        self.self_attention_model = self_attention_model
        self.norm_feed_forward1 = nn.LayerNorm(d_model)
        self.feed_forward1 = ConformerFeedForward(d_model, d_ff, dropout, use_bias)
        self.norm_self_att = nn.LayerNorm(d_model)
        if self_attention_model == "rel_pos":
            self.self_attn = RelPositionMultiHeadAttention(
                d_model, n_heads, dropout_att, use_bias, impl, pos_bias_u, pos_bias_v
            )
        elif self_attention_model == "abs_pos":
            self.self_attn = MultiHeadAttention(
                d_model, n_heads, dropout_att, use_bias, impl
            )
        else:
            raise ValueError(
                "self_attention_model must be 'rel_pos' or 'abs_pos', "
                f"got {self_attention_model!r}"
            )
        self.norm_conv = nn.LayerNorm(d_model)
        self.conv = ConformerConvolution(
            d_model, conv_kernel_size, conv_norm_type, conv_context_size, use_bias
        )
        self.norm_feed_forward2 = nn.LayerNorm(d_model)
        self.feed_forward2 = ConformerFeedForward(d_model, d_ff, dropout, use_bias)
        self.dropout = Dropout(dropout)
        self.norm_out = nn.LayerNorm(d_model)

    def forward(
        self,
        x: torch.Tensor,
        att_mask: torch.Tensor | None = None,
        pos_emb: torch.Tensor | None = None,
        pad_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x (B, T, D); att_mask (B, T, T) and pad_mask (B, T) True = valid/attend;
        pos_emb (1, 2T-1, D) for rel_pos."""
        # 1) half-step feed-forward
        h = self.feed_forward1(self.norm_feed_forward1(x))
        x = torch.add(x, self.dropout(h), alpha=0.5)  # x + h / 2 in one kernel
        # 2) self-attention
        h = self.norm_self_att(x)
        if self.self_attention_model == "rel_pos":
            h = self.self_attn(h, h, h, pos_emb, att_mask)
        else:
            h = self.self_attn(h, h, h, att_mask)
        x = x + self.dropout(h)
        # 3) convolution module
        x = x + self.dropout(self.conv(self.norm_conv(x), pad_mask))
        # 4) half-step feed-forward and the block's final LayerNorm
        h = self.feed_forward2(self.norm_feed_forward2(x))
        x = torch.add(x, self.dropout(h), alpha=0.5)
        return self.norm_out(x)
