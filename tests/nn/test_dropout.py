"""The CPU dropout: its definition (against a float64 formula with the same mask, and
against F.dropout's contract), its gradient, and the statistics of its mask."""

import math

import pytest
import torch
import torch.nn.functional as F

from minispeech.nn.dropout import FIELD_BITS, Dropout, dropout, keep_mask, random_fields


def drop_rate(p: float) -> float:
    """The mask's exact drop probability: p rounded to a multiple of 2^-15."""
    return round(p * 2**FIELD_BITS) / 2**FIELD_BITS


@pytest.mark.parametrize("shape", [(3, 5, 7), (1,), (2, 4), (4, 3, 2, 5)])
@pytest.mark.parametrize("p", [0.1, 0.5])
def test_output_is_x_times_mask_over_keep_probability(shape, p):
    torch.manual_seed(0)
    x = torch.randn(shape)
    out = dropout(x, p)
    kept = out != 0  # x has no zeros (almost surely)
    reference = x.double() * kept.double() / (1.0 - p)  # the definition, float64
    torch.testing.assert_close(out.double(), reference, rtol=1e-6, atol=0)
    assert out.shape == x.shape and out.dtype == x.dtype


def test_gradient_is_mask_over_keep_probability():
    torch.manual_seed(1)
    x = torch.randn(6, 50, requires_grad=True)
    w = torch.randn(6, 50)
    out = dropout(x, 0.3)
    (out * w).sum().backward()
    kept = (out != 0).double()
    torch.testing.assert_close(
        x.grad.double(), w.double() * kept / 0.7, rtol=1e-6, atol=0
    )


def test_same_contract_as_f_dropout():
    """Both scale the kept elements by 1 / (1 - p) and zero the rest, at the same
    rate (within 6 standard deviations over 400k elements)."""
    torch.manual_seed(2)
    x = torch.rand(400, 1000) + 0.5
    p, n = 0.2, x.numel()
    for out in (dropout(x, p), F.dropout(x, p)):
        kept = out != 0
        torch.testing.assert_close(out[kept], x[kept] / (1 - p))
        rate = 1.0 - kept.double().mean().item()
        assert abs(rate - p) < 6 * math.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("p", [0.05, 0.1, 0.5, 0.9])
def test_mask_rate(p):
    torch.manual_seed(3)
    n = 1_000_000
    keep = keep_mask((n,), p)
    q = drop_rate(p)
    assert abs(q - p) <= 2**-16
    rate = 1.0 - keep.double().mean().item()
    assert abs(rate - q) < 6 * math.sqrt(q * (1 - q) / n)


def test_elements_of_one_draw_are_independent():
    """The four elements that share a 64-bit draw: every pair is dropped together
    with probability q^2, and each position drops at rate q."""
    torch.manual_seed(4)
    q = drop_rate(0.3)
    dropped = ~keep_mask((250_000, 4), 0.3)  # row = one draw's four fields
    n = dropped.size(0)
    sigma1 = math.sqrt(q * (1 - q) / n)
    sigma2 = math.sqrt(q * q * (1 - q * q) / n)
    for i in range(4):
        assert abs(dropped[:, i].double().mean().item() - q) < 6 * sigma1
        for j in range(i + 1, 4):
            both = (dropped[:, i] & dropped[:, j]).double().mean().item()
            assert abs(both - q * q) < 6 * sigma2, (i, j)


def test_fields_are_uniform():
    """The 15-bit value behind each decision is uniform at each of the four
    positions of a draw: chi-square over 32 bins (fails by chance with p < 1e-6)."""
    torch.manual_seed(5)
    fields = random_fields((200_000, 4)).long()  # row = one draw's four fields
    assert int(fields.min()) >= 0 and int(fields.max()) < 2**FIELD_BITS
    expected = fields.size(0) / 32
    for i in range(4):
        counts = torch.bincount(fields[:, i] >> (FIELD_BITS - 5), minlength=32)
        chi2 = float(((counts - expected) ** 2 / expected).sum())
        assert chi2 < 84.0, (i, chi2)  # chi-square, 31 dof: P(> 84) < 1e-6
        low = torch.bincount(fields[:, i] & 31, minlength=32)  # the low bits too
        assert float(((low - expected) ** 2 / expected).sum()) < 84.0


def test_position_within_draw_has_no_bias():
    """A biased top bit (the 64th bit of a draw is always 0) must not reach the
    mask: at p = 0.5 the decision is bit 14 of the field; each position keeps half."""
    torch.manual_seed(6)
    keep = keep_mask((100_000, 4), 0.5).double().mean(0)  # (4,)
    assert torch.all((keep - 0.5).abs() < 6 * math.sqrt(0.25 / 100_000))


def test_seeded_and_fresh():
    x = torch.randn(64, 64)
    torch.manual_seed(7)
    a, b = dropout(x, 0.5), dropout(x, 0.5)
    torch.manual_seed(7)
    c = dropout(x, 0.5)
    assert torch.equal(a, c) and not torch.equal(a, b)


def test_identity_cases_and_errors():
    x = torch.randn(5, 6)
    assert dropout(x, 0.5, training=False) is x
    assert dropout(x, 0.0) is x
    assert torch.equal(dropout(x, 1.0), torch.zeros_like(x))
    with pytest.raises(ValueError, match="dropout probability"):
        dropout(x, 1.5)


def test_module():
    layer = Dropout(0.25)
    assert isinstance(layer, torch.nn.Dropout) and layer.state_dict() == {}
    x = torch.randn(8, 9)
    assert layer.eval()(x) is x
    out = layer.train()(x)
    kept = out != 0
    torch.testing.assert_close(out[kept], x[kept] / 0.75)
    y = x.clone()
    Dropout(0.25, inplace=True).train()(y)  # in place: F.dropout's path
    assert ((y == 0) | torch.isclose(y, x / 0.75)).all()


def test_bfloat16():
    torch.manual_seed(8)
    x = torch.randn(32, 32, dtype=torch.bfloat16, requires_grad=True)
    out = dropout(x, 0.5)
    out.sum().backward()
    assert out.dtype == torch.bfloat16 and x.grad.dtype == torch.bfloat16
    assert torch.equal(x.grad != 0, out != 0)
