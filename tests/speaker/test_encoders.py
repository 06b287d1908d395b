"""TitaNet and ECAPA encoders: shapes, masks (padding must not change the valid
frames), squeeze-excitation by loops, and ECAPA against a functional float64 rewrite
of NeMo's ECAPAEncoder that reads the weights by NeMo's key names."""

import math

import pytest
import torch
import torch.nn.functional as F

from minispeech.speaker import ECAPAEncoder, TitaNetEncoder
from minispeech.speaker.titanet import SqueezeExcite

LENS = torch.tensor([21, 9, 14])

SEP = {"separable": True, "se": True}  # TitaNet's sub-blocks
BLOCKS = [
    {"filters": 16, "repeat": 1, "kernel": [3], "residual": False, **SEP},
    {"filters": 16, "repeat": 2, "kernel": [7], "residual": True, "stride": [1], **SEP},
    {"filters": 24, "repeat": 1, "kernel": [3], "residual": False},  # plain conv
]


def randomize(module):
    """Random BatchNorm statistics and affine parameters (all of them matter)."""
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.normal_(0, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.normal_(1.0, 0.2)
            m.bias.data.normal_(0, 0.2)
    return module.eval()


def padded_feats(n_mels=10, garbage=30.0):
    x = torch.randn(3, n_mels, 24)
    for b, n in enumerate(LENS.tolist()):
        x[b, :, n:] = garbage * torch.randn(n_mels, 24 - n)
    return x


def assert_batch_equals_single(encoder, feats):
    enc, lens = encoder(feats, LENS)
    assert lens.tolist() == LENS.tolist() and enc.shape[-1] == feats.shape[-1]
    for b, n in enumerate(LENS.tolist()):
        one, _ = encoder(feats[b : b + 1, :, :n], LENS[b : b + 1])
        torch.testing.assert_close(enc[b : b + 1, :, :n], one, atol=1e-5, rtol=0)


def test_titanet_shapes_and_masks():
    encoder = randomize(TitaNetEncoder(10, BLOCKS))
    enc, _ = encoder(padded_feats(), LENS)
    assert enc.shape == (3, 24, 24) and encoder.d_model == 24
    assert_batch_equals_single(encoder, padded_feats())


def test_titanet_keeps_nemo_key_names():
    keys = set(TitaNetEncoder(10, BLOCKS).state_dict())
    assert "encoder.1.mconv.0.conv.weight" in keys  # depthwise, sub-block 1
    assert "encoder.1.mconv.5.conv.weight" in keys  # depthwise, sub-block 2
    assert "encoder.1.mconv.8.fc.0.weight" in keys  # squeeze-excitation
    assert "encoder.1.res.0.1.running_var" in keys  # residual BN
    assert "encoder.0.res.0.0.conv.weight" not in keys


def test_squeeze_excitation_equals_loops():
    se = SqueezeExcite(8, reduction_ratio=4)
    x = padded_feats(8)
    out = se(x, LENS)
    w1, w2 = se.fc[0].weight.double(), se.fc[2].weight.double()
    for b, n in enumerate(LENS.tolist()):
        mean = [sum(x[b, c, t].item() for t in range(n)) / n for c in range(8)]
        hidden = (w1 @ torch.tensor(mean).double()).relu()
        gate = [1 / (1 + math.exp(-v)) for v in (w2 @ hidden).tolist()]
        for c in range(8):
            expected = torch.tensor([x[b, c, t].item() * gate[c] for t in range(n)])
            torch.testing.assert_close(
                out[b, c, :n].double(), expected.double(), atol=1e-5, rtol=1e-5
            )
        assert (out[b, :, n:] == 0).all()  # SE zeroes the padding, as NeMo's


@pytest.mark.parametrize(
    "block, word",
    [
        ({"stride": [2]}, "stride"),
        ({"residual_mode": "max"}, "residual_mode"),
        ({"se_context_size": 16}, "se_context_size"),
        ({"kernal": [3]}, "kernal"),
    ],
)
def test_titanet_refuses_unsupported_block_options(block, word):
    with pytest.raises(ValueError, match=word):
        TitaNetEncoder(10, [{"filters": 8, "kernel": [3], **block}])


ECAPA = {
    "filters": [16, 16, 16, 32],
    "kernel_sizes": [5, 3, 3, 1],
    "dilations": [1, 2, 3, 1],
    "scale": 4,
}


def nemo_ecapa_reference(sd, x, lens):
    """NeMo's ECAPAEncoder.forward written out on its state dict, in float64."""
    sd = {k: v.double() for k, v in sd.items()}

    def bn(h, p):
        return F.batch_norm(
            h,
            sd[p + "running_mean"],
            sd[p + "running_var"],
            sd.get(p + "weight"),
            sd.get(p + "bias"),
            eps=1e-5,
        )

    def conv(h, p, dilation=1, groups=1):
        k = sd[p + "weight"].shape[-1]
        return F.conv1d(
            h,
            sd[p + "weight"],
            sd[p + "bias"],
            padding=k // 2 * dilation,
            dilation=dilation,
            groups=groups,
        )

    def tdnn(h, p, dilation=1):  # TDNNModule: conv, ReLU, BN
        return bn(conv(h, p + "conv_layer.", dilation).relu(), p + "bn.")

    valid = (torch.arange(x.shape[-1])[None] < lens[:, None])[:, None].double()
    h = tdnn(x.double(), "layers.0.", ECAPA["dilations"][0])
    outputs = []
    for i in (1, 2):
        p = f"layers.{i}."
        g = tdnn(h, p + "group_tdnn_block.0.")
        g = conv(g, p + "group_tdnn_block.1.", ECAPA["dilations"][i], ECAPA["scale"])
        g = bn(g.relu(), p + "group_tdnn_block.3.")
        g = tdnn(g, p + "group_tdnn_block.4.")
        z = (g * valid).sum(-1, keepdim=True) / valid.sum(-1, keepdim=True)
        s = bn(conv(z, p + "se_layer.se_layer.0.").relu(), p + "se_layer.se_layer.2.")
        s = conv(s, p + "se_layer.se_layer.3.").sigmoid()
        h = s * g + h
        outputs.append(h)
    return tdnn(torch.cat(outputs, 1), "feature_agg.")


def test_ecapa_unmasked_equals_nemo_forward():
    encoder = randomize(ECAPAEncoder(10, **ECAPA, mask_padding=False))
    feats = padded_feats(garbage=1.0)
    enc, _ = encoder(feats, LENS)
    expected = nemo_ecapa_reference(encoder.state_dict(), feats, LENS)
    torch.testing.assert_close(enc.double(), expected, atol=1e-5, rtol=1e-5)


def test_ecapa_masked_batch_equals_single():
    encoder = randomize(ECAPAEncoder(10, **ECAPA))
    assert_batch_equals_single(encoder, padded_feats())
    assert encoder.d_model == 32


def test_ecapa_refuses_inconsistent_widths():
    with pytest.raises(ValueError, match="filters"):
        ECAPAEncoder(10, [16, 16, 16, 48], [5, 3, 3, 1], [1, 1, 1, 1])
