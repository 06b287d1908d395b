"""TDT loss against brute force over all token-and-duration paths and NeMo's published
case; greedy TDT decoding that jumps frames by the predicted duration; beam search
against greedy (beam 1) and against every alignment summed by brute force."""

import functools
import math

import numpy as np
import pytest
import torch

from minispeech.asr.rnnt import rnnt_loss
from minispeech.asr.rnnt_decoding import rnnt_greedy_decode_single
from minispeech.asr.tdt import tdt_loss
from minispeech.asr.tdt_decoding import (
    tdt_beam_search,
    tdt_greedy_decode,
    tdt_greedy_decode_single,
)
from minispeech.asr.transducer_nets import JointNetwork, PredictionNetwork


def brute_force_tdt_nll(logits, labels, durations, blank, sigma):
    """-ln of the sum over every path; logits (T, U+1, V+D) of one utterance.

    A path is a list of arcs (t, u, token, duration index): labels may last 0 frames,
    blanks at least 1, every arc lands inside the T frames, and the last arc is a blank
    landing exactly on frame T with all labels emitted.
    """
    T, U, n_dur = logits.shape[0], len(labels), len(durations)
    token_lp = logits[..., :-n_dur].log_softmax(-1) - sigma
    dur_lp = logits[..., -n_dur:].log_softmax(-1)

    def paths(t, u):
        for i, d in enumerate(durations):
            if d >= 1 and t + d == T and u == U:
                yield [(t, u, blank, i)]
            if d >= 1 and t + d < T:
                yield from ([(t, u, blank, i)] + p for p in paths(t + d, u))
            if u < U and t + d < T:
                yield from ([(t, u, labels[u], i)] + p for p in paths(t + d, u + 1))

    scores = [
        sum(token_lp[t, u, k] + dur_lp[t, u, i] for t, u, k, i in path)
        for path in paths(0, 0)
    ]
    return -torch.logsumexp(torch.stack(scores), dim=0)


@pytest.mark.parametrize("durations", [[0, 1, 2], [1, 2, 3], [0, 1, 2, 3, 4]])
def test_matches_brute_force(durations):
    B, T, U, V, blank, sigma = 3, 5, 2, 4, 3, 0.05
    logits = torch.randn(B, T, U + 1, V + len(durations), dtype=torch.float64)
    targets = torch.randint(0, blank, (B, U))
    logit_lens, target_lens = torch.tensor([5, 3, 4]), torch.tensor([2, 1, 0])
    x = logits.clone().requires_grad_(True)
    loss = tdt_loss(
        x, targets, logit_lens, target_lens, durations, blank, sigma, reduction="none"
    )
    (grad,) = torch.autograd.grad(loss.sum(), x)
    for b in range(B):
        T_b, U_b = int(logit_lens[b]), int(target_lens[b])
        xb = logits[b, :T_b, : U_b + 1].clone().requires_grad_(True)
        expected = brute_force_tdt_nll(
            xb, targets[b, :U_b].tolist(), durations, blank, sigma
        )
        (expected_grad,) = torch.autograd.grad(expected, xb)
        torch.testing.assert_close(loss[b], expected.detach(), rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(grad[b, :T_b, : U_b + 1], expected_grad)
        assert not grad[b, T_b:].any() and not grad[b, :, U_b + 1 :].any()


def test_nemo_published_fixed_case():
    """NVIDIA-NeMo/NeMo tests/collections/asr/numba/rnnt_loss/test_rnnt_pytorch.py,
    TestTDTLoss.test_case_fixed_case_act_label: zero logits (B=1, T=3, U+1=2, 3 labels
    + blank 3 + durations [0, 1, 2]), label [0], sigma 0.05, reduction sum."""
    # fmt: off
    expected_grads = torch.tensor([[
        [[-0.64962804, 0.25, 0.25, 0.14962798, 0.2672583, -0.16792619, -0.09933221],
         [0.01651875, 0.01651875, 0.01651875, -0.04955626, 0.022025, -0.01227201,
          -0.009753]],
        [[-0.04892651, 0.01714851, 0.01714851, 0.01462949, -0.01143234, -0.01143234,
          0.02286467],
         [0.12531489, 0.12531489, 0.12531489, -0.37594467, 0.16708651, 0.13027048,
          -0.29735702]],
        [[-0.02572276, 0.00857425, 0.00857425, 0.00857425, -0.02286468, 0.01143234,
          0.01143234],
         [0.13388914, 0.13388914, 0.13388914, -0.40166742, 0.17851885, -0.35703772,
          0.17851885]],
    ]])
    # fmt: on
    x = torch.zeros(1, 3, 2, 7, requires_grad=True)
    loss = tdt_loss(
        x, torch.tensor([[0]]), torch.tensor([3]), torch.tensor([1]), [0, 1, 2],
        blank=3, sigma=0.05, reduction="sum",
    )  # fmt: skip
    (grad,) = torch.autograd.grad(loss, x)
    torch.testing.assert_close(loss, torch.tensor(4.155739), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grad, expected_grads, rtol=1e-4, atol=1e-6)


def test_omega_mixes_in_the_rnnt_loss_of_the_token_logits():
    durations, blank = [0, 1, 2, 3, 4], 5
    logits = torch.randn(2, 6, 3, 6 + 5)
    args = (torch.randint(0, 5, (2, 2)), torch.tensor([6, 4]), torch.tensor([2, 1]))
    tdt = tdt_loss(logits, *args, durations, blank, sigma=0.05, reduction="none")
    rnnt = rnnt_loss(logits[..., :6], *args, blank=blank, reduction="none")
    mixed = tdt_loss(logits, *args, durations, blank, 0.05, omega=0.3, reduction="none")
    torch.testing.assert_close(mixed, 0.7 * tdt + 0.3 * rnnt)
    volume = tdt_loss(logits, *args, durations, blank, 0.05, reduction="mean_volume")
    torch.testing.assert_close(volume, tdt.sum() / 3)


@pytest.mark.parametrize("durations", [[0, 2], [1, 1, 2], [-1, 1]])
def test_bad_durations_are_named(durations):
    with pytest.raises(ValueError, match="durations"):
        tdt_loss(torch.randn(1, 2, 2, 7), torch.tensor([[1]]), torch.tensor([2]),
                 torch.tensor([1]), durations, blank=4)  # fmt: skip


def make_tdt_nets(durations, token_bias=None, duration_bias=None):
    prediction = PredictionNetwork(vocab_size=4, pred_hidden=8).eval()
    joint = JointNetwork(8, 8, 8, vocab_size=4, num_extra_outputs=len(durations)).eval()
    with torch.no_grad():
        joint.joint_net[2].weight.mul_(6.0)
        if token_bias is not None:
            joint.joint_net[2].bias[:5] += torch.tensor(token_bias)
        if duration_bias is not None:
            joint.joint_net[2].bias[5:] += torch.tensor(duration_bias)
    return prediction, joint


def counting(joint):
    """Wrap joint.step to count how many frames the decoder looks at."""
    calls, step = [], joint.step
    joint.step = lambda enc_t, g: calls.append(1) or step(enc_t, g)
    return calls


def test_greedy_jumps_by_the_predicted_duration():
    durations = [0, 1, 2, 3, 4]
    # always blank with duration 3: frames 0, 3, 6, 9 are visited, nothing emitted
    prediction, joint = make_tdt_nets(durations, [0, 0, 0, 0, 50], [0, 0, 0, 50, 0])
    calls = counting(joint)
    assert (
        tdt_greedy_decode_single(prediction, joint, torch.randn(10, 8), durations) == []
    )
    assert len(calls) == 4
    # never blank, duration 0: max_symbols labels on each frame, then one frame on
    prediction, joint = make_tdt_nets(durations, [0, 0, 0, 0, -50], [50, 0, 0, 0, 0])
    hyp = tdt_greedy_decode_single(prediction, joint, torch.randn(4, 8), durations, 3)
    assert len(hyp) == 12
    # never blank, duration 2: one label every other frame
    prediction, joint = make_tdt_nets(durations, [0, 0, 0, 0, -50], [0, 0, 50, 0, 0])
    assert (
        len(tdt_greedy_decode_single(prediction, joint, torch.randn(7, 8), durations))
        == 4
    )


def test_greedy_with_rnnt_durations_equals_rnnt_greedy():
    """Labels lasting 0 frames and blanks 1 frame make TDT greedy the RNN-T greedy."""
    durations = [0, 1]
    prediction, joint = make_tdt_nets(durations, [0, 0, 0, 0, 1.0], [50, 0])
    enc = torch.randn(3, 9, 8)
    tdt = tdt_greedy_decode(
        prediction, joint, enc, torch.tensor([9, 5, 7]), durations, 3
    )
    rnnt = [
        rnnt_greedy_decode_single(prediction, joint, e[:n], max_symbols=3)
        for e, n in zip(enc, [9, 5, 7])
    ]
    assert tdt == rnnt and sum(map(len, tdt)) > 3


@pytest.mark.parametrize("seed", range(4))
def test_beam_one_is_greedy(seed):
    torch.manual_seed(seed)
    durations = [0, 1, 2, 3, 4]
    prediction, joint = make_tdt_nets(durations, [0, 0, 0, 0, -1.0], [1.0, 0, 0, 0, 0])
    enc = torch.randn(12, 8)
    greedy = tdt_greedy_decode_single(prediction, joint, enc, durations, 3)
    beam = tdt_beam_search(
        prediction, joint, enc, durations, beam_size=1, max_symbols=3
    )
    assert list(beam[0].tokens) == greedy and len(greedy) > 2


def brute_force_tdt_sequences(prediction, joint, enc, durations, max_symbols):
    """{labels: ln of the sum over every alignment} by walking every path.

    The moves of tdt_beam_search: a label with duration 0 stays on the frame (while
    fewer than max_symbols labels were emitted there), every other (token, duration)
    moves max(d, 1) frames on; one hypothesis's moves to the same frame with the same
    labels count once, with the better duration."""
    blank, n_frames, totals = prediction.blank, enc.shape[0], {}

    @functools.cache
    def log_probs(tokens, t):
        g, state = prediction.step(torch.tensor([blank]))
        for k in tokens:
            g, state = prediction.step(torch.tensor([k]), state)
        logits = joint.step(enc[t : t + 1], g)[0].double()
        return logits[: blank + 1].log_softmax(-1), logits[blank + 1 :].log_softmax(-1)

    def walk(t, emitted, tokens, score):
        lt, ld = log_probs(tokens, t)
        moves = {}
        for k in range(blank + 1):
            new = tokens if k == blank else (*tokens, k)
            for d, lp_d in zip(durations, ld.tolist()):
                value = score + float(lt[k]) + lp_d
                if k != blank and d == 0 and emitted + 1 < max_symbols:
                    walk(t, emitted + 1, new, value)
                else:
                    key = (t + max(d, 1), new)
                    moves[key] = max(moves.get(key, -math.inf), value)
        for (frame, new), value in moves.items():
            if frame >= n_frames:
                totals[new] = float(np.logaddexp(totals.get(new, -math.inf), value))
            else:
                walk(frame, 0, new, value)

    walk(0, 0, (), 0.0)
    return totals


def test_wide_beam_sums_every_alignment_like_brute_force():
    torch.manual_seed(0)
    durations = [0, 1, 2]
    prediction = PredictionNetwork(vocab_size=2, pred_hidden=8).eval()
    joint = JointNetwork(8, 8, 8, vocab_size=2, num_extra_outputs=3).eval()
    with torch.no_grad():
        joint.joint_net[2].weight.mul_(3.0)
    enc = torch.randn(3, 8)
    with torch.no_grad():
        exact = brute_force_tdt_sequences(prediction, joint, enc, durations, 2)
    hyps = tdt_beam_search(
        prediction, joint, enc, durations, 10_000, max_symbols=2, score_norm=False
    )
    assert {h.tokens for h in hyps} == set(exact) and len(exact) > 20
    for h in hyps:
        assert h.score == pytest.approx(exact[h.tokens], abs=1e-5), h.tokens
    best = max(exact, key=exact.get)
    assert hyps[0].tokens == best
    narrow = tdt_beam_search(prediction, joint, enc, durations, 4, max_symbols=2)
    assert len(narrow) <= 4
