"""Token-and-Duration Transducer (TDT) loss.

Xu et al. 2023, "Efficient Sequence Transduction by Jointly Predicting Tokens and
Durations" (arXiv:2304.06795). The joint emits V token logits (labels and blank) and
D duration logits, normalized separately: P_T(k | t,u) and P_D(d | t,u). From (t,u) a
label y_{u+1} with duration d moves to (t+d, u+1) (d = 0 allowed) and a blank with
duration d >= 1 moves to (t+d, u). Forward variable (Sec. 3.1, Eq. 7):
  alpha(t,u) = sum_{d >= 1} alpha(t-d, u) P_T(blank|t-d,u) P_D(d|t-d,u)
             + sum_{d >= 0} alpha(t-d, u-1) P_T(y_u|t-d,u-1) P_D(d|t-d,u-1),
alpha(0,0) = 1, and Pr(y|x) = sum_{d >= 1} alpha(T-d, U) P_T(blank|T-d,U) P_D(d|T-d,U):
the last step is a blank landing exactly on frame T.
Logit under-normalization (Sec. 3.2): ln P_T is replaced by ln P_T - sigma.
omega (Sec. 3.3): the loss is (1 - omega) TDT + omega RNN-T, the RNN-T loss on the token
logits alone (no sigma).

Differs from the paper: log space, 0-based frames. NeMo draws, per batch, the RNN-T loss
with probability omega instead of mixing; the mix here is that draw's expectation.
The recursion is a loop over frames, vectorized over the batch and u; the within-frame
chain of duration-0 labels is solved with a cumulative log-sum-exp. Autograd
differentiates through it (a graph over T steps, not T x U).
"""

import torch
from torch import Tensor

from minispeech.asr.rnnt import check_rnnt_inputs, reduce_losses, rnnt_loss

# finite "minus infinity": keeps autograd of logcumsumexp free of inf - inf
NEG = -1e30


def tdt_loss(
    logits: Tensor,
    targets: Tensor,
    logit_lens: Tensor,
    target_lens: Tensor,
    durations: list[int],
    blank: int = 0,
    sigma: float = 0.0,
    omega: float = 0.0,
    reduction: str = "mean",
) -> Tensor:
    """TDT negative log-likelihood; logits (B,T,U+1,V+D) with D = len(durations).

    logits[..., :V] are the token logits (blank among them, NeMo puts it last) and
    logits[..., V:] the duration logits. durations: distinct ints >= 0 including 1
    (e.g. [0, 1, 2, 3, 4]). Reductions as rnnt_loss.
    """
    n_dur = len(durations)
    if (
        len(set(durations)) != n_dur
        or min(durations, default=-1) < 0
        or 1 not in durations
    ):
        raise ValueError(
            f"durations must be distinct ints >= 0 including 1, got {durations}"
        )
    if logits.ndim != 4 or logits.shape[-1] <= n_dur + 1:
        raise ValueError(
            f"logits must be (B,T,U+1,V+{n_dur}), got {tuple(logits.shape)}"
        )
    token_logits = logits[..., :-n_dur]  # (B,T,U+1,V)
    check_rnnt_inputs(token_logits, targets, logit_lens, target_lens, blank, reduction)
    token_lp = token_logits.log_softmax(-1) - sigma  # (B,T,U+1,V)
    duration_lp = logits[..., -n_dur:].log_softmax(-1)  # (B,T,U+1,D)
    losses = -tdt_log_likelihood(
        token_lp, duration_lp, targets, logit_lens, target_lens, durations, blank
    )
    losses = losses.to(logits.dtype)  # (B,)
    if omega > 0:
        rnnt = rnnt_loss(token_logits, targets, logit_lens, target_lens, blank, "none")
        losses = (1.0 - omega) * losses + omega * rnnt
    return reduce_losses(losses, target_lens, reduction)


def tdt_log_likelihood(
    token_lp: Tensor,
    duration_lp: Tensor,
    targets: Tensor,
    logit_lens: Tensor,
    target_lens: Tensor,
    durations: list[int],
    blank: int,
) -> Tensor:
    """ln Pr(y|x) (B,) from token (B,T,U+1,V) and duration (B,T,U+1,D) log-probs."""
    B, T, U1, _ = token_lp.shape
    labels = targets.long().clamp(0, token_lp.shape[-1] - 1)  # padding: any valid id
    ids = labels[:, None, :, None].expand(-1, T, -1, -1)  # (B,T,U,1)
    emit = token_lp[:, :, :-1].gather(-1, ids)[..., 0].double()  # (B,T,U)
    emit = torch.nn.functional.pad(emit, (0, 1), value=NEG)  # (B,T,U+1)
    phi = token_lp[..., blank].double()  # (B,T,U+1)
    dur = duration_lp.double()  # (B,T,U+1,D)
    alpha = []  # alpha[t]: (B,U+1)
    for t in range(T):
        into = _arcs_into_frame(alpha, phi, emit, dur, durations, t)  # (B,U+1)
        if 0 in durations:  # labels with duration 0 chain along u within frame t
            into = _chain_within_frame(
                into, emit[:, t] + dur[:, t, :, durations.index(0)]
            )
        alpha.append(into)
    alpha = torch.stack(alpha, dim=1)  # (B,T,U+1)
    return _final_blank(
        alpha, phi, dur, durations, logit_lens.long(), target_lens.long()
    )


def _arcs_into_frame(alpha, phi, emit, dur, durations, t):
    """Log-sum of all arcs landing on frame t from earlier frames (and the start)."""
    B, _, U1 = phi.shape
    terms = []
    if t == 0:
        start = phi.new_full((B, U1), NEG)
        start[:, 0] = 0.0
        terms.append(start)
    for i, d in enumerate(durations):
        if d < 1 or t - d < 0:
            continue
        src = t - d
        terms.append(alpha[src] + phi[:, src] + dur[:, src, :, i])  # blank: same u
        label = alpha[src] + emit[:, src] + dur[:, src, :, i]  # (B,U+1): u -> u+1
        terms.append(torch.nn.functional.pad(label[:, :-1], (1, 0), value=NEG))
    if not terms:
        return phi.new_full((B, U1), NEG)
    return torch.logsumexp(torch.stack(terms), dim=0)  # (B,U+1)


def _chain_within_frame(into: Tensor, step: Tensor) -> Tensor:
    """x(u) = logaddexp(into(u), x(u-1) + step(u-1)), solved for all u at once:
    x(u) = E(u) + logcumsumexp_k<=u (into(k) - E(k)) with E(u) = sum_{j<u} step(j)."""
    E = torch.nn.functional.pad(step[:, :-1].cumsum(-1), (1, 0))  # (B,U+1)
    return E + torch.logcumsumexp(into - E, dim=-1)


def _final_blank(alpha, phi, dur, durations, logit_lens, target_lens):
    """ln Pr(y|x) = logsumexp_{d>=1} alpha(T-d, U) + phi(T-d, U) + ln P_D(d|T-d, U)."""
    b = torch.arange(alpha.shape[0], device=alpha.device)
    terms = []
    for i, d in enumerate(durations):
        if d < 1:
            continue
        src = logit_lens - d  # (B,)
        ok = src >= 0
        src = src.clamp(min=0)
        term = alpha[b, src, target_lens] + phi[b, src, target_lens]
        term = term + dur[b, src, target_lens, i]
        terms.append(torch.where(ok, term, torch.full_like(term, NEG)))
    return torch.logsumexp(torch.stack(terms), dim=0)  # (B,)
