"""ArcFace (NeMo's AngularSoftmaxLoss conventions) against the textbook formula in
float64, and the cross-entropy path."""

import math

import pytest
import torch

from minispeech.speaker.losses import SpeakerLoss, angular_softmax_loss


def arcface_reference(logits, labels, s, m):
    """Deng et al. Eq. 3 item by item in float64; only the target cosine is clamped
    (to NeMo's bounds 1 -+ 1e-7 as float32 holds them: the loss runs in float32)."""
    low, high = torch.tensor([-1 + 1e-7, 1 - 1e-7]).tolist()
    total = 0.0
    for row, y in zip(logits.double().tolist(), labels.tolist()):
        cos_y = min(max(row[y], low), high)
        numerator = s * math.cos(math.acos(cos_y) + m)
        others = sum(math.exp(s * z) for j, z in enumerate(row) if j != y)
        total += numerator - math.log(math.exp(numerator) + others)
    return -total / len(labels)


@pytest.mark.parametrize("scale, margin", [(30.0, 0.2), (20.0, 1.35), (10.0, 0.0)])
def test_arcface_equals_the_formula(scale, margin):
    logits = torch.rand(6, 9) * 2.6 - 1.3  # also past +-1, as NeMo's unnormalised W
    labels = torch.tensor([0, 3, 8, 3, 5, 1])
    logits[1, 3] = 1.2  # a target logit past 1: clamped
    logits[2, 0] = 1.25  # a non-target past 1: used as it is
    got = angular_softmax_loss(logits, labels, scale, margin)
    expected = arcface_reference(logits, labels, scale, margin)
    assert float(got) == pytest.approx(expected, rel=1e-5)


def test_zero_margin_is_cross_entropy_on_scaled_cosines():
    logits = torch.rand(4, 7) * 1.8 - 0.9
    labels = torch.tensor([6, 0, 2, 2])
    expected = torch.nn.functional.cross_entropy(30 * logits, labels)
    got = angular_softmax_loss(logits, labels, 30.0, 0.0)
    torch.testing.assert_close(got, expected)


def test_gradient_is_finite_at_a_perfect_cosine():
    logits = torch.tensor([[1.0, 0.1, -0.3]], requires_grad=True)
    angular_softmax_loss(logits, torch.tensor([0])).backward()
    assert torch.isfinite(logits.grad).all()


def test_speaker_loss_switch():
    logits = torch.randn(3, 4)
    labels = torch.tensor([1, 2, 3])
    ce = SpeakerLoss("cross_entropy")
    assert not ce.angular
    torch.testing.assert_close(
        ce(logits, labels), torch.nn.functional.cross_entropy(logits, labels)
    )
    assert SpeakerLoss("angular", 30, 0.2).angular
    with pytest.raises(ValueError, match="loss name"):
        SpeakerLoss("triplet")
