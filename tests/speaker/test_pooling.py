"""Pooling and the embedding head against float64 loops over frames, with padding
that must not matter."""

import copy
import math

import pytest
import torch

from minispeech.speaker.pooling import (
    AttentivePoolLayer,
    SpeakerDecoder,
    StatsPoolLayer,
)

LENS = torch.tensor([7, 3, 5])


def padded_input(channels=6, garbage=50.0):
    """(B, C, T) with random valid frames and large garbage past each length."""
    x = torch.randn(3, channels, 7)
    for b, n in enumerate(LENS.tolist()):
        x[b, :, n:] = garbage * torch.randn(channels, 7 - n)
    return x


def randomize_batchnorm(module):
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
            if m.affine:
                m.weight.data.normal_(1.0, 0.2)
                m.bias.data.normal_()
    return module.eval()


def loop_stats(frames, weights=None, unbiased=False):
    """frames: list of C-lists of floats -> mean, std per channel by loops."""
    n = len(frames)
    weights = weights or [[1.0 / n] * len(frames[0])] * n
    means, stds = [], []
    for c in range(len(frames[0])):
        mu = sum(weights[t][c] * frames[t][c] for t in range(n))
        sq = sum(weights[t][c] * (frames[t][c] - mu) ** 2 for t in range(n))
        if unbiased:
            sq = sq * n / (n - 1)
        means.append(mu)
        stds.append(math.sqrt(max(sq, 1e-10)))
    return means, stds


@pytest.mark.parametrize("mode", ["tap", "xvector"])
def test_stats_pooling_equals_loops(mode):
    x = padded_input()
    out = StatsPoolLayer(6, mode)(x, LENS)
    for b, n in enumerate(LENS.tolist()):
        frames = x[b, :, :n].double().T.tolist()
        mean, std = loop_stats(frames, unbiased=True)
        expected = mean + std if mode == "xvector" else mean
        torch.testing.assert_close(
            out[b].double(), torch.tensor(expected).double(), atol=1e-5, rtol=1e-5
        )


def test_attentive_pooling_equals_loops():
    layer = randomize_batchnorm(AttentivePoolLayer(4, attention_channels=5))
    x = padded_input(4)
    out = layer(x, LENS)  # (B, 2C, 1)
    assert out.shape == (3, 8, 1)
    net = copy.deepcopy(layer.attention_layer).double()
    for b, n in enumerate(LENS.tolist()):
        frames = x[b, :, :n].double().T.tolist()  # n frames of C values
        mean, std = loop_stats(frames)  # step 1: biased global statistics
        energies = []
        for t in range(n):  # steps 2-4, frame by frame (all kernels are 1 wide)
            column = torch.tensor(frames[t] + mean + std).double()[None, :, None]
            energies.append(net(column)[0, :, 0].tolist())
        alpha = []
        for t in range(n):  # step 5: softmax over the valid frames, per channel
            row = []
            for c in range(4):
                z = sum(math.exp(energies[s][c]) for s in range(n))
                row.append(math.exp(energies[t][c]) / z)
            alpha.append(row)
        mu, sigma = loop_stats(frames, alpha)  # step 6
        expected = torch.tensor(mu + sigma).double()
        torch.testing.assert_close(
            out[b, :, 0].double(), expected, atol=1e-5, rtol=1e-5
        )


@pytest.mark.parametrize("mode", ["tap", "xvector", "attention"])
def test_batched_pooling_equals_single_and_ignores_padding(mode):
    head = randomize_batchnorm(SpeakerDecoder(6, 5, [8, 4], pool_mode=mode))
    x = padded_input()
    logits, embs = head(x, LENS)
    for b, n in enumerate(LENS.tolist()):
        one_logits, one_emb = head(x[b : b + 1, :, :n], LENS[b : b + 1])
        torch.testing.assert_close(logits[b : b + 1], one_logits, atol=1e-5, rtol=0)
        torch.testing.assert_close(embs[b : b + 1], one_emb, atol=1e-5, rtol=0)


@pytest.mark.parametrize("mode", ["tap", "xvector", "attention"])
def test_decoder_embedding_and_angular_logits(mode):
    head = randomize_batchnorm(
        SpeakerDecoder(6, 5, [8, 4], pool_mode=mode, angular=True)
    )
    assert head.final.bias is None  # angular: no bias
    x = padded_input()
    logits, embs = head(x, LENS)
    assert logits.shape == (3, 5) and embs.shape == (3, 4)
    pooled = head._pooling(x, LENS)
    hidden = head.emb_layers[0](pooled)
    last = head.emb_layers[1]
    emb = last[:2](hidden).reshape(3, -1)  # emb_id = 2: before the ReLU (x-vector)
    out = last(hidden).reshape(3, -1)
    torch.testing.assert_close(embs, emb)
    if mode == "attention":  # BN -> conv: the embedding is the layer's output
        torch.testing.assert_close(out, emb)
    else:  # Linear -> BN -> ReLU: the logits see relu(embedding)
        torch.testing.assert_close(out, emb.relu())
    # the class weights are used as they are (not normalised), x is normalised
    unit = torch.nn.functional.normalize(out, dim=1)  # an all-zero ReLU row stays 0
    expected = unit @ head.final.weight.T
    torch.testing.assert_close(logits, expected)


def test_plain_decoder_has_bias_and_raw_logits():
    head = randomize_batchnorm(SpeakerDecoder(6, 5, 4, pool_mode="tap"))
    assert head.final.bias is not None
    x = padded_input()
    logits, embs = head(x, LENS)
    torch.testing.assert_close(logits, head.final(embs.relu()))


def test_unknown_pool_mode_is_refused():
    with pytest.raises(ValueError, match="pool_mode"):
        SpeakerDecoder(6, 5, pool_mode="max")
