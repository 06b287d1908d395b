"""The Conformer convolution module's fast path against the textbook one.

The module runs its pointwise convs as matmuls, its depthwise conv as a channels-last
(1 x k) conv2d and, in eval mode, folds BatchNorm into that conv. The reference below
is Gulati et al. 2020 Fig. 2 written with plain Conv1d / BatchNorm modules on (B, D, T),
in float64.
"""

import pytest
import torch
import torch.nn.functional as F

from minispeech.nn.conformer_block import ConformerConvolution, fold_batch_norm


def reference(module: ConformerConvolution, x, pad_mask=None):
    """Pointwise Conv1d, GLU, mask, padded depthwise Conv1d, norm, SiLU, pointwise."""
    y = module.pointwise_conv1(x.transpose(1, 2))  # (B, 2D, T)
    y = F.glu(y, dim=1)
    if pad_mask is not None:
        y = y.masked_fill(~pad_mask.unsqueeze(1), 0.0)
    y = module.depthwise_conv(F.pad(y, module.context_size))
    if module.norm_type == "layer_norm":
        y = module.batch_norm(y.transpose(1, 2)).transpose(1, 2)
    else:
        y = module.batch_norm(y)
    return module.pointwise_conv2(F.silu(y)).transpose(1, 2)  # (B, T, D)


def randomized(norm_type: str, context=None, kernel: int = 7, d: int = 12):
    torch.manual_seed(0)
    module = ConformerConvolution(d, kernel, norm_type, context).double()
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.5)
        if norm_type == "batch_norm":
            module.batch_norm.running_mean.normal_()
            module.batch_norm.running_var.uniform_(0.3, 3.0)
    return module


CASES = [("batch_norm", None), ("batch_norm", (6, 0)), ("layer_norm", (2, 4))]


@pytest.mark.parametrize("norm_type,context", CASES)
@pytest.mark.parametrize("training", [False, True])
def test_fast_path_equals_reference(norm_type, context, training):
    module = randomized(norm_type, context).train(training)
    twin = randomized(norm_type, context).train(training)
    x = torch.randn(3, 20, 12, dtype=torch.float64)
    pad_mask = torch.arange(20) < torch.tensor([20, 13, 5])[:, None]  # (B, T)
    for mask in (None, pad_mask):
        x1 = x.clone().requires_grad_()
        x2 = x.clone().requires_grad_()
        out, ref = module(x1, mask), reference(twin, x2, mask)
        torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
        if training:  # the same gradients, and BatchNorm's statistics move alike
            grad = torch.randn_like(out)
            out.backward(grad)
            ref.backward(grad)
            torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-10, atol=1e-10)
            for (name, p), q in zip(module.named_parameters(), twin.parameters()):
                torch.testing.assert_close(p.grad, q.grad, msg=name)
                p.grad = q.grad = None
            for a, b in zip(module.buffers(), twin.buffers()):
                torch.testing.assert_close(a, b)


def test_float32_fast_path_close_to_reference_at_recipe_shape():
    module = ConformerConvolution(176, 31).eval()
    with torch.no_grad():
        module.batch_norm.running_var.uniform_(0.5, 2.0)
        x = torch.randn(2, 101, 176)
        torch.testing.assert_close(module(x), reference(module, x), rtol=0, atol=1e-5)


def test_fold_batch_norm_against_the_formula():
    bn = torch.nn.BatchNorm1d(4).double().eval()
    with torch.no_grad():
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.normal_()
        bn.bias.normal_()
    conv = torch.nn.Conv1d(4, 4, 3, groups=4).double()
    x = torch.randn(2, 4, 9, dtype=torch.float64)
    for bias in (conv.bias, None):
        weight, shift = fold_batch_norm(conv.weight, bias, bn)
        folded = F.conv1d(x, weight, shift, groups=4)
        expected = bn(F.conv1d(x, conv.weight, bias, groups=4))
        torch.testing.assert_close(folded, expected, rtol=1e-12, atol=1e-12)
