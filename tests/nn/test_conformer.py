"""Conformer block and encoder: padding invariance, limited context, parameters."""

import pytest
import torch

from minispeech.nn.attention import padding_mask, self_attention_mask
from minispeech.nn.conformer import ConformerEncoder, stochastic_depth_probs
from minispeech.nn.conformer_block import ConformerLayer

SMALL = dict(feat_in=20, n_layers=2, d_model=32, n_heads=4, conv_kernel_size=5)
VARIANTS = {
    "conformer": dict(subsampling="striding", subsampling_factor=4),
    "fastconformer": dict(
        subsampling="dw_striding", subsampling_factor=8, subsampling_conv_channels=16
    ),
    "abs_pos_layer_norm": dict(
        self_attention_model="abs_pos", conv_norm_type="layer_norm"
    ),
    "limited_context_tied": dict(att_context_size=[3, 1], untie_biases=False),
    "chunked_causal": dict(
        att_context_size=[4, 1],
        att_context_style="chunked_limited",
        conv_context_size="causal",
    ),
}


def perturbed(encoder):
    """Random biases, norms, BatchNorm statistics, u and v (all 0/1 at init)."""
    with torch.no_grad():
        for name, p in encoder.named_parameters():
            if p.dim() == 1 or "pos_bias" in name:
                p.add_(0.2 * torch.randn_like(p))
        for m in encoder.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return encoder.eval()


@pytest.mark.parametrize("variant", VARIANTS)
def test_padding_invariance(variant):
    enc = perturbed(ConformerEncoder(**SMALL, **VARIANTS[variant]))
    lens = torch.tensor([64, 41, 23])
    feats = torch.randn(3, 20, 64)
    for b, n in enumerate(lens):
        feats[b, :, n:] = 50.0  # garbage padding
    with torch.no_grad():
        out, out_lens = enc(feats, lens)
        assert out.shape == (3, 32, int(out_lens.max()))
        for b, n in enumerate(lens):
            alone, alone_lens = enc(feats[b : b + 1, :, :n], lens[b : b + 1])
            assert out_lens[b] == alone_lens[0] == enc.output_length(lens)[b]
            diff = out[b, :, : out_lens[b]] - alone[0]
            assert diff.abs().max() < 1e-4, (variant, b)


def receptive_field(enc, t):
    """For each output frame, the set of input frames with a non-zero gradient."""
    x = torch.randn(1, enc.feat_in, t, requires_grad=True)
    out, _ = enc(x, torch.tensor([t]))
    fields = []
    for i in range(t):
        (grad,) = torch.autograd.grad(out[0, :, i].sum(), x, retain_graph=True)
        fields.append({j for j in range(t) if grad[0, :, j].abs().sum() > 0})
    return fields


def test_limited_context_one_layer():
    """Attention sees [i-2, i+1]; the kernel-3 conv then adds one frame each side."""
    enc = perturbed(
        ConformerEncoder(
            feat_in=6,
            n_layers=1,
            d_model=8,
            n_heads=2,
            subsampling=None,
            conv_kernel_size=3,
            att_context_size=[2, 1],
        )
    )
    t = 12
    for i, field in enumerate(receptive_field(enc, t)):
        assert field == set(range(max(0, i - 3), min(t, i + 3))), i


def test_causal_encoder_never_sees_the_future():
    enc = perturbed(
        ConformerEncoder(
            feat_in=6,
            n_layers=2,
            d_model=8,
            n_heads=2,
            subsampling=None,
            conv_kernel_size=5,
            att_context_size=[-1, 0],
            conv_context_size="causal",
        )
    )
    for i, field in enumerate(receptive_field(enc, 10)):
        assert field == set(range(i + 1)), i


def conformer_layer_params(d, k, expansion=4):
    """By hand (Gulati Fig. 1-4): two FFNs, MHSA with W_R and u, v, conv, 5 LNs."""
    ff = 2 * (d * expansion * d + expansion * d + expansion * d * d + d)
    attention = 4 * (d * d + d) + d * d + 2 * d  # q, k, v, out; linear_pos; u and v
    conv = (d * 2 * d + 2 * d) + (d * k + d) + 2 * d + (d * d + d)  # pw1, dw, BN, pw2
    return ff + attention + conv + 5 * 2 * d


def test_parameter_counts():
    layer = ConformerLayer(d_model=176, d_ff=704, n_heads=4, conv_kernel_size=31)
    assert sum(p.numel() for p in layer.parameters()) == conformer_layer_params(176, 31)
    enc = ConformerEncoder(feat_in=80, n_layers=16, d_model=176, conv_kernel_size=31)
    # striding x4: 2 Conv2d (1->176, 176->176, 3x3) + Linear(176 * 20 -> 176)
    pre = (9 * 176 + 176) + (9 * 176 * 176 + 176) + (176 * 20 * 176 + 176)
    assert sum(
        p.numel() for p in enc.parameters()
    ) == pre + 16 * conformer_layer_params(176, 31)
    tied = ConformerEncoder(feat_in=80, n_layers=3, d_model=32, untie_biases=False)
    untied = ConformerEncoder(feat_in=80, n_layers=3, d_model=32)
    n_tied, n_untied = (sum(p.numel() for p in m.parameters()) for m in (tied, untied))
    assert n_untied - n_tied == 2 * 2 * 32  # one u, v pair instead of three


def test_fastconformer_lengths_for_10_seconds():
    enc = ConformerEncoder(
        feat_in=80,
        n_layers=1,
        d_model=32,
        subsampling="dw_striding",
        subsampling_factor=8,
        subsampling_conv_channels=16,
    )
    assert enc.output_length(torch.tensor([1001, 1000, 8])).tolist() == [126, 125, 1]


def test_stochastic_depth_probs_follow_nemo_rule():
    assert stochastic_depth_probs(4, 0.3, "linear", 1) == pytest.approx(
        [0, 0.1, 0.2, 0.3]
    )
    assert stochastic_depth_probs(4, 0.3, "uniform", 2) == pytest.approx(
        [0, 0, 0.3, 0.3]
    )
    no_dropout = dict(dropout=0.0, dropout_pre_encoder=0.0, dropout_emb=0.0)
    feats, lens = torch.randn(2, 20, 32), torch.tensor([32, 20])
    for drop_prob, n_distinct in ((0.0, 1), (0.5, 2)):
        enc = ConformerEncoder(
            **SMALL, **no_dropout, stochastic_depth_drop_prob=drop_prob
        )
        outs = {tuple(enc(feats, lens)[0].flatten()[:3].tolist()) for _ in range(8)}
        assert len(outs) >= n_distinct and (drop_prob > 0 or len(outs) == 1)


def test_hidden_states_are_each_layers_input_and_output():
    """Layer by layer by hand: [0] what the first layer reads, [i] layer i's output,
    the last one the encoder's output; asking for them changes nothing."""
    enc = perturbed(ConformerEncoder(**SMALL, feat_out=24))
    feats, lens = torch.randn(2, 20, 48), torch.tensor([48, 30])
    with torch.no_grad():
        out, out_lens = enc(feats, lens)
        again, again_lens, hidden = enc(feats, lens, return_hidden=True)
        x, sub_lens = enc.pre_encode(feats.transpose(1, 2), lens)  # (B, T', D)
        x, pos_emb = enc.pos_enc(x)
        t = x.size(1)
        att_mask = self_attention_mask(sub_lens, t, (-1, -1), "regular")
        pad_mask = padding_mask(sub_lens, t)
        expected = [x]
        for layer in enc.layers:
            expected.append(layer(expected[-1], att_mask, pos_emb, pad_mask))
    torch.testing.assert_close(again, out)
    assert torch.equal(again_lens, out_lens) and torch.equal(sub_lens, out_lens)
    assert len(hidden) == SMALL["n_layers"] + 1
    for h, e in zip(hidden, expected):
        assert h.shape == (2, 32, t)
        torch.testing.assert_close(h, e.transpose(1, 2))
    # the output is the last hidden state through the output projection
    torch.testing.assert_close(out, enc.out_proj(hidden[-1].transpose(1, 2)).mT)
