"""Transducer decoding: batched greedy equals single, the max_symbols cap, beam search
against brute force over all alignments, batched beam equals the reference."""

import itertools
import math

import pytest
import torch

from minispeech.asr.lexicon import WordState
from minispeech.asr.rnnt import rnnt_loss
from minispeech.asr.rnnt_decoding import (
    rnnt_beam_search,
    rnnt_beam_search_reference,
    rnnt_greedy_decode,
    rnnt_greedy_decode_single,
)
from minispeech.asr.transducer_nets import JointNetwork, PredictionNetwork


def make_nets(vocab_size=5, d=8, dtype=torch.float32, blank_bias=0.0):
    prediction = PredictionNetwork(vocab_size, pred_hidden=d, pred_rnn_layers=2).eval()
    joint = JointNetwork(d, d, d, vocab_size).eval()
    with torch.no_grad():
        joint.joint_net[2].weight.mul_(6.0)  # peaked outputs, like a trained model
        joint.joint_net[2].bias[vocab_size] += blank_bias
    return prediction.to(dtype), joint.to(dtype)


def test_batched_greedy_equals_single():
    prediction, joint = make_nets(blank_bias=1.0)
    enc = torch.randn(5, 9, 8)  # (B,T,D_enc)
    enc_lens = torch.tensor([9, 4, 7, 1, 9])
    hyps = rnnt_greedy_decode(prediction, joint, enc, enc_lens, max_symbols=3)
    singles = [
        rnnt_greedy_decode_single(
            prediction, joint, enc[b, : enc_lens[b]], max_symbols=3
        )
        for b in range(5)
    ]
    assert hyps == singles
    assert sum(map(len, hyps)) > 5  # the case exercises emissions


def test_greedy_caps_symbols_per_frame_and_can_be_empty():
    prediction, joint = make_nets(blank_bias=-100.0)  # never blank
    enc, lens = torch.randn(2, 4, 8), torch.tensor([4, 2])
    hyps = rnnt_greedy_decode(prediction, joint, enc, lens, max_symbols=3)
    assert [len(h) for h in hyps] == [12, 6]
    prediction, joint = make_nets(blank_bias=100.0)  # always blank
    assert rnnt_greedy_decode(prediction, joint, enc, lens) == [[], []]
    with pytest.raises(ValueError, match="max_symbols"):
        rnnt_greedy_decode(prediction, joint, enc, lens, max_symbols=0)


def brute_force_scores(prediction, joint, enc, max_symbols):
    """ln Pr(y|x) for every label sequence y, summing every alignment with at most
    max_symbols labels per frame; enc (T,D)."""
    blank, labels = prediction.blank, range(prediction.blank)
    frame_choices = [
        seq
        for n in range(max_symbols + 1)
        for seq in itertools.product(labels, repeat=n)
    ]
    cache = {}

    def log_probs(prefix, t):
        if prefix not in cache:
            state = cache[prefix[:-1]][1] if prefix else None
            label = torch.tensor([prefix[-1] if prefix else blank])
            cache[prefix] = prediction.step(label, state)
        return joint.step(enc[t : t + 1], cache[prefix][0])[0].log_softmax(-1)

    totals = {}
    for alignment in itertools.product(frame_choices, repeat=enc.shape[0]):
        y, score = (), 0.0
        for t, frame_labels in enumerate(alignment):
            for k in frame_labels:
                score += float(log_probs(y, t)[k])
                y += (k,)
            score += float(log_probs(y, t)[blank])
        totals[y] = totals.get(y, []) + [score]
    return {
        y: float(torch.tensor(s, dtype=torch.float64).logsumexp(0))
        for y, s in totals.items()
    }


@torch.no_grad()
def test_wide_beam_is_exact_against_brute_force():
    prediction, joint = make_nets(vocab_size=2, d=6, dtype=torch.float64)
    enc = torch.randn(2, 6, dtype=torch.float64)  # (T,D_enc)
    exact = brute_force_scores(prediction, joint, enc, max_symbols=2)
    hyps = rnnt_beam_search_reference(
        prediction, joint, enc, beam_size=100, max_symbols=2, score_norm=False
    )
    assert len(hyps) == len(exact) == 31  # every y with <= 4 labels
    for hyp in hyps:
        assert math.isclose(hyp.score, exact[hyp.tokens], rel_tol=1e-12, abs_tol=1e-12)
    assert hyps[0].tokens == max(exact, key=exact.get)
    # the scores are the transducer likelihood where the cap cannot bind (|y| <= 2)
    for hyp in hyps:
        if len(hyp.tokens) <= 2:
            y = torch.tensor([hyp.tokens]) if hyp.tokens else torch.zeros(1, 0).long()
            g, _ = prediction(y)
            logits = joint(enc[None], g)  # (1,T,U+1,V)
            nll = rnnt_loss(
                logits, y, torch.tensor([2]), torch.tensor([len(hyp.tokens)]), 2
            )
            assert math.isclose(hyp.score, -float(nll), rel_tol=1e-10)


@pytest.mark.parametrize("search", [rnnt_beam_search_reference, rnnt_beam_search])
@torch.no_grad()
def test_wide_lexicon_beam_is_exact_over_the_sequences_the_lexicon_allows(search):
    """Labels " ", a, b and the lexicon {a, ab, ba}: a beam wider than every
    sequence keeps exactly those whose words stay in the lexicon, with their brute-
    force scores, and ranks first the best one that ends on a whole word."""
    prediction, joint = make_nets(vocab_size=3, d=6, dtype=torch.float64)
    enc = torch.randn(2, 6, dtype=torch.float64)  # (T,D_enc)
    exact = brute_force_scores(prediction, joint, enc, max_symbols=2)
    chars, lexicon = [" ", "a", "b"], {"a", "ab", "ba"}

    def spelled(y):
        return "".join(chars[k] for k in y)

    def starts_ok(y):  # every word but the last is known; the last begins one
        *done, last = spelled(y).split(" ")
        return all(w in lexicon for w in done if w) and any(
            w.startswith(last) for w in lexicon
        )

    allowed = {y for y in exact if starts_ok(y)}
    assert 1 < len(allowed) < len(exact)
    hyps = search(
        prediction,
        joint,
        enc,
        beam_size=500,
        max_symbols=2,
        score_norm=False,
        words=WordState(chars, lexicon),
    )
    assert {h.tokens for h in hyps} == allowed
    for hyp in hyps:
        assert math.isclose(hyp.score, exact[hyp.tokens], rel_tol=1e-9, abs_tol=1e-9)
    whole = [y for y in allowed if all(w in lexicon for w in spelled(y).split())]
    assert hyps[0].tokens == max(whole, key=exact.get)


@torch.no_grad()
def test_beam_scores_at_least_the_greedy_path():
    prediction, joint = make_nets(vocab_size=4, dtype=torch.float64, blank_bias=1.0)
    enc = torch.randn(6, 8, dtype=torch.float64)
    greedy = rnnt_greedy_decode_single(prediction, joint, enc, max_symbols=3)
    y = torch.tensor([greedy]) if greedy else torch.zeros(1, 0).long()
    logits = joint(enc[None], prediction(y)[0])
    greedy_score = -float(
        rnnt_loss(logits, y, torch.tensor([6]), torch.tensor([len(greedy)]), 4)
    )
    best = rnnt_beam_search(
        prediction, joint, enc, beam_size=8, max_symbols=3, score_norm=False
    )
    assert best[0].score >= greedy_score - 1e-9


@pytest.mark.parametrize("score_norm", [True, False])
def test_batched_beam_equals_reference(score_norm):
    prediction, joint = make_nets(vocab_size=6, blank_bias=0.5)
    enc = torch.randn(7, 8)
    kwargs = dict(beam_size=4, max_symbols=3, score_norm=score_norm)
    ref = rnnt_beam_search_reference(prediction, joint, enc, **kwargs)
    fast = rnnt_beam_search(prediction, joint, enc, **kwargs)
    assert [h.tokens for h in fast] == [h.tokens for h in ref]
    for a, b in zip(fast, ref):
        assert math.isclose(a.score, b.score, rel_tol=1e-5, abs_tol=1e-5)
    assert len(ref) == 4 and any(h.tokens for h in ref)
