"""CTC loss vs torch.nn.functional.ctc_loss, brute-force path enumeration and NeMo."""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from minispeech.nn.ctc import ctc_loss, ctc_loss_reference


def _torch_ctc(log_probs, targets, input_lens, target_lens, **kwargs):
    log_probs = log_probs.transpose(0, 1)  # torch wants (T,B,V)
    return F.ctc_loss(log_probs, targets, input_lens, target_lens, **kwargs)


def _random_case(
    n_batch=4, n_frames=20, n_vocab=6, n_labels=6, dtype=torch.float64, min_frames=None
):
    logits = torch.randn(n_batch, n_frames, n_vocab, dtype=dtype)
    targets = torch.randint(1, n_vocab, (n_batch, n_labels))
    targets[0, 1:3] = targets[0, 0]  # repeated labels force blanks between them
    min_frames = n_frames // 2 if min_frames is None else min_frames
    input_lens = torch.randint(min_frames, n_frames + 1, (n_batch,))
    input_lens[0] = n_frames
    target_lens = torch.randint(0, n_labels + 1, (n_batch,))
    target_lens[0] = n_labels
    return logits, targets, input_lens, target_lens


def _grad(loss_fn, log_probs, *args, **kwargs):
    x = log_probs.detach().requires_grad_(True)
    loss = loss_fn(x, *args, **kwargs)
    (grad,) = torch.autograd.grad(loss.sum(), x)
    return loss.detach(), grad


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("zero_infinity", [False, True])
def test_matches_torch_float64(reduction, zero_infinity):
    for _ in range(3):
        logits, *case = _random_case()
        log_probs = logits.log_softmax(-1)
        kwargs = dict(reduction=reduction, zero_infinity=zero_infinity)
        ours, our_grad = _grad(ctc_loss, log_probs, *case, **kwargs)
        ref, ref_grad = _grad(_torch_ctc, log_probs, *case, **kwargs)
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-6)
        torch.testing.assert_close(our_grad, ref_grad, rtol=0, atol=1e-6)


def test_forward_only_path_under_no_grad():
    logits, *case = _random_case()
    log_probs = logits.log_softmax(-1).requires_grad_(True)
    with torch.no_grad():  # alpha only, no reversed problem
        fast = ctc_loss(log_probs, *case, reduction="none")
    torch.testing.assert_close(fast, _torch_ctc(log_probs, *case, reduction="none"))


def test_gradient_convention_on_raw_inputs():
    """Not log-softmaxed inputs: F.ctc_loss returns exp(x) - occupancy; so do we."""
    logits, *case = _random_case()
    ours = _grad(ctc_loss, logits, *case, reduction="sum")
    ref = _grad(_torch_ctc, logits, *case, reduction="sum")
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-6)


def test_minimal_and_impossible_lengths():
    # U = 5 with two repeats needs at least T = 7 frames: a b b c c d e -> a b _ b ...
    targets = torch.tensor([[1, 2, 2, 3, 3], [1, 2, 2, 3, 3]])
    target_lens = torch.tensor([5, 5])
    log_probs = torch.randn(2, 7, 5, dtype=torch.float64).log_softmax(-1)
    input_lens = torch.tensor([7, 6])  # item 0 minimal, item 1 one frame short
    ours, our_grad = _grad(
        ctc_loss, log_probs, targets, input_lens, target_lens, reduction="none"
    )
    ref, ref_grad = _grad(
        _torch_ctc, log_probs, targets, input_lens, target_lens, reduction="none"
    )
    assert torch.isfinite(ours[0]) and torch.isinf(ours[1])
    # the minimal case has exactly one path: blanks only between the repeats
    path = [1, 2, 0, 2, 3, 0, 3]
    assert ours[0].item() == pytest.approx(-log_probs[0, range(7), path].sum().item())
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(our_grad, ref_grad, equal_nan=True)
    ours, our_grad = _grad(
        ctc_loss,
        log_probs,
        targets,
        input_lens,
        target_lens,
        reduction="none",
        zero_infinity=True,
    )
    assert ours[1] == 0 and (our_grad[1] == 0).all() and our_grad[0].abs().sum() > 0
    ref, ref_grad = _grad(
        _torch_ctc,
        log_probs,
        targets,
        input_lens,
        target_lens,
        reduction="none",
        zero_infinity=True,
    )
    torch.testing.assert_close(our_grad, ref_grad, rtol=0, atol=1e-6)


def test_log_zero_inputs():
    """A label masked to log 0 (-inf): fine where unused, impossible where needed.
    F.ctc_loss returns NaN as the gradient of the -inf inputs themselves (it computes
    -inf - (-inf)); ours is the exact y - occupancy = 0 - 0 there."""
    log_probs = torch.randn(2, 10, 5, dtype=torch.float64).log_softmax(-1)
    log_probs[:, :, 4] = -torch.inf
    targets = torch.tensor([[1, 2, 3], [1, 4, 2]])  # item 1 needs label 4
    lens = torch.tensor([10, 10]), torch.tensor([3, 3])
    for zero_infinity in (False, True):
        kwargs = dict(reduction="none", zero_infinity=zero_infinity)
        ours, our_grad = _grad(ctc_loss, log_probs, targets, *lens, **kwargs)
        ref, ref_grad = _grad(_torch_ctc, log_probs, targets, *lens, **kwargs)
        assert torch.isfinite(ours[0])
        assert ours[1] == (0 if zero_infinity else torch.inf)
        torch.testing.assert_close(ours, ref)
        torch.testing.assert_close(our_grad[..., :4], ref_grad[..., :4], equal_nan=True)
        assert (our_grad[0, :, 4] == 0).all()


def test_zero_length_targets_are_all_blank():
    log_probs = torch.randn(3, 9, 4, dtype=torch.float64).log_softmax(-1)
    targets = torch.zeros(3, 2, dtype=torch.long)
    input_lens, target_lens = torch.tensor([9, 4, 1]), torch.zeros(3, dtype=torch.long)
    for blank in (0, 3):
        loss = ctc_loss(
            log_probs,
            targets + 1,
            input_lens,
            target_lens,
            blank=blank,
            reduction="none",
        )
        expected = [-log_probs[b, : input_lens[b], blank].sum() for b in range(3)]
        torch.testing.assert_close(loss, torch.stack(expected))


def _brute_force_nll(log_probs, target, blank):
    """-ln of the sum over all V^T paths that collapse to target (Graves Eqs. 2-3)."""
    n_frames, n_vocab = log_probs.shape
    terms = []
    for path in itertools.product(range(n_vocab), repeat=n_frames):
        collapsed = [k for i, k in enumerate(path) if i == 0 or k != path[i - 1]]
        if [k for k in collapsed if k != blank] == target:
            terms.append(log_probs[range(n_frames), list(path)].sum())
    return -torch.logsumexp(torch.stack(terms), 0)


@pytest.mark.parametrize(
    "target,blank", [([1, 2], 0), ([1, 1], 0), ([0, 1, 0], 2), ([], 0)]
)
def test_brute_force_enumeration(target, blank):
    """All 3^6 = 729 paths of T = 6 frames over V = 3 symbols."""
    logits = torch.randn(1, 6, 3, dtype=torch.float64, requires_grad=True)
    brute = _brute_force_nll(logits[0].log_softmax(-1), target, blank)
    (brute_grad,) = torch.autograd.grad(brute, logits)
    targets = torch.tensor([target + [1] * (3 - len(target))])
    lens = (torch.tensor([6]), torch.tensor([len(target)]))
    for loss_fn in (ctc_loss, ctc_loss_reference):
        log_probs = logits.log_softmax(-1)
        loss = loss_fn(log_probs, targets, *lens, blank=blank, reduction="sum")
        (grad,) = torch.autograd.grad(loss, logits)
        torch.testing.assert_close(loss, brute, rtol=0, atol=1e-10)
        torch.testing.assert_close(grad, brute_grad, rtol=0, atol=1e-10)


def test_reference_matches_fast_path():
    """Plain autograd (true d/d log_probs = -occupancy) vs the alpha-beta backward:
    equal once both go through the log_softmax."""
    logits, *case = _random_case(n_batch=3, n_frames=14, min_frames=13)  # all possible
    for zero_infinity in (False, True):
        results = []
        for loss_fn in (ctc_loss, ctc_loss_reference):
            x = logits.detach().requires_grad_(True)
            loss = loss_fn(x.log_softmax(-1), *case, zero_infinity=zero_infinity)
            results.append((loss, *torch.autograd.grad(loss, x)))
        torch.testing.assert_close(results[0], results[1], rtol=0, atol=1e-10)


def test_float32_and_blank_last():
    logits, *case = _random_case(n_frames=40, n_vocab=9, dtype=torch.float32)
    case[0] = case[0] - 1  # labels 0..7, blank = 8 (NeMo's convention)
    log_probs = logits.log_softmax(-1)
    ours = _grad(ctc_loss, log_probs, *case, blank=8)
    ref = _grad(_torch_ctc, log_probs, *case, blank=8)
    assert ours[0].dtype == torch.float32
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_bfloat16_input_gives_bfloat16_loss_and_grad():
    logits, *case = _random_case(dtype=torch.bfloat16)
    loss, grad = _grad(ctc_loss, logits.log_softmax(-1), *case)
    ref, _ = _grad(ctc_loss, logits.double().log_softmax(-1), *case)
    assert loss.dtype == grad.dtype == torch.bfloat16
    assert loss.double().item() == pytest.approx(ref.item(), rel=2e-2)


def test_nemo_reference_values_and_gradients(nemo_ref):
    """NeMo 3.0 CTCLoss(zero_infinity=True), blank = 28 (last), on losses_io.npz."""
    ref = np.load(nemo_ref / "losses_io.npz")
    logits = torch.from_numpy(ref["ctc/logits"]).double()  # (B,T,V+1)
    targets = torch.from_numpy(ref["ctc/targets"])
    input_lens = torch.from_numpy(ref["ctc/input_lengths"])
    target_lens = torch.from_numpy(ref["ctc/target_lengths"])
    x = logits.requires_grad_(True)
    nll = ctc_loss(
        x.log_softmax(-1),
        targets,
        input_lens,
        target_lens,
        blank=28,
        reduction="none",
        zero_infinity=True,
    )
    np.testing.assert_allclose(nll.detach().numpy(), ref["ctc/none/loss"], rtol=1e-5)
    reductions = {  # NeMo's reductions from the per-utterance losses
        "mean_batch": nll.mean(),
        "mean": (nll / target_lens).mean(),
        "sum": nll.sum(),
        "mean_volume": nll.sum() / target_lens.sum(),
    }
    for name, loss in reductions.items():
        (grad,) = torch.autograd.grad(loss, x, retain_graph=True)
        np.testing.assert_allclose(loss.item(), ref[f"ctc/{name}/loss"], rtol=1e-5)
        np.testing.assert_allclose(
            grad.numpy(),
            ref[f"ctc/{name}/grad_logits"],
            rtol=2e-5,
            atol=2e-6,
            err_msg=name,
        )


def test_bad_inputs_are_named():
    log_probs = torch.randn(2, 5, 4).log_softmax(-1)
    targets, lens = torch.tensor([[1, 2], [3, 0]]), torch.tensor([5, 5])
    with pytest.raises(ValueError, match=r"targets\[1, 1\] = 0"):
        ctc_loss(log_probs, targets, lens, torch.tensor([2, 2]))
    with pytest.raises(ValueError, match="input_lens"):
        ctc_loss(log_probs, targets, torch.tensor([6, 5]), torch.tensor([2, 1]))
    with pytest.raises(ValueError, match="target_lens"):
        ctc_loss(log_probs, targets, lens, torch.tensor([3, 1]))
    with pytest.raises(ValueError, match=r"\(B,T,V\)"):
        ctc_loss(log_probs[0], targets, lens, torch.tensor([2, 1]))
    with pytest.raises(ValueError, match="reduction"):
        ctc_loss(log_probs, targets, lens, torch.tensor([2, 1]), reduction="mean_batch")
