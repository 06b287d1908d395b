"""Attention: fused vs readable path, brute-force float64 references, masks."""

import math

import pytest
import torch

from minispeech.nn.attention import (
    MultiHeadAttention,
    RelPositionMultiHeadAttention,
    context_mask,
    rel_shift,
    rel_shift_view,
    scaled_dot_product_attention,
    self_attention_mask,
)
from minispeech.nn.positional import (
    PositionalEncoding,
    RelPositionalEncoding,
    sinusoid_table,
)


def brute_force_attention(q, k, v, allowed, bias=None):
    """One query at a time in float64: softmax over the allowed keys only, 0 if none."""
    b, h, t, d = q.shape
    out = torch.zeros(b, h, t, d, dtype=torch.float64)
    for bi in range(b):
        for hi in range(h):
            for i in range(t):
                keys = [j for j in range(k.size(2)) if allowed[bi, i, j]]
                if not keys:
                    continue
                s = torch.stack(
                    [q[bi, hi, i].double() @ k[bi, hi, j].double() for j in keys]
                )
                s = s / math.sqrt(d)
                if bias is not None:
                    s = s + bias[bi, hi, i, keys].double()
                w = torch.softmax(s, dim=0)
                out[bi, hi, i] = (w[:, None] * v[bi, hi, keys].double()).sum(0)
    return out


def test_scaled_dot_product_matches_brute_force_and_sdpa():
    b, h, t, d = 2, 3, 7, 5
    q, k, v = (torch.randn(b, h, t, d) for _ in range(3))
    lens = torch.tensor([7, 4])
    allowed = self_attention_mask(lens, t, (2, 1))  # padding and limited context
    bias = torch.randn(b, h, t, t)
    want = brute_force_attention(q, k, v, allowed, bias)
    for impl in ("reference", "sdpa"):
        got, _ = scaled_dot_product_attention(
            q, k, v, allowed[:, None], bias, impl=impl
        )
        assert (got.double() - want).abs().max() < 1e-5, impl
    # padded query rows give exactly zero, never NaN
    got, _ = scaled_dot_product_attention(q, k, v, allowed[:, None], impl="sdpa")
    assert torch.all(got[1, :, 4:] == 0)


@pytest.mark.parametrize("context", [(-1, -1), (3, 0), (1, 2)])
def test_mha_reference_equals_sdpa(context):
    torch.manual_seed(0)
    ref = MultiHeadAttention(16, 4, impl="reference")
    fast = MultiHeadAttention(16, 4, impl="sdpa")
    fast.load_state_dict(ref.state_dict())
    x = torch.randn(3, 9, 16)
    mask = self_attention_mask(torch.tensor([9, 5, 1]), 9, context)
    assert (ref(x, x, x, mask) - fast(x, x, x, mask)).abs().max() < 1e-5


def test_rel_shift_formula():
    t = 5
    x = torch.randn(2, 3, t, 2 * t - 1)
    got = rel_shift(x)[..., :t]
    want = torch.empty(2, 3, t, t)
    for i in range(t):
        for j in range(t):
            want[..., i, j] = x[..., i, j + t - 1 - i]  # the column of distance i - j
    assert torch.equal(got, want)


def test_rel_shift_view_is_the_shift_without_a_copy():
    torch.manual_seed(3)
    for t in (1, 2, 7):
        x = torch.randn(2, 3, t, 2 * t - 1, dtype=torch.float64, requires_grad=True)
        got = rel_shift_view(x)
        assert got.data_ptr() >= x.data_ptr()  # a view of x's storage
        want = rel_shift(x)[..., :t]
        assert torch.equal(got, want)
        # the backward of the strided view scatters exactly where rel_shift's does
        w = torch.randn(2, 3, t, t, dtype=torch.float64)
        (g_got,) = torch.autograd.grad((got * w).sum(), x)
        (g_want,) = torch.autograd.grad((want * w).sum(), x)
        assert torch.equal(g_got, g_want)


def test_attention_scores_with_bias_equal_the_formula():
    """bias + q k^T / sqrt(d_k) through the fused baddbmm, vs float64 einsum."""
    torch.manual_seed(4)
    q, k, v = (torch.randn(2, 3, 5, 4) for _ in range(3))
    for bias in (torch.randn(2, 3, 5, 5), torch.randn(1, 3, 5, 5)):
        out, weights = scaled_dot_product_attention(q, k, v, bias=bias)
        scores = torch.einsum("bhid,bhjd->bhij", q.double(), k.double()) / 2.0
        want = torch.softmax(scores + bias.double(), dim=-1)
        assert (weights.double() - want).abs().max() < 1e-6
        assert (out.double() - want @ v.double()).abs().max() < 1e-5


def test_rel_position_attention_without_a_mask_equals_an_all_true_mask():
    """The encoder passes no mask when every frame is valid: both impls agree with
    the masked computation."""
    torch.manual_seed(5)
    att = RelPositionMultiHeadAttention(16, 4)
    x = torch.randn(3, 7, 16)
    _, pos_emb = RelPositionalEncoding(16)(x)
    full = self_attention_mask(torch.tensor([7, 7, 7]), 7)
    want = att(x, x, x, pos_emb, full)
    for impl in ("reference", "sdpa"):
        att.impl = impl
        assert (att(x, x, x, pos_emb, None) - want).abs().max() < 1e-6, impl


def test_rel_position_attention_matches_transformer_xl_formula():
    """Score(i, j) = ((q_i + u) k_j + (q_i + v) W_R R_{i-j}) / sqrt(d_k), Dai 3.3."""
    torch.manual_seed(1)
    d_model, n_heads, t = 12, 3, 6
    att = RelPositionMultiHeadAttention(d_model, n_heads)
    with torch.no_grad():
        att.pos_bias_u.normal_()
        att.pos_bias_v.normal_()
    x = torch.randn(2, t, d_model)
    _, pos_emb = RelPositionalEncoding(d_model)(x)
    lens = torch.tensor([6, 4])
    mask = self_attention_mask(lens, t)
    q, k, v = att.project_q(x), *att.project_kv(x, x)
    dk = d_model // n_heads
    bias = torch.zeros(2, n_heads, t, t)
    for i in range(t):
        for j in range(t):
            r = sinusoid_table(torch.tensor([float(i - j)]), d_model)  # R_{i-j}
            p = att.linear_pos(r).view(n_heads, dk)  # W_R R_{i-j} per head
            bias[:, :, i, j] = ((q[:, :, i] + att.pos_bias_v) * p).sum(-1) / math.sqrt(
                dk
            )
    want = brute_force_attention(q + att.pos_bias_u[:, None], k, v, mask, bias)
    want = att.linear_out(want.float().transpose(1, 2).reshape(2, t, d_model))
    for impl in ("reference", "sdpa"):
        att.impl = impl
        got = att(x, x, x, pos_emb, mask)
        assert (got - want).abs().max() < 1e-5, impl


def test_context_mask_brute_force():
    t = 9
    for left, right in [(-1, -1), (0, 0), (2, 1), (-1, 0), (3, -1)]:
        got = context_mask(t, (left, right))
        for i in range(t):
            for j in range(t):
                ok = (left < 0 or j >= i - left) and (right < 0 or j <= i + right)
                assert bool(got[i, j]) == ok, (left, right, i, j)
    got = context_mask(t, (4, 1), "chunked_limited")  # chunks of 2, 2 chunks back
    for i in range(t):
        for j in range(t):
            assert bool(got[i, j]) == (0 <= i // 2 - j // 2 <= 2), (i, j)


def test_limited_context_by_gradient():
    """Frames outside [i - left, i + right] get exactly zero gradient from output i."""
    torch.manual_seed(2)
    att = RelPositionMultiHeadAttention(8, 2)
    t, (left, right) = 10, (3, 1)
    x = torch.randn(1, t, 8, requires_grad=True)
    _, pos_emb = RelPositionalEncoding(8)(x)
    out = att(
        x, x, x, pos_emb, self_attention_mask(torch.tensor([t]), t, (left, right))
    )
    for i in range(t):
        (grad,) = torch.autograd.grad(out[0, i].sum(), x, retain_graph=True)
        touched = grad[0].abs().sum(-1) > 0
        for j in range(t):
            assert bool(touched[j]) == (i - left <= j <= i + right), (i, j)


def test_sinusoid_table_formula():
    table = sinusoid_table(torch.tensor([0.0, 3.0, -2.0]), 6)
    for r, pos in enumerate([0.0, 3.0, -2.0]):
        for i in range(3):
            angle = pos / 10000 ** (2 * i / 6)
            assert abs(table[r, 2 * i] - math.sin(angle)) < 1e-6
            assert abs(table[r, 2 * i + 1] - math.cos(angle)) < 1e-6
    enc = RelPositionalEncoding(6, max_len=4)
    rel = enc.relative_positions(7)  # grows the table past max_len
    assert torch.allclose(rel, sinusoid_table(torch.arange(6, -7, -1).float(), 6))


@pytest.mark.parametrize("relative", [True, False])
def test_table_grown_while_decoding_trains_later(relative):
    # decoding (inference mode) may meet the longest input first and grow the table;
    # a later training step saves those rows for backward (here through a Linear,
    # as linear_pos does), which an inference-mode tensor would refuse
    enc = (RelPositionalEncoding if relative else PositionalEncoding)(8, max_len=4)
    grow = enc.relative_positions if relative else enc.positions
    with torch.inference_mode():
        grow(7)
    rows = grow(7)
    assert not rows.is_inference()
    linear = torch.nn.Linear(8, 8)
    linear(rows).sum().backward()
    assert linear.weight.grad.abs().sum() > 0
