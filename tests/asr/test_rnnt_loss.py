"""RNN-T loss: brute force over all alignments and the readable reference (published
cases and NeMo's outputs are in test_rnnt_loss_parity.py)."""

import itertools

import pytest
import torch

from minispeech.asr.rnnt import rnnt_loss
from minispeech.asr.rnnt_reference import rnnt_loss_reference


def brute_force_nll(logits, labels, blank):
    """-ln sum over every alignment of the product of its arc probabilities.

    logits (T, U+1, V) of one utterance. An alignment places the U labels among the
    first T-1 blanks (the last symbol is always the final blank at frame T-1).
    """
    log_probs = logits.log_softmax(-1)
    T, U = logits.shape[0], len(labels)
    scores = []
    for label_slots in itertools.combinations(range(T - 1 + U), U):
        t, u, score = 0, 0, log_probs.new_zeros(())
        for step in range(T - 1 + U):
            if step in label_slots:
                score = score + log_probs[t, u, labels[u]]
                u += 1
            else:
                score = score + log_probs[t, u, blank]
                t += 1
        scores.append(score + log_probs[T - 1, U, blank])
    return -torch.logsumexp(torch.stack(scores), dim=0)


def random_case(B, T, U, V, blank, dtype=torch.float64):
    logits = torch.randn(B, T, U + 1, V, dtype=dtype)
    labels = [i for i in range(V) if i != blank]
    targets = torch.tensor(labels)[torch.randint(len(labels), (B, U))]  # (B,U)
    logit_lens = torch.randint(1, T + 1, (B,))
    logit_lens[0] = T
    target_lens = torch.randint(0, U + 1, (B,))
    target_lens[0] = U
    return logits, targets, logit_lens, target_lens


def loss_and_grad(fn, logits, *args, **kwargs):
    x = logits.detach().requires_grad_(True)
    loss = fn(x, *args, **kwargs)
    (grad,) = torch.autograd.grad(loss.sum(), x)
    return loss.detach(), grad


@pytest.mark.parametrize("blank", [0, 3])
def test_matches_brute_force_with_variable_lengths(blank):
    logits, targets, logit_lens, target_lens = random_case(4, 4, 3, 4, blank)
    loss, grad = loss_and_grad(
        rnnt_loss,
        logits,
        targets,
        logit_lens,
        target_lens,
        blank=blank,
        reduction="none",
    )
    for b in range(4):
        T, U = int(logit_lens[b]), int(target_lens[b])
        x = logits[b, :T, : U + 1].clone().requires_grad_(True)
        expected = brute_force_nll(x, targets[b, :U].tolist(), blank)
        (expected_grad,) = torch.autograd.grad(expected, x)
        torch.testing.assert_close(loss[b], expected.detach(), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(
            grad[b, :T, : U + 1], expected_grad, rtol=1e-10, atol=1e-12
        )
        # arcs outside an utterance's grid get no gradient
        assert not grad[b, T:].any() and not grad[b, :, U + 1 :].any()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("fastemit_lambda", [0.0, 0.01, 1.0])
def test_matches_reference(dtype, fastemit_lambda):
    case = random_case(3, 6, 4, 7, blank=6, dtype=dtype)
    kwargs = dict(blank=6, reduction="none", fastemit_lambda=fastemit_lambda)
    loss, grad = loss_and_grad(rnnt_loss, *case, **kwargs)
    ref_loss, ref_grad = loss_and_grad(rnnt_loss_reference, *case, **kwargs)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert loss.dtype == grad.dtype == dtype
    torch.testing.assert_close(loss, ref_loss, rtol=tol, atol=tol)
    torch.testing.assert_close(grad, ref_grad, rtol=tol, atol=tol)


def test_fastemit_changes_only_label_arcs():
    """FastEmit (arXiv:2010.11148): the value is (1+lambda) NLL (NeMo's convention) and
    only label arcs get a different gradient, so nodes on the last row u = U_b (which
    have no label arc) keep the plain gradient."""
    logits, targets, logit_lens, target_lens = random_case(2, 5, 3, 5, blank=0)
    plain, g_plain = loss_and_grad(
        rnnt_loss, logits, targets, logit_lens, target_lens, reduction="none"
    )
    fast, g_fast = loss_and_grad(
        rnnt_loss,
        logits,
        targets,
        logit_lens,
        target_lens,
        reduction="none",
        fastemit_lambda=0.5,
    )
    torch.testing.assert_close(fast, 1.5 * plain)
    for b in range(2):
        U = int(target_lens[b])
        torch.testing.assert_close(g_fast[b, :, U], g_plain[b, :, U])
        assert (g_fast[b, :, :U] - g_plain[b, :, :U]).abs().max() > 1e-3


def test_reductions_and_batch_independence():
    logits, targets, logit_lens, target_lens = random_case(4, 5, 3, 6, blank=0)
    per_utt = rnnt_loss(logits, targets, logit_lens, target_lens, reduction="none")
    torch.testing.assert_close(
        rnnt_loss(logits, targets, logit_lens, target_lens, reduction="sum"),
        per_utt.sum(),
    )
    torch.testing.assert_close(
        rnnt_loss(logits, targets, logit_lens, target_lens), per_utt.mean()
    )
    volume = rnnt_loss(
        logits, targets, logit_lens, target_lens, reduction="mean_volume"
    )
    torch.testing.assert_close(volume, per_utt.sum() / target_lens.sum())
    for b in range(
        4
    ):  # each utterance alone, cropped to its lengths, gives the same loss
        T, U = int(logit_lens[b]), int(target_lens[b])
        alone = rnnt_loss(
            logits[b : b + 1, :T, : U + 1],
            targets[b : b + 1, :U],
            logit_lens[b : b + 1],
            target_lens[b : b + 1],
            reduction="none",
        )
        torch.testing.assert_close(alone[0], per_utt[b])


def test_backward_twice_with_retained_graph():
    logits, targets, logit_lens, target_lens = random_case(2, 4, 2, 5, blank=0)
    x = logits.requires_grad_(True)
    loss = rnnt_loss(x, targets, logit_lens, target_lens)
    (g1,) = torch.autograd.grad(loss, x, retain_graph=True)
    (g2,) = torch.autograd.grad(loss, x)
    torch.testing.assert_close(g1, g2)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(targets=torch.zeros(2, 3, dtype=torch.long)), "targets must be"),
        (dict(logit_lens=torch.tensor([5, 6])), "logit_lens"),
        (dict(logit_lens=torch.tensor([0, 5])), "logit_lens must be >= 1"),
        (dict(target_lens=torch.tensor([3, 2])), "target_lens"),
        (dict(blank=5), "blank=5"),
        (dict(reduction="avg"), "reduction"),
        (dict(targets=torch.tensor([[0, 1], [1, 1]])), "other than blank"),
    ],
)
def test_bad_input_is_named(change, message):
    args = dict(
        logits=torch.randn(2, 5, 3, 5),
        targets=torch.tensor([[1, 2], [3, 4]]),
        logit_lens=torch.tensor([5, 4]),
        target_lens=torch.tensor([2, 1]),
        blank=0,
        reduction="mean",
    )
    args.update(change)
    with pytest.raises(ValueError, match=message):
        rnnt_loss(**args)
