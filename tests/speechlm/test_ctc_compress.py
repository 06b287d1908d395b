"""CTC compression against a frame-by-frame loop: runs of equal labels averaged,
blank runs dropped or kept, padding ignored, an all-blank item kept as one vector."""

import pytest
import torch

from minispeech.speechlm.ctc_compress import ctc_compress

BLANK = 2


def compress_by_hand(x, labels, n, mode):
    """One item: walk its n valid frames, open a run at every label change."""
    runs, previous = [], None
    for t in range(n):
        label = int(labels[t])
        if label != previous:
            runs.append((label, []))
        runs[-1][1].append(x[t])
        previous = label
    if mode == "drop_blank":
        kept = [run for run in runs if run[0] != BLANK]
        if runs and not kept:  # all blank: one run of every frame
            kept = [(BLANK, [frame for _, frames in runs for frame in frames])]
        runs = kept
    return [torch.stack(frames).mean(0) for _, frames in runs]


@pytest.mark.parametrize("mode", ["merge", "drop_blank"])
def test_compression_matches_a_loop_on_random_labels(mode):
    torch.manual_seed(0)
    for _ in range(100):
        n_frames = int(torch.randint(1, 12, ()))
        x = torch.randn(3, n_frames, 4, dtype=torch.float64)
        labels = torch.randint(0, 3, (3, n_frames))  # few labels: many runs, repeats
        lens = torch.randint(0, n_frames + 1, (3,))
        means, counts = ctc_compress(x, labels, lens, BLANK, mode)
        for b in range(3):
            expected = compress_by_hand(x[b], labels[b], int(lens[b]), mode)
            assert int(counts[b]) == len(expected)
            for j, vector in enumerate(expected):
                torch.testing.assert_close(means[b, j], vector)


def test_a_repeated_letter_split_by_blank_stays_two_vectors():
    # "l l" of "hello": l l blank l -> two runs of l after blank removal
    labels = torch.tensor([[0, 0, BLANK, 0, 1, BLANK]])
    x = torch.arange(6.0).view(1, 6, 1)
    means, counts = ctc_compress(x, labels, torch.tensor([6]), BLANK, "drop_blank")
    assert counts.tolist() == [3]
    assert means[0, :3, 0].tolist() == [0.5, 3.0, 4.0]
    means, counts = ctc_compress(x, labels, torch.tensor([6]), BLANK, "merge")
    assert counts.tolist() == [5]
    assert means[0, :5, 0].tolist() == [0.5, 2.0, 3.0, 4.0, 5.0]


def test_an_unknown_mode_is_refused():
    x, labels = torch.zeros(1, 2, 1), torch.zeros(1, 2, dtype=torch.long)
    with pytest.raises(ValueError, match="ctc_compress: one of"):
        ctc_compress(x, labels, torch.tensor([2]), BLANK, "average")
