"""CTC forced alignment vs brute-force best paths and planted spans."""

import itertools

import pytest
import torch

from minispeech.asr.alignment import (
    TokenSpan,
    WordSpan,
    ctc_forced_align,
    ctc_forced_align_single,
    word_spans,
)


def _brute_force_best_path(log_probs, target, blank):
    """The most probable of all V^T paths that collapse to target."""
    n_frames, n_vocab = log_probs.shape
    best, best_logp = None, -float("inf")
    for path in itertools.product(range(n_vocab), repeat=n_frames):
        label = [
            k for i, k in enumerate(path) if k != blank and (i == 0 or k != path[i - 1])
        ]
        logp = log_probs[range(n_frames), list(path)].sum().item()
        if label == target and logp > best_logp:
            best, best_logp = list(path), logp
    return best, best_logp


@pytest.mark.parametrize(
    "target,blank", [([1, 2], 0), ([1, 1], 0), ([0, 1, 0], 2), ([], 0), ([2, 1, 2], 0)]
)
def test_matches_brute_force_best_path(target, blank):
    for _ in range(3):
        log_probs = torch.randn(6, 3, dtype=torch.float64).log_softmax(-1)
        path, logp = _brute_force_best_path(log_probs, target, blank)
        alignment = ctc_forced_align_single(log_probs, target, blank=blank)
        assert alignment.frame_labels == path
        assert alignment.logp == pytest.approx(logp, abs=1e-12)
        assert [s.token for s in alignment.spans] == target


def _planted(runs, n_vocab):
    """Peaky log-probs (T,V) from (label, n_frames) runs, plus noise."""
    rows = [label for label, n in runs for _ in range(n)]
    logits = 0.5 * torch.randn(len(rows), n_vocab)
    logits[range(len(rows)), rows] += 6.0
    return logits.log_softmax(-1)


def test_recovers_planted_spans():
    runs = [(0, 2), (3, 3), (0, 1), (5, 2), (0, 1), (5, 1), (2, 4), (0, 2)]
    alignment = ctc_forced_align_single(_planted(runs, 6), [3, 5, 5, 2])
    assert alignment.spans == [
        TokenSpan(3, 2, 5),
        TokenSpan(5, 6, 8),
        TokenSpan(5, 9, 10),
        TokenSpan(2, 10, 14),
    ]


def test_batch_equals_one_at_a_time():
    log_probs = torch.randn(3, 20, 5).log_softmax(-1)  # (B,T,V)
    targets = torch.tensor([[1, 2, 2, 3], [4, 0, 0, 0], [1, 1, 1, 0]])
    input_lens, target_lens = torch.tensor([20, 9, 14]), torch.tensor([4, 1, 3])
    batched = ctc_forced_align(log_probs, targets, input_lens, target_lens)
    for b in range(3):
        single = ctc_forced_align_single(
            log_probs[b, : input_lens[b]], targets[b, : target_lens[b]]
        )
        assert batched[b] == single
        assert len(single.frame_labels) == input_lens[b]


def test_word_times_from_characters_and_pieces():
    chars = ["", " ", "a", "b", "c", "d"]  # blank 0, space 1
    runs = [(0, 1), (2, 2), (3, 1), (0, 1), (1, 2), (4, 3), (5, 1), (0, 2)]
    alignment = ctc_forced_align_single(_planted(runs, 6), [2, 3, 1, 4, 5])
    words = word_spans(alignment.spans, chars, frame_duration=0.04)
    # frames: _ a a b _ " " " " c c c d _ _ -> ab: frames 1-3, cd: frames 7-10
    assert words == [
        WordSpan("ab", pytest.approx(0.04), pytest.approx(0.16)),
        WordSpan("cd", pytest.approx(0.28), pytest.approx(0.44)),
    ]
    pieces = ["", "\u2581ab", "c", "\u2581d"]  # SentencePiece: "ab" + "c", "d"
    spans = [TokenSpan(1, 0, 2), TokenSpan(2, 3, 4), TokenSpan(3, 6, 8)]
    assert word_spans(spans, pieces, frame_duration=0.1) == [
        WordSpan("abc", 0.0, pytest.approx(0.4)),
        WordSpan("d", pytest.approx(0.6), 0.8),
    ]


def test_too_few_frames_is_an_error():
    log_probs = torch.randn(4, 4).log_softmax(-1)
    with pytest.raises(ValueError, match="need at least 5 frames, got 4"):
        ctc_forced_align_single(log_probs, [1, 2, 2, 3])
