"""VTLP frequency warp: the paper's warp function, and its effect on mel features."""

import pytest
import torch

from minispeech.audio import FrequencyWarp, vtlp_warp
from minispeech.audio.mel import hz_to_mel


def warp_reference(f: float, alpha: float, sr: float, f_hi: float = 4800.0) -> float:
    """Jaitly & Hinton 2013, Eq. 1, one frequency at a time in float64."""
    nyquist = sr / 2
    boundary = f_hi * min(alpha, 1.0) / alpha
    if f <= boundary:
        return f * alpha
    slope = (nyquist - f_hi * min(alpha, 1.0)) / (nyquist - boundary)
    return nyquist - slope * (nyquist - f)


@pytest.mark.parametrize("alpha", [0.8, 0.95, 1.0, 1.1, 1.2])
def test_warp_matches_the_formula_and_fixes_the_ends(alpha):
    freqs = torch.linspace(0, 8000, 321, dtype=torch.float64)
    ours = vtlp_warp(freqs, torch.tensor([alpha], dtype=torch.float64), 16000)
    want = torch.tensor(
        [warp_reference(float(f), alpha, 16000) for f in freqs], dtype=torch.float64
    )
    assert torch.allclose(ours, want, atol=1e-9)
    assert ours[0] == 0 and ours[-1] == pytest.approx(8000)
    assert (ours.diff() > 0).all()  # monotonic: no two frequencies collide


def test_channels_are_read_at_the_warped_frequency():
    """Features equal to each channel's mel value: after the warp, channel m holds
    the mel
    value of W(centre_m), because the mel axis is linear in the channel index."""
    warp = FrequencyWarp(features=40, min_factor=1.1, max_factor=1.1)
    mels = hz_to_mel(warp.centers.double()).float()  # (M,)
    feats = mels[None, :, None].expand(1, 40, 3).clone()  # (1, M, T)
    out = warp(feats)
    want = hz_to_mel(
        vtlp_warp(warp.centers.double(), torch.tensor([1.1]).double(), 16000)
    )
    inside = want <= mels.max().double()  # channels that read inside the filterbank
    assert torch.allclose(out[0, inside, 0].double(), want[inside], atol=1e-3)


def test_identity_and_probability():
    feats = torch.randn(4, 64, 20)
    same = FrequencyWarp(min_factor=1.0, max_factor=1.0)(feats)
    assert torch.allclose(same, feats, atol=1e-4)
    never = FrequencyWarp(min_factor=0.8, max_factor=1.2, prob=0.0)
    assert torch.allclose(never(feats), feats, atol=1e-4)


def test_reproducible_with_a_generator():
    warp, feats = FrequencyWarp(min_factor=0.8, max_factor=1.2), torch.randn(3, 64, 5)
    a = warp(feats, torch.Generator().manual_seed(1))
    b = warp(feats, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.allclose(a, feats)
