"""Modality adapter: ASR encoder frames -> vectors in the LM's embedding space.

SALM (NeMo speechlm2; Chen et al. 2024, arXiv:2310.09424, Sec. 2.1) feeds the frozen
encoder's output through a modality adapter (a 2-layer Conformer without subsampling,
Gulati et al. 2020, arXiv:2005.08100) and a linear projection to the LM width:
    enc (B, D_enc, T') -> [reduce x k] -> (B, T'/k, D_a) -> Conformer x N
        -> W -> (B, T'', D_lm)
Frame-rate reduction, offered besides NeMo's plain adapter because every audio frame
becomes an LM position (attention cost grows with the square of the sequence):
- "stack": concatenate k consecutive frames, (T', D) -> (T'/k, k D), then a linear map
  to D_a (as the "concat" downsampler of SLAM-ASR, Ma et al. 2024, arXiv:2402.08846);
- "pool": average k consecutive frames (then a linear map when D_enc != D_a);
- "none": k = 1.
A trailing partial group is zero-padded (stack) or averaged over its real frames (pool).
With `utterance_stats: k`, one more frame goes first: the mean and standard deviation
of the input over the valid frames (x-vector statistics pooling, Snyder et al. 2018),
batch-normalized as in the x-vector and TitaNet heads (the statistics differ little
between recordings next to their common offset), squeezed through k dimensions and
projected to the LM width (a wide summary names each training recording, and the LM
learns their answers by heart instead of listening); a question about the whole
voice then reads one position instead of gathering it from every frame. With
`summary: soft_word` the frame is instead an expected token embedding of the LM,
softmax(W s + b) E over its vocabulary: it looks like a word from the first step, so
the LM attends to it (a free projection starts where the LM never looks).
"""

from __future__ import annotations

import torch
from torch import nn

from minispeech.nn import ConformerEncoder
from minispeech.nn.stats_pool import StatsPoolLayer

REDUCTIONS = ("none", "stack", "pool")
SUMMARIES = ("linear", "soft_word")


def reduce_frames(x: torch.Tensor, lens: torch.Tensor, stride: int, how: str):
    """x (B, T, D), lens (B,) -> stacked (B, ceil(T/k), k D) or pooled (B, ceil(T/k),
    D), with lens ceil(lens / k). Padded frames are zeroed first, so they never leak
    into a real group."""
    if how == "none" or stride == 1:
        return x, lens
    n_batch, n_frames, dim = x.shape
    valid = torch.arange(n_frames, device=x.device) < lens.unsqueeze(1)  # (B, T)
    x = x * valid.unsqueeze(-1)
    pad = -n_frames % stride
    x = nn.functional.pad(x, (0, 0, 0, pad))  # (B, T + pad, D)
    groups = x.view(n_batch, -1, stride, dim)  # (B, T/k, k, D)
    out_lens = torch.div(lens + stride - 1, stride, rounding_mode="floor")  # (B,)
    if how == "stack":
        return groups.reshape(n_batch, -1, stride * dim), out_lens  # (B, T/k, kD)
    counts = nn.functional.pad(valid, (0, pad)).view(n_batch, -1, stride)  # (B,T/k,k)
    counts = counts.sum(-1, keepdim=True).clamp_min(1)  # (B, T/k, 1)
    return groups.sum(2) / counts, out_lens  # (B, T/k, D)


class ModalityAdapter(nn.Module):
    """enc (B, D_enc, T'), enc_lens -> frames (B, T'', D_lm), lens (B,)."""

    def __init__(
        self,
        d_in: int,
        d_out: int,
        reduction: str = "none",
        stride: int = 1,
        d_model: int = 128,
        n_layers: int = 2,
        n_heads: int = 4,
        conv_kernel_size: int = 9,
        dropout: float = 0.1,
        utterance_stats: int = 0,
        summary: str = "linear",
        embedding: nn.Embedding | None = None,
    ):
        """`embedding`: the LM's token embedding, for `summary: soft_word`."""
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(
                f"reduction must be one of {REDUCTIONS}, not {reduction!r}"
            )
        if stride < 1 or (reduction == "none" and stride != 1):
            raise ValueError(f"stride {stride}: >= 1, and 1 when reduction is none")
        self.reduction, self.stride = reduction, stride
        d_reduced = d_in * stride if reduction == "stack" else d_in
        self.conformer = None
        if n_layers > 0:  # NeMo's adapter: a Conformer without subsampling
            self.conformer = ConformerEncoder(
                feat_in=d_reduced,
                n_layers=n_layers,
                d_model=d_model,
                subsampling=None,
                n_heads=n_heads,
                conv_kernel_size=conv_kernel_size,
                dropout=dropout,
                dropout_pre_encoder=dropout,
                dropout_emb=0.0,
            )
            d_reduced = d_model
        self.projection = nn.Linear(d_reduced, d_out)  # into the LM's embedding space
        self.stats = self.stats_norm = self.stats_projection = None
        if utterance_stats < 0 or isinstance(utterance_stats, bool):
            raise ValueError(f"utterance_stats: a width >= 0, not {utterance_stats!r}")
        if summary not in SUMMARIES:
            raise ValueError(f"summary must be one of {SUMMARIES}, not {summary!r}")
        if summary == "soft_word" and (not utterance_stats or embedding is None):
            raise ValueError(
                "summary soft_word: needs utterance_stats and the LM's embedding"
            )
        if utterance_stats:
            self.stats = StatsPoolLayer(d_in, "xvector")  # [mean, std] (B, 2 D_enc)
            self.stats_norm = nn.BatchNorm1d(2 * d_in)
            if summary == "soft_word":  # (B, 2 D_enc) -> (B, V) -> (B, D_lm)
                self.stats_projection = SoftWord(2 * d_in, embedding)
            else:  # (B, 2 D_enc) -> (B, k) -> (B, D_lm)
                self.stats_projection = nn.Sequential(
                    nn.Linear(2 * d_in, utterance_stats),
                    nn.Linear(utterance_stats, d_out),
                )

    def forward(self, enc: torch.Tensor, enc_lens: torch.Tensor):
        assert enc.dim() == 3, f"expected encoder output (B, D, T'), got {enc.shape}"
        x, lens = reduce_frames(
            enc.transpose(1, 2), enc_lens, self.stride, self.reduction
        )
        if self.conformer is not None:
            x, lens = self.conformer(x.transpose(1, 2), lens)  # (B, D_a, T'')
            x = x.transpose(1, 2)  # (B, T'', D_a)
        x = self.projection(x)  # (B, T'', D_lm)
        if self.stats is not None:
            stats = self.stats_norm(self.stats(enc, enc_lens))  # (B, 2 D_enc)
            summary = self.stats_projection(stats)  # (B, D_lm)
            x, lens = torch.cat([summary.unsqueeze(1), x], 1), lens + 1  # (B,T''+1,D)
        return x, lens  # (B, T'', D_lm)


class SoftWord(nn.Module):
    """x (B, C) -> softmax(W x + b) E (B, D): an expected token embedding of the LM."""

    def __init__(self, d_in: int, embedding: nn.Embedding):
        super().__init__()
        self.logits = nn.Linear(d_in, embedding.num_embeddings)
        self.embedding = [embedding]  # the LM's: not registered (nor saved) twice

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x).softmax(-1) @ self.embedding[0].weight  # (B, D)
