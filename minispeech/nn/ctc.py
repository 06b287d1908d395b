"""CTC loss, batch-first, from scratch: a fast alpha-beta path and a readable reference.

Graves, Fernandez, Gomez, Schmidhuber 2006, "Connectionist Temporal Classification:
Labelling Unsegmented Sequence Data with Recurrent Neural Networks" (ICML 2006).
Implements, over the blank-extended label sequence l' (length 2U+1):
- the path probability p(pi|x) = prod_t y^t_{pi_t} (Eq. 2) summed over all paths that
  collapse to l, p(l|x) (Eq. 3);
- the forward variables alpha_t(s) with their initialisation and recursion (Eqs. 5-7)
  and p(l|x) = alpha_T(|l'|) + alpha_T(|l'|-1) (Eq. 8);
- the backward variables beta_t(s) (Eqs. 9-11), the occupancy
  alpha_t(s) beta_t(s) / y^t_{l'_s} / p(l|x) summed over the states s of a label k
  (Eqs. 14-15), and the gradient w.r.t. the unnormalised outputs,
  y^t_k - occupancy_t(k) (Eq. 16).

Differences from the paper:
- Everything is in log space (no per-step rescaling), so very long or very unlikely
  alignments do not underflow; the paper rescales alpha and beta instead.
- beta is computed as alpha of the time- and label-reversed problem, so one vectorised
  loop over T serves both (the batch holds the B forward and B reversed problems).
- The gradient follows torch.nn.functional.ctc_loss: d loss / d log_probs is returned
  as exp(log_probs) - occupancy, i.e. Eq. 16, the gradient w.r.t. the logits before a
  log_softmax. Through a log_softmax this equals the true gradient (-occupancy), which
  the reference `ctc_loss_reference` gets from plain autograd.
"""

import torch
from torch.autograd.function import once_differentiable

_REDUCTIONS = ("none", "sum", "mean")
# log 0 inside the recursions: finite, so no -inf - (-inf) = NaN appears anywhere
_LOG_ZERO = -1e30
# floor of the emissions: an input log 0 (-inf) stays far above _LOG_ZERO, so
# alpha + beta - emission stays hugely negative wherever alpha or beta is log 0
_EMIT_FLOOR = -1e29


def ctc_loss(
    log_probs: torch.Tensor,
    targets: torch.Tensor,
    input_lens: torch.Tensor,
    target_lens: torch.Tensor,
    blank: int = 0,
    reduction: str = "mean",
    zero_infinity: bool = False,
) -> torch.Tensor:
    """CTC negative log-likelihood, batch-first, as torch.nn.functional.ctc_loss.

    log_probs (B,T,V) are log-softmax outputs; targets (B,U) are padded label ids;
    "none" gives (B,); "mean" divides each loss by its target length (at least 1),
    then averages the batch. zero_infinity turns impossible targets into 0 loss and
    0 gradient.
    """
    _check_inputs(log_probs, targets, input_lens, target_lens, blank, reduction)
    need_grad = torch.is_grad_enabled() and log_probs.requires_grad  # else alpha only
    lens = (input_lens, target_lens)
    nll = _CTCLoss.apply(log_probs, targets, *lens, blank, zero_infinity, need_grad)
    return _reduce(nll, target_lens, reduction)


def ctc_loss_reference(
    log_probs: torch.Tensor,
    targets: torch.Tensor,
    input_lens: torch.Tensor,
    target_lens: torch.Tensor,
    blank: int = 0,
    reduction: str = "mean",
    zero_infinity: bool = False,
) -> torch.Tensor:
    """The forward recursion (Eqs. 6-8), one utterance at a time; autograd does beta."""
    _check_inputs(log_probs, targets, input_lens, target_lens, blank, reduction)
    losses = []
    for b in range(log_probs.shape[0]):
        ext = [blank]
        for label in targets[b, : int(target_lens[b])].tolist():
            ext += [label, blank]  # l' = blank, l_1, blank, l_2, ..., l_U, blank
        y = log_probs[b, : int(input_lens[b])][:, ext]  # (T, U') log y^t_{l'_s}
        # s-2 -> s skips a blank, allowed unless l'_s is blank or repeats l'_{s-2}
        skip = [s > 1 and ext[s] not in (blank, ext[s - 2]) for s in range(len(ext))]
        skip = torch.tensor(skip, device=y.device)  # (U',)
        # log 0 is the finite _LOG_ZERO: autograd through a logsumexp of true -inf
        # terms computes -inf - (-inf) = NaN even where the upstream gradient is 0
        log_zero = torch.full((2,), _LOG_ZERO, dtype=y.dtype, device=y.device)
        rest = y.new_full((len(ext),), _LOG_ZERO)
        alpha = torch.cat([y[0, :2], rest])[: len(ext)]  # (U',) Eq. 6: blank or l_1
        for t in range(1, y.shape[0]):
            step = torch.cat([log_zero[:1], alpha])[:-1]  # alpha_{t-1}(s-1)
            jump = torch.cat([log_zero, alpha])[:-2].masked_fill(~skip, _LOG_ZERO)
            alpha = torch.logsumexp(torch.stack([alpha, step, jump]), 0) + y[t]  # Eq. 7
        loss = -torch.logsumexp(alpha[-2:], 0)  # Eq. 8 (a single state when U = 0)
        if loss > -_LOG_ZERO / 2:  # no alignment fits: p(l|x) = 0
            loss = loss.new_zeros(()) if zero_infinity else loss + float("inf")
        losses.append(loss)
    return _reduce(torch.stack(losses), target_lens, reduction)


def _check_inputs(log_probs, targets, input_lens, target_lens, blank, reduction):
    """Shapes, lengths and label ids, with the offending value in the message."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if log_probs.ndim != 3:
        raise ValueError(f"log_probs must be (B,T,V), got {tuple(log_probs.shape)}")
    n_batch, n_frames, n_vocab = log_probs.shape
    if targets.ndim != 2 or targets.shape[0] != n_batch:
        raise ValueError(f"targets must be (B={n_batch},U), got {tuple(targets.shape)}")
    for name, lens in (("input_lens", input_lens), ("target_lens", target_lens)):
        if tuple(lens.shape) != (n_batch,):
            raise ValueError(f"{name} must be ({n_batch},), got {tuple(lens.shape)}")
    if not 0 <= blank < n_vocab:
        raise ValueError(f"blank={blank} is outside the vocabulary 0..{n_vocab - 1}")
    if (input_lens < 1).any() or (input_lens > n_frames).any():
        raise ValueError(f"input_lens must lie in 1..{n_frames}: {input_lens.tolist()}")
    n_labels = targets.shape[1]
    if (target_lens < 0).any() or (target_lens > n_labels).any():
        lens = target_lens.tolist()
        raise ValueError(f"target_lens must lie in 0..{n_labels}: {lens}")
    valid = _length_mask(target_lens.to(targets.device), n_labels)  # (B,U)
    bad = valid & ((targets < 0) | (targets >= n_vocab) | (targets == blank))
    if bad.any():
        b, u = bad.nonzero()[0].tolist()
        raise ValueError(
            f"targets[{b}, {u}] = {int(targets[b, u])}: labels must lie in "
            f"0..{n_vocab - 1} and differ from blank={blank}"
        )


def _reduce(nll: torch.Tensor, target_lens: torch.Tensor, reduction: str):
    if reduction == "none":
        return nll
    if reduction == "sum":
        return nll.sum()
    # "mean" as F.ctc_loss: per-utterance loss / target length (clamped to >= 1)
    return (nll / target_lens.to(nll.device).clamp(min=1).to(nll.dtype)).mean()


def _length_mask(lens: torch.Tensor, size: int) -> torch.Tensor:
    return torch.arange(size, device=lens.device) < lens[:, None]  # (B, size)


def extend_with_blanks(targets: torch.Tensor, target_lens: torch.Tensor, blank: int):
    """The states of the CTC trellis: l' = (blank, l_1, blank, ..., l_U, blank), padded
    with blanks past each target length: (B,U) -> (B,S=2U+1). Shared with alignment."""
    n_batch, n_labels = targets.shape
    labels = targets.masked_fill(~_length_mask(target_lens, n_labels), blank)
    ext = labels.new_full((n_batch, 2 * n_labels + 1), blank)  # (B, U'=2U+1)
    ext[:, 1::2] = labels
    return ext


def skip_mask(ext: torch.Tensor, blank: int) -> torch.Tensor:
    """True where s-2 -> s is allowed: l'_s is a label and differs from l'_{s-2}."""
    skip = torch.zeros_like(ext, dtype=torch.bool)  # (B, U')
    skip[:, 2:] = (ext[:, 2:] != blank) & (ext[:, 2:] != ext[:, :-2])
    return skip


def _reverse_index(lens: torch.Tensor, size: int) -> torch.Tensor:
    """index[b, i] = lens[b] - 1 - i, clamped to >= 0 (positions past lens unused)."""
    i = torch.arange(size, device=lens.device)
    return (lens[:, None] - 1 - i).clamp(min=0)  # (B, size)


def _log_alpha(emit: torch.Tensor, skip: torch.Tensor, n_steps: int) -> torch.Tensor:
    """Forward variables in log space (Eqs. 6-7) for emit = log y^t_{l'_s} (2B,T,U').

    Returns alpha as (T+1, N, S+2): two extra columns in front stay at log 0, so
    alpha_{t-1}(s-1) and alpha_{t-1}(s-2) are plain slices of the previous row, and
    so does the extra last row, a "frame past the end" that backward reads as log 0.
    torch.logaddexp is used rather than a max-shifted exp/log: on CPU, exp and log
    go through MKL's threaded vector math even for a few thousand elements, and a
    step's tensors are that small; on a busy machine that costs milliseconds a step.
    """
    n_items, n_frames, n_states = emit.shape
    jump = torch.zeros(skip.shape, dtype=emit.dtype, device=emit.device)
    jump.masked_fill_(~skip, _LOG_ZERO)  # (2B,U'): log 1 or log 0 for s-2 -> s
    alpha = emit.new_full((n_frames + 1, n_items, n_states + 2), _LOG_ZERO)
    alpha[0, :, 2:4] = emit[:, 0, :2]  # Eq. 6: blank or first label at t = 1
    for t in range(1, n_steps):
        prev = alpha[t - 1]
        total = torch.logaddexp(prev[:, 2:], prev[:, 1:-1])  # stay in s, or s-1 -> s
        total = torch.logaddexp(total, prev[:, :-2] + jump)  # skip s-2 -> s (Eq. 7)
        torch.add(total, emit[:, t], out=alpha[t, :, 2:])
    return alpha


class _CTCLoss(torch.autograd.Function):
    """Per-utterance -ln p(l|x) (B,); backward scatters the occupancies back to V."""

    @staticmethod
    def forward(
        ctx,
        log_probs,
        targets,
        input_lens,
        target_lens,
        blank,
        zero_infinity,
        need_grad,
    ):
        in_dtype = log_probs.dtype
        if in_dtype not in (torch.float32, torch.float64):
            log_probs = log_probs.float()  # half/bf16 (autocast) are summed in float32
        device = log_probs.device
        input_lens, target_lens = input_lens.to(device), target_lens.to(device)
        n_batch, n_frames, _ = log_probs.shape
        ext = extend_with_blanks(targets.to(device), target_lens, blank)  # (B,U')
        n_states, ends = ext.shape[1], 2 * target_lens  # ends: last state of each l'
        n_items = 2 * n_batch if need_grad else n_batch
        # 1) emissions log y^t_{l'_s} gathered once, (B,T,V) -> (B,T,U'); rows B..2B-1
        # hold the time- and label-reversed problem, whose alpha is beta (Eqs. 9-11)
        emit = log_probs.new_empty(n_items, n_frames, n_states)  # (2B,T,U')
        index = ext[:, None, :].expand(n_batch, n_frames, n_states)
        torch.gather(log_probs, 2, index, out=emit[:n_batch])
        emit[:n_batch].clamp_(min=_EMIT_FLOOR)
        if need_grad:
            rev = _reversed_flat_index(input_lens, ends + 1, n_frames, n_states)
            torch.take(emit[:n_batch], rev, out=emit[n_batch:])
            ext = torch.cat([ext, ext.gather(1, _reverse_index(ends + 1, n_states))])
        alpha = _log_alpha(emit, skip_mask(ext, blank), int(input_lens.max()))
        # 2) Eq. 8: -ln p(l|x) = -ln(alpha_T(|l'|) + alpha_T(|l'|-1))
        batch = torch.arange(n_batch, device=device)
        last = alpha[input_lens - 1, batch, 2:]  # (B,U')
        before_end = last[batch, (ends - 1).clamp(min=0)]  # the last label
        before_end = before_end.masked_fill(ends == 0, _LOG_ZERO)  # U = 0: no label
        nll = -torch.logaddexp(last[batch, ends], before_end)  # (B,)
        infinite = nll > -_EMIT_FLOOR / 2  # every alignment has a log 0: p(l|x) = 0
        if need_grad:
            finite_nll = nll.masked_fill(infinite, 0.0)  # (B,)
            saved = (log_probs, emit, alpha, ext, input_lens, ends, finite_nll)
            ctx.save_for_backward(*saved)
            ctx.zero_infinity, ctx.in_dtype = zero_infinity, in_dtype
            ctx.infinite = infinite
        nll = nll.masked_fill(infinite, 0.0 if zero_infinity else float("inf"))
        return nll.to(in_dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_nll):
        log_probs, emit, alpha, ext, input_lens, ends, nll = ctx.saved_tensors
        n_batch, n_frames, _ = log_probs.shape
        n_states = emit.shape[2]
        # 1) beta_t(s) = alpha_rev(T_b-1-t, S_b-1-s), log 0 past the frames or states
        beta = alpha.take(_beta_index(alpha, input_lens, ends + 1, n_batch))  # (B,T,U')
        # 2) Eqs. 14-15: occupancy of state s at t, alpha*beta/y/p(l|x) (beta has y^t);
        # where alpha or beta is log 0 it is ~_LOG_ZERO and exp gives exactly 0
        log_occ = beta.add_(alpha[:-1, :n_batch, 2:].transpose(0, 1))  # (B,T,U')
        log_occ.sub_(emit[:n_batch]).add_(nll[:, None, None])
        # 3) per-frame weight: d loss / d nll on valid frames, 0 on padding
        frames = torch.arange(n_frames, device=nll.device) < input_lens[:, None]
        weight = grad_nll.to(nll.dtype)[:, None] * frames  # (B,T)
        if ctx.zero_infinity:
            weight = weight.masked_fill(ctx.infinite[:, None], 0.0)
        else:  # as F.ctc_loss: an impossible target has no finite gradient
            weight = weight.masked_fill(ctx.infinite[:, None] & frames, float("nan"))
        # 4) Eq. 16: y^t_k - sum of the occupancies of the states of label k, one
        # scatter from the U' states back to V; F.ctc_loss reports this as d/d log_probs
        grad = log_probs.exp().mul_(weight[:, :, None])  # (B,T,V)
        occ = log_occ.exp_().mul_(-weight[:, :, None])  # (B,T,U')
        index = ext[:n_batch, None, :].expand(n_batch, n_frames, n_states)
        grad.scatter_add_(2, index, occ)
        return grad.to(ctx.in_dtype), None, None, None, None, None, None


def _reversed_flat_index(input_lens, n_ext, n_frames, n_states) -> torch.Tensor:
    """Flat index into a (B,T,S) tensor of (b, T_b - 1 - t, S_b - 1 - s): (B,T,S)."""
    time_rev = _reverse_index(input_lens, n_frames)  # (B,T)
    state_rev = _reverse_index(n_ext, n_states)  # (B,U')
    batch = torch.arange(len(input_lens), device=input_lens.device)[:, None, None]
    rows = batch * n_frames + time_rev[:, :, None]  # (B,T,1)
    return rows * n_states + state_rev[:, None, :]  # (B,T,U')


def _beta_index(alpha, input_lens, n_ext, n_batch) -> torch.Tensor:
    """Flat index into alpha (T+1,2B,S+2) of beta_t(s) = alpha_rev(T_b-1-t, S_b-1-s);
    frames t >= T_b read the log-0 last row, states s >= S_b a log-0 front column."""
    n_rows, n_items, width = alpha.shape
    device = alpha.device
    time = torch.arange(n_rows - 1, device=device)
    time_rev = input_lens[:, None] - 1 - time  # (B,T)
    time_rev = time_rev.masked_fill(time_rev < 0, n_rows - 1)
    state = torch.arange(width - 2, device=device)
    column = (n_ext[:, None] - 1 - state).clamp(min=-2) + 2  # (B,U'): 0 is log 0
    item = n_batch + torch.arange(n_batch, device=device)[:, None]  # (B,1)
    rows = (time_rev * n_items + item) * width  # (B,T)
    return rows[:, :, None] + column[:, None, :]  # (B,T,U')
