"""SpecAugment: masks inside valid lengths, width bounds, reproducibility, loops."""

import pytest
import torch

from minispeech.audio.augment import SpecAugment, band_mask, draw_bands


def _runs(row: torch.Tensor) -> list[tuple[int, int]]:
    """Maximal runs of True in a 1-D bool tensor as (start, length)."""
    runs, start = [], None
    for i, v in enumerate(row.tolist() + [False]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            runs.append((start, i - start))
            start = None
    return runs


def test_band_mask_equals_a_loop():
    gen = torch.Generator().manual_seed(3)
    limit = torch.tensor([50, 7, 0, 120])
    starts, widths = draw_bands(4, torch.tensor([10, 10, 10, 30]), limit, gen)
    mask = band_mask(starts, widths, 120)
    expected = torch.zeros(4, 120, dtype=torch.bool)
    for b in range(4):
        for s, w in zip(starts[b].tolist(), widths[b].tolist()):
            for t in range(s, s + w):
                expected[b, t] = True
    assert torch.equal(mask, expected)
    assert (starts + widths <= limit[:, None]).all() and (starts >= 0).all()


def test_draws_are_uniform_over_the_allowed_range():
    gen = torch.Generator().manual_seed(0)
    n = 20000
    starts, widths = draw_bands(n, torch.tensor([4]), torch.tensor([10]), gen)
    counts = torch.bincount(widths[0], minlength=5).double() / n  # w ~ U{0..4}
    torch.testing.assert_close(
        counts, torch.full((5,), 0.2, dtype=torch.float64), atol=0.015, rtol=0
    )
    assert starts.min() == 0 and (starts + widths).max() == 10


@pytest.mark.parametrize("time_width", [12, 0.1])
def test_masks_stay_inside_valid_lengths(time_width):
    aug = SpecAugment(freq_masks=2, freq_width=15, time_masks=4, time_width=time_width)
    feats = torch.randn(5, 80, 400) + 10.0  # no feature is 0 before masking
    lens = torch.tensor([400, 333, 100, 1, 0])
    gen = torch.Generator().manual_seed(1)
    out = aug(feats, lens, generator=gen)
    masked = out == 0.0  # (B, M, T)
    for b, n in enumerate(lens.tolist()):
        assert not masked[b, :, n:].any()  # padding untouched
        assert torch.equal(out[b, :, n:], feats[b, :, n:])
        rows = masked[b, :, :n].all(dim=1)  # mels masked over every valid frame
        cols = masked[b, :, :n].all(dim=0)  # frames masked over every mel
        # everything masked is a masked row or a masked column
        assert torch.equal(masked[b, :, :n], rows[:, None] | cols[None, :])
        if n == 0 or rows.all() or cols.all():  # a full row/column hides the other
            continue
        # <= 2 frequency bands of <= 15 mels, <= 4 time bands within the width bound
        # (bands may touch or overlap, so bound their union)
        bound = time_width if isinstance(time_width, int) else max(1, int(n * 0.1))
        assert len(_runs(rows)) <= 2 and rows.sum() <= 2 * 15
        assert len(_runs(cols)) <= 4 and cols.sum() <= 4 * bound
    assert masked[0].any() and masked[1].any()  # the masks do fall somewhere


def test_reproducible_with_a_generator_and_fresh_otherwise():
    aug = SpecAugment(
        freq_masks=2, freq_width=27, time_masks=10, time_width=0.05, mask_value=-3.0
    )
    feats, lens = torch.randn(8, 80, 500), torch.full((8,), 500)
    a = aug(feats, lens, generator=torch.Generator().manual_seed(7))
    b = aug(feats, lens, generator=torch.Generator().manual_seed(7))
    c = aug(feats, lens, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert (a == -3.0).any() and not torch.equal(feats, a)
    assert torch.equal(feats, feats.clone())  # the input is not modified in place
    d, e = aug(feats, lens), aug(feats, lens)  # the global RNG moves on between calls
    assert not torch.equal(d, e)
    # each utterance draws its own masks
    assert not torch.equal(a[0] == -3.0, a[1] == -3.0)


def test_disabled_and_bad_arguments():
    feats, lens = torch.randn(2, 80, 50), torch.tensor([50, 20])
    assert torch.equal(SpecAugment()(feats, lens), feats)  # 0 masks: identity
    with pytest.raises(ValueError, match="rng"):
        SpecAugment(rng=object())
    with pytest.raises(ValueError, match="rect_masks"):
        SpecAugment(rect_masks=5)
    with pytest.raises(ValueError, match="fraction"):
        SpecAugment(time_masks=1, time_width=1.5)
    with pytest.raises(AssertionError, match=r"\(B, M, T\)"):
        SpecAugment(time_masks=1)(torch.randn(80, 50), lens)
