"""HiFi-GAN's losses (minispeech/tts/hifigan_losses.py) against float64 loops of the
paper's formulas (Kong et al. 2020, Sec. 2.4), and the masked mel L1 against a loop."""

import numpy as np
import pytest
import torch

from minispeech.tts.hifigan_losses import (
    discriminator_loss,
    feature_matching_loss,
    generator_loss,
    masked_mel_l1,
)


def score_lists(seed: int):
    rng = np.random.default_rng(seed)
    shapes = [(2, 7), (2, 3), (2, 11)]
    return [rng.normal(size=s) for s in shapes], [rng.normal(size=s) for s in shapes]


def textbook_mean(values):
    return sum(values.flat) / values.size


def test_losses_match_the_equations_in_float64():
    real, fake = score_lists(0)
    t = [torch.from_numpy(x) for x in real], [torch.from_numpy(x) for x in fake]
    # L_D (GAN loss, Eq. 1): sum_k E[(D(x) - 1)^2 + D(G(s))^2]
    eq1 = sum(
        textbook_mean((r - 1) ** 2) + textbook_mean(f**2) for r, f in zip(real, fake)
    )
    assert float(discriminator_loss(*t)) == pytest.approx(eq1, rel=1e-6)
    # feature matching: sum_k sum_i mean |D_k^i(x) - D_k^i(G(s))|
    rng = np.random.default_rng(1)
    maps_r = [[rng.normal(size=(2, c, 5)) for c in (3, 4)] for _ in range(3)]
    maps_f = [[rng.normal(size=m.shape) for m in maps] for maps in maps_r]
    eq3 = sum(
        textbook_mean(np.abs(r - f))
        for rs, fs in zip(maps_r, maps_f)
        for r, f in zip(rs, fs)
    )
    as_t = lambda maps: [[torch.from_numpy(m) for m in ms] for ms in maps]  # noqa: E731
    assert float(feature_matching_loss(as_t(maps_r), as_t(maps_f))) == pytest.approx(
        eq3, rel=1e-6
    )
    # L_G (Eq. 2 + final loss): sum_k E[(D(G(s)) - 1)^2] + 2 L_FM + 45 L_mel
    eq2 = sum(textbook_mean((f - 1) ** 2) for f in fake)
    mel_l1 = torch.tensor(0.3, dtype=torch.float64)
    total = generator_loss(t[1], as_t(maps_r), as_t(maps_f), mel_l1)
    assert float(total) == pytest.approx(eq2 + 2 * eq3 + 45 * 0.3, rel=1e-6)


def test_masked_mel_l1_counts_valid_frames_only():
    mel, other = torch.randn(2, 2, 5, 7, dtype=torch.float64)
    lens = torch.tensor([7, 3])
    got = masked_mel_l1(mel, other, lens)
    expected = [
        (mel[b, :, :n] - other[b, :, :n]).abs().mean() for b, n in ((0, 7), (1, 3))
    ]
    torch.testing.assert_close(got, torch.stack(expected))
