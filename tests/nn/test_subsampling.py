"""Convolution subsampling: output-length sweeps against real conv shapes, padding."""

import pytest
import torch

from minispeech.nn.subsampling import ConvSubsampling, subsampled_length


@pytest.mark.parametrize(
    "kind,factor",
    [("striding", 2), ("striding", 4), ("dw_striding", 4), ("dw_striding", 8)],
)
def test_output_length_equals_conv_output(kind, factor):
    for feat_in in (7, 80):
        sub = ConvSubsampling(feat_in, 8, kind, factor, conv_channels=4)
        for t in range(1, 34):
            out, lens = sub(torch.randn(1, t, feat_in), torch.tensor([t]))
            assert out.shape == (1, int(lens), 8), (feat_in, t)
            # the textbook rule, one stride-2 stage at a time: floor((L - 1) / 2) + 1
            want = t
            for _ in range(factor.bit_length() - 1):
                want = (want - 1) // 2 + 1
            assert int(lens) == want == int(sub.output_length(torch.tensor([t])))


def test_lengths_seen_in_nemo_reference():
    # README of the NeMo reference folder: striding x4 100 -> 25; dw_striding x8 below
    assert subsampled_length(torch.tensor([100]), 2).tolist() == [25]
    assert subsampled_length(torch.tensor([100, 170, 250]), 3).tolist() == [13, 22, 32]


@pytest.mark.parametrize("kind,factor", [("striding", 4), ("dw_striding", 8)])
def test_padding_invariance(kind, factor):
    sub = ConvSubsampling(16, 12, kind, factor, conv_channels=6).eval()
    with torch.no_grad():  # biases non-zero so padding would leak through ReLU(bias)
        for p in sub.parameters():
            p.add_(0.3 * torch.randn_like(p))
    lens = torch.tensor([37, 20, 9])
    x = torch.randn(3, 37, 16)
    x_padded = x.clone()
    for b, n in enumerate(lens):
        x_padded[b, n:] = 100.0  # garbage in the padding must not matter
    out, out_lens = sub(x_padded, lens)
    for b, n in enumerate(lens):
        alone, alone_len = sub(x[b : b + 1, :n], lens[b : b + 1])
        assert out_lens[b] == alone_len[0]
        assert (out[b, : out_lens[b]] - alone[0]).abs().max() < 1e-5


@pytest.mark.parametrize("kind", ["striding", "dw_striding"])
def test_channels_last_layout_gives_the_default_layouts_values(kind):
    """The fast layout is a memory layout only: outputs and gradients as in the
    default (contiguous) layout, and a state dict loads across layouts."""
    fast = ConvSubsampling(20, 12, kind, 4, conv_channels=6)
    assert fast.conv[0].weight.is_contiguous(memory_format=torch.channels_last)
    plain = ConvSubsampling(20, 12, kind, 4, conv_channels=6)
    plain.set_memory_format(torch.contiguous_format)
    plain.load_state_dict(fast.state_dict())
    assert plain.conv[0].weight.is_contiguous()
    x, lens = torch.randn(3, 41, 20), torch.tensor([41, 30, 7])
    outs = []
    for sub in (fast, plain):
        out, _ = sub(x, lens)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        outs.append((out, [p.grad for p in sub.parameters()]))
    torch.testing.assert_close(outs[0][0], outs[1][0], rtol=1e-5, atol=1e-6)
    for g_fast, g_plain in zip(outs[0][1], outs[1][1]):
        torch.testing.assert_close(g_fast, g_plain, rtol=1e-5, atol=1e-5)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="subsampling must be one of"):
        ConvSubsampling(80, 64, "vggnet", 4)
    with pytest.raises(ValueError, match="power of 2"):
        ConvSubsampling(80, 64, "striding", 6)


def reference_subsampling(sub, x, lens):
    """The stage as NeMo writes it, in float64 and out of place: zero the padded
    frames before every convolution and at the end, then flatten and project."""
    h = x.double().unsqueeze(1)  # (B, 1, T, M)
    for layer in sub.conv:
        if isinstance(layer, torch.nn.Conv2d):
            valid = torch.arange(h.size(2)) < lens[:, None]  # (B, T)
            h = h * valid[:, None, :, None]
            if layer.stride[0] == 2:
                lens = subsampled_length(lens, 1)
            h = torch.nn.functional.conv2d(
                h,
                layer.weight.double(),
                layer.bias.double(),
                layer.stride,
                layer.padding,
                groups=layer.groups,
            )
        else:
            h = torch.relu(h)
    valid = torch.arange(h.size(2)) < lens[:, None]
    h = h * valid[:, None, :, None]
    b, c, t, f = h.shape
    h = h.transpose(1, 2).reshape(b, t, c * f)  # (B, T', C*M')
    out = torch.nn.functional.linear(h, sub.out.weight.double(), sub.out.bias.double())
    return out, lens


@pytest.mark.parametrize("lengths", [[37, 20, 9], [37, 37, 37]])  # full: no masks
@pytest.mark.parametrize("kind,factor", [("striding", 4), ("dw_striding", 8)])
def test_in_place_masks_give_the_reference_values_and_gradients(kind, factor, lengths):
    """The masks and ReLUs run in place (and not at all when no item is padded): the
    values and the gradients (weights and input) equal the out-of-place float64
    reference, and the input is untouched."""
    torch.manual_seed(0)
    sub = ConvSubsampling(16, 12, kind, factor, conv_channels=6)
    with torch.no_grad():
        for p in sub.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(3, 37, 16)
    lens = torch.tensor(lengths)
    x_before = x.clone()
    weights = torch.randn(
        3, subsampled_length(torch.tensor(37), factor.bit_length() - 1), 12
    )
    grads = []
    for fn in (sub, lambda x, lens: reference_subsampling(sub, x, lens)):
        xi = x.clone().requires_grad_()
        sub.zero_grad()
        out, out_lens = fn(xi, lens)
        (out.double() * weights.double()).sum().backward()
        grads.append(
            (
                out.double(),
                out_lens,
                xi.grad,
                [p.grad.clone() for p in sub.parameters()],
            )
        )
    (out, out_lens, gx, gp), (ref, ref_lens, rgx, rgp) = grads
    assert torch.equal(out_lens, ref_lens)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gx.double(), rgx.double(), rtol=1e-5, atol=1e-5)
    for a, b in zip(gp, rgp):
        torch.testing.assert_close(a.double(), b.double(), rtol=1e-4, atol=1e-5)
    assert torch.equal(x, x_before)
