"""The modality adapter: frame stacking and pooling, the utterance-statistics frame,
and padding that never changes a real item's frames; each against a loop by hand."""

import math

import pytest
import torch

from minispeech.speechlm.adapter import ModalityAdapter, reduce_frames


def reduce_by_hand(x, n, stride, how):
    """One item's valid frames x (n, D) -> groups of `stride`, a loop over groups."""
    groups = []
    for start in range(0, n, stride):
        chunk = x[start : min(start + stride, n)]  # the real frames of the group
        if how == "pool":
            groups.append(chunk.mean(0))
        else:  # stack: concatenate, zero-padding a partial group
            pad = torch.zeros(stride - chunk.shape[0], x.shape[1], dtype=x.dtype)
            groups.append(torch.cat([chunk, pad]).reshape(-1))
    return torch.stack(groups)


@pytest.mark.parametrize("how", ["stack", "pool"])
@pytest.mark.parametrize("stride", [2, 3])
def test_reduce_frames_matches_a_loop_and_ignores_padding(how, stride):
    torch.manual_seed(0)
    lens = torch.tensor([11, 7, 1])
    x = torch.randn(3, 11, 4, dtype=torch.float64)
    for b, n in enumerate(lens):
        x[b, n:] = 1e3  # garbage padding
    out, out_lens = reduce_frames(x, lens, stride, how)
    assert out_lens.tolist() == [math.ceil(n / stride) for n in lens.tolist()]
    for b, n in enumerate(lens.tolist()):
        expected = reduce_by_hand(x[b], n, stride, how)
        torch.testing.assert_close(out[b, : out_lens[b]], expected)


def test_no_reduction_is_the_identity():
    x, lens = torch.randn(2, 5, 3), torch.tensor([5, 2])
    out, out_lens = reduce_frames(x, lens, 1, "none")
    assert out is x and out_lens is lens


def test_utterance_stats_frame_is_the_projected_mean_and_std():
    torch.manual_seed(0)
    sizes = dict(d_model=8, n_layers=1, n_heads=2, conv_kernel_size=3, dropout=0.0)
    adapter = ModalityAdapter(6, 8, "stack", 2, **sizes, utterance_stats=3).eval()
    with torch.no_grad():  # statistics and affine parameters as after training
        adapter.stats_norm.running_mean.normal_()
        adapter.stats_norm.running_var.uniform_(0.5, 2.0)
        adapter.stats_norm.weight.normal_()
        adapter.stats_norm.bias.normal_()
    lens = torch.tensor([9, 4])
    enc = torch.randn(2, 6, 9)  # (B, D_enc, T')
    enc[1, :, 4:] = 50.0  # padding
    with torch.no_grad():
        frames, out_lens = adapter(enc, lens)  # (B, 1 + T'', D_lm)
        plain = ModalityAdapter(6, 8, "stack", 2, **sizes)
        plain.load_state_dict(adapter.state_dict(), strict=False)
        words, word_lens = plain.eval()(enc, lens)
    assert out_lens.tolist() == [6, 3] and torch.equal(out_lens, word_lens + 1)
    for b, n in enumerate(lens.tolist()):
        valid = enc[b, :, :n].double()  # (D, n)
        mean = valid.mean(1)
        std = ((valid - mean[:, None]) ** 2).sum(1).div(n - 1).sqrt()  # unbiased
        bn, proj = adapter.stats_norm, adapter.stats_projection
        stats = (torch.cat([mean, std]) - bn.running_mean.double()) / torch.sqrt(
            bn.running_var.double() + bn.eps
        ) * bn.weight.double() + bn.bias.double()  # batch norm at inference
        squeezed = proj[0].weight.double() @ stats + proj[0].bias.double()  # (3,)
        summary = proj[1].weight.double() @ squeezed + proj[1].bias.double()
        torch.testing.assert_close(frames[b, 0].double(), summary, atol=1e-5, rtol=0)
        # the word frames follow, as without the statistics
        torch.testing.assert_close(
            frames[b, 1 : 1 + word_lens[b]], words[b, : word_lens[b]]
        )
    # an item alone gets the same frames as in the padded batch
    with torch.no_grad():
        alone, _ = adapter(enc[1:, :, :4], lens[1:])
    torch.testing.assert_close(alone[0], frames[1, :3], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("width", [-1, True])
def test_utterance_stats_width_is_checked(width):
    with pytest.raises(ValueError, match="utterance_stats: a width >= 0"):
        ModalityAdapter(6, 8, utterance_stats=width)
