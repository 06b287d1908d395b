"""Multi-head attention, plain and with Transformer-XL relative positions; masks.

Vaswani et al. 2017, "Attention Is All You Need", arXiv:1706.03762, Sec. 3.2:
    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V, in H heads of d_k = D / H.
Relative positions: Dai et al. 2019, "Transformer-XL", arXiv:1901.02860, Sec. 3.3. The
score of query i and key j is the sum of the four terms of their Eq. for A^rel_{i,j}:
    (a) q_i k_j + (c) u k_j                 = (q_i + u) k_j          [pos_bias_u]
    (b) q_i W_R R_ij + (d) v W_R R_ij      = (q_i + v) W_R R_ij     [pos_bias_v]
    (R_ij = R_{i-j}; W_R = linear_pos)
with R the sinusoids of positional.py and W_R = `linear_pos` (no bias). Terms (b)+(d)
are computed against all 2T-1 distances at once and re-indexed by `rel_shift` (their
App. B); the layers use `rel_shift_view`, the same re-indexing as a strided view. The
Conformer (Gulati et al. 2020, "Conformer", arXiv:2005.08100, Sec. 2.1) uses this
module.

Masks are boolean with True = "may attend" (the convention of
`torch.nn.functional.scaled_dot_product_attention`). Limited context `att_context_size =
[left, right]` lets query i see keys i-left .. i+right (-1 = unlimited), as in NeMo.

Differences from the papers: as in NeMo, masked scores are set to -10000 (not -inf) and
a query whose keys are all masked (a padded frame) gets an all-zero attention row, so
padded frames never produce NaN. Parameter names follow NeMo so its checkpoints load
without renaming.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from minispeech.nn.dropout import dropout

MASKED_SCORE = -10000.0  # NeMo's value; exp(-10000) underflows to exactly 0 in float32
IMPLS = ("reference", "sdpa")


def padding_mask(lens: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B,) lengths -> (B, T) bool, True on valid frames."""
    return torch.arange(max_len, device=lens.device) < lens.unsqueeze(1)  # (B, T)


def context_mask(
    max_len: int,
    att_context_size: tuple[int, int] = (-1, -1),
    att_context_style: str = "regular",
    device: torch.device | None = None,
) -> torch.Tensor:
    """(T, T) bool: True where query i may see key j under the limited context.

    regular: i - left <= j <= i + right. chunked_limited (cache-aware streaming):
    frames are cut into chunks of right+1; a query sees its own chunk and
    left // (right+1) chunks back.
    """
    left, right = att_context_size
    i = torch.arange(max_len, device=device).unsqueeze(1)  # (T, 1) query index
    j = torch.arange(max_len, device=device).unsqueeze(0)  # (1, T) key index
    allowed = torch.ones(max_len, max_len, dtype=torch.bool, device=device)
    if att_context_style == "chunked_limited" and right >= 0:
        chunk = right + 1
        left_chunks = left // chunk if left >= 0 else max_len
        chunk_gap = torch.div(i, chunk, rounding_mode="floor") - torch.div(
            j, chunk, rounding_mode="floor"
        )
        return (chunk_gap >= 0) & (chunk_gap <= left_chunks)
    if att_context_style not in ("regular", "chunked_limited"):
        raise ValueError(f"att_context_style {att_context_style!r} is not supported")
    if left >= 0:
        allowed &= j >= i - left
    if right >= 0:
        allowed &= j <= i + right
    return allowed


def self_attention_mask(
    lens: torch.Tensor,
    max_len: int,
    att_context_size: tuple[int, int] = (-1, -1),
    att_context_style: str = "regular",
) -> torch.Tensor:
    """(B, T, T) bool: both frames valid and within the context window."""
    valid = padding_mask(lens, max_len)  # (B, T)
    window = context_mask(max_len, att_context_size, att_context_style, lens.device)
    return valid.unsqueeze(2) & valid.unsqueeze(1) & window  # (B, T, T)


def rel_shift(x: torch.Tensor) -> torch.Tensor:
    """Re-index scores against distances: x (B, H, T, 2T-1) -> (B, H, T, 2T-1).

    Column c of x belongs to distance T-1-c; after the shift, out[..., i, j] for j < T
    holds the score of distance i - j, i.e. out[..., i, j] = x[..., i, j + T-1-i].
    Done with one pad and two views instead of a gather (Transformer-XL App. B):
    prepend a zero column, read the buffer as (2T, T), drop its first row.
    """
    b, h, t, p = x.shape
    x = F.pad(x, (1, 0))  # (B, H, T, 2T)
    x = x.view(b, h, p + 1, t)  # (B, H, 2T, T)
    return x[:, :, 1:].reshape(b, h, t, p)  # (B, H, T, 2T-1)


def rel_shift_view(x: torch.Tensor) -> torch.Tensor:
    """rel_shift(x)[..., :T] as a strided view of x, without a copy: x (B, H, T, 2T-1)
    contiguous -> (B, H, T, T).

    out[..., i, j] = x[..., i, j + T-1-i] sits at offset i (2T-1) + j + T-1-i =
    i (2T-2) + j + (T-1) from the start of its (T, 2T-1) slice: a row stride of
    2T-2, a column stride of 1 and a storage offset of T-1. Rows never overlap, so
    autograd's as_strided backward is exact.
    """
    b, h, t, p = x.shape
    assert p == 2 * t - 1 and x.is_contiguous(), (x.shape, x.stride())
    stride = (x.stride(0), x.stride(1), p - 1, 1)
    return x.as_strided((b, h, t, t), stride, x.storage_offset() + t - 1)


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    impl: str = "reference",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """softmax(q k^T / sqrt(d_k) + bias) v, with masked keys removed.

    q (B, H, T, d_k), k and v (B, H, T2, d_k), mask (B, 1|H, T, T2) bool True = attend,
    bias (B|1, H, T, T2) added to the scaled scores. Returns (out (B, H, T, d_k),
    weights (B, H, T, T2) for impl="reference", None for impl="sdpa").
    """
    if impl == "sdpa":
        return _sdpa(q, k, v, mask, bias, dropout_p), None
    if impl != "reference":
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    inv_scale = 1.0 / math.sqrt(q.size(-1))  # 1 / sqrt(d_k), Vaswani Eq. 1
    if bias is None:
        scores = torch.matmul(q, k.transpose(-2, -1)).mul_(inv_scale)  # (B, H, T, T2)
    else:  # bias + q k^T / sqrt(d_k) in one kernel
        scores = _add_scores(bias, q, k, inv_scale)
    if mask is not None:
        blocked = ~mask
        # in place: the matmul's backward does not need its output
        scores.masked_fill_(blocked, MASKED_SCORE)
    weights = torch.softmax(scores, dim=-1)  # (B, H, T, T2)
    if mask is not None:
        # fully masked rows become 0, not uniform
        weights = weights.masked_fill(blocked, 0.0)
    out = torch.matmul(dropout(weights, dropout_p), v)  # (B, H, T, d_k)
    return out, weights


def _add_scores(bias, q, k, alpha: float) -> torch.Tensor:
    """bias + alpha q k^T: bias (B|1, H, T, T2), q (B, H, T, d_k), k (B, H, T2, d_k)
    -> (B, H, T, T2), through one batched baddbmm over the B*H heads."""
    b, h, t, d = q.shape
    t2 = k.size(2)
    bias = bias.expand(b, h, t, t2).reshape(b * h, t, t2)  # a view when B matches
    q3, k3 = q.reshape(b * h, t, d), k.reshape(b * h, t2, d)
    return torch.baddbmm(bias, q3, k3.transpose(1, 2), alpha=alpha).view(b, h, t, t2)


def _sdpa(q, k, v, mask, bias, dropout_p):
    """The same computation through PyTorch's fused kernel."""
    attn_mask = mask
    if bias is not None:
        attn_mask = bias if mask is None else bias.masked_fill(~mask, MASKED_SCORE)
    elif mask is not None:
        attn_mask = torch.zeros(mask.shape, dtype=q.dtype, device=q.device)
        attn_mask = attn_mask.masked_fill(~mask, MASKED_SCORE)
    out = F.scaled_dot_product_attention(
        q, k, v, attn_mask=attn_mask, dropout_p=dropout_p
    )
    if mask is not None:
        out = out.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)  # fully masked rows
    return out


class MultiHeadAttention(nn.Module):
    """Multi-head attention (Vaswani Sec. 3.2.2): project, attend per head, merge."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        dropout_att: float = 0.0,
        use_bias: bool = True,
        impl: str = "reference",
    ):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        if impl not in IMPLS:
            raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
        self.n_heads, self.d_k, self.impl = n_heads, d_model // n_heads, impl
        self.dropout_att = dropout_att
        self.linear_q = nn.Linear(d_model, d_model, bias=use_bias)
        self.linear_k = nn.Linear(d_model, d_model, bias=use_bias)
        self.linear_v = nn.Linear(d_model, d_model, bias=use_bias)
        self.linear_out = nn.Linear(d_model, d_model, bias=use_bias)

    def extra_repr(self) -> str:
        return (
            f"n_heads={self.n_heads}, d_k={self.d_k}, "
            f"dropout_att={self.dropout_att}, impl={self.impl}"
        )

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, H, T, d_k)."""
        return x.view(x.size(0), x.size(1), self.n_heads, self.d_k).transpose(1, 2)

    def project_q(self, query: torch.Tensor) -> torch.Tensor:
        """Queries per head, (B, T, D) -> (B, H, T, d_k)."""
        return self.split_heads(self.linear_q(query))

    def project_kv(self, key: torch.Tensor, value: torch.Tensor):
        """Keys and values per head, (B, T2, D) -> 2 x (B, H, T2, d_k); cacheable."""
        return self.split_heads(self.linear_k(key)), self.split_heads(
            self.linear_v(value)
        )

    def attend(self, q, k, v, mask=None, bias=None, return_weights=False):
        """Projected q (B, H, T, d_k), k, v -> (B, T, D) [, weights (B, H, T, T2)]."""
        if mask is not None and mask.dim() == 3:
            mask = mask.unsqueeze(1)  # (B, 1, T, T2): the same mask for every head
        impl = "reference" if return_weights else self.impl
        p = self.dropout_att if self.training else 0.0
        out, weights = scaled_dot_product_attention(q, k, v, mask, bias, p, impl)
        out = out.transpose(1, 2).reshape(q.size(0), q.size(2), -1)  # (B, T, D)
        out = self.linear_out(out)
        return (out, weights) if return_weights else out

    def forward(self, query, key, value, mask=None, return_weights=False):
        """query (B, T, D), key/value (B, T2, D), mask (B, T, T2) -> (B, T, D)."""
        assert query.dim() == 3 and key.dim() == 3, (query.shape, key.shape)
        k, v = self.project_kv(key, value)
        return self.attend(self.project_q(query), k, v, mask, None, return_weights)


class RelPositionMultiHeadAttention(MultiHeadAttention):
    """Transformer-XL attention with relative positions (Dai et al. Sec. 3.3)."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        dropout_att: float = 0.0,
        use_bias: bool = True,
        impl: str = "reference",
        pos_bias_u: nn.Parameter | None = None,
        pos_bias_v: nn.Parameter | None = None,
    ):
        super().__init__(d_model, n_heads, dropout_att, use_bias, impl)
        self.linear_pos = nn.Linear(d_model, d_model, bias=False)  # W_R
        # u and v of Transformer-XL; passed in (shared) when tied across layers
        shape = (n_heads, self.d_k)
        self.pos_bias_u = (
            nn.Parameter(torch.zeros(shape)) if pos_bias_u is None else pos_bias_u
        )
        self.pos_bias_v = (
            nn.Parameter(torch.zeros(shape)) if pos_bias_v is None else pos_bias_v
        )

    def position_scores(self, q: torch.Tensor, pos_emb: torch.Tensor) -> torch.Tensor:
        """Terms (b)+(d) divided by sqrt(d_k): q (B, H, T, d_k) -> (B, H, T, T)."""
        p = self.linear_pos(pos_emb).view(pos_emb.size(0), -1, self.n_heads, self.d_k)
        p = p.transpose(1, 2)  # (1, H, 2T-1, d_k)
        # scaling q (T d_k numbers) instead of the scores (T (2T-1) numbers)
        q_v = (q + self.pos_bias_v.unsqueeze(1)) / math.sqrt(self.d_k)  # (B, H, T, d_k)
        scores = torch.matmul(q_v, p.transpose(-2, -1))  # (B, H, T, 2T-1)
        return rel_shift_view(scores)  # (B, H, T, T), = rel_shift(scores)[..., :T]

    def forward(self, query, key, value, pos_emb, mask=None, return_weights=False):
        """query/key/value (B, T, D), pos_emb (1, 2T-1, D), mask (B, T, T)."""
        assert query.dim() == 3 and pos_emb.size(1) == 2 * key.size(1) - 1, (
            query.shape,
            pos_emb.shape,
        )
        q = self.project_q(query)  # (B, H, T, d_k)
        k, v = self.project_kv(key, value)
        bias = self.position_scores(q, pos_emb)  # terms (b)+(d)
        q_u = q + self.pos_bias_u.unsqueeze(1)  # terms (a)+(c) come from (q + u) k
        return self.attend(q_u, k, v, mask, bias, return_weights)
