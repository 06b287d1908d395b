"""RNN-T loss with an analytic gradient, vectorized over the batch and anti-diagonals.

Graves 2012, "Sequence Transduction with Recurrent Neural Networks" (arXiv:1211.3711),
Sec. 2.4. With phi(t,u) = ln Pr(blank | t,u) and y(t,u) = ln Pr(y_{u+1} | t,u):
  forward   alpha(t,u) = logaddexp(alpha(t-1,u) + phi(t-1,u), alpha(t,u-1) + y(t,u-1)),
            alpha(0,0) = 0, and ln Pr(y*|x) = alpha(T-1,U) + phi(T-1,U);
  backward  beta(t,u) = logaddexp(beta(t+1,u) + phi(t,u), beta(t,u+1) + y(t,u)),
            beta(T-1,U) = phi(T-1,U);
  gradient  d(-ln Pr)/d logit(t,u,k) = Pr(k|t,u) occ(t,u) - gamma_blank(t,u) [k = blank]
            - gamma_emit(t,u) [k = y_{u+1}], where gamma_blank = exp(alpha(t,u) +
            phi(t,u) + beta(t+1,u) - ln Pr), gamma_emit = exp(alpha(t,u) + y(t,u) +
            beta(t,u+1) - ln Pr) are the posteriors of the two arcs leaving (t,u) and
            occ = gamma_blank + gamma_emit (Graves' derivative through the softmax).
All nodes with t + u = n depend only on diagonal n - 1, so the recursions run over the
T + U anti-diagonals with the batch and the diagonal as tensor axes.

FastEmit (Yu et al. 2021, "FastEmit: Low-latency Streaming ASR with Sequence-level
Emission Regularization", arXiv:2010.11148, Sec. 3): the gradient of every label arc is
scaled by (1 + lambda), blank arcs unchanged. The reported value is (1 + lambda) * NLL,
as NeMo reports it.

Differs from the paper: log space, 0-based frames, the softmax is applied here (raw
logits in, as torchaudio and NeMo do). The lattice runs in float32 (float64 for float64
logits). The gradient is written into the buffer that held the
log-softmax, so the loss keeps about one logits-sized tensor beyond its input.
"""

import torch
from torch import Tensor

REDUCTIONS = ("none", "sum", "mean", "mean_batch", "mean_volume")


def rnnt_loss(
    logits: Tensor,
    targets: Tensor,
    logit_lens: Tensor,
    target_lens: Tensor,
    blank: int = 0,
    reduction: str = "mean",
    fastemit_lambda: float = 0.0,
) -> Tensor:
    """Transducer negative log-likelihood of `targets` given joint `logits`.

    logits (B,T,U+1,V) raw joint outputs; targets (B,U) label ids (padding ignored);
    logit_lens, target_lens (B,). reduction: "none" -> (B,), "sum", "mean" (over the
    batch; "mean_batch" is NeMo's name for it), "mean_volume" (sum / total target
    length).
    """
    check_rnnt_inputs(logits, targets, logit_lens, target_lens, blank, reduction)
    # one -ln P(y|x) per utterance: (B,)
    lens = (logit_lens, target_lens)
    losses = _RNNTLoss.apply(logits, targets, *lens, blank, float(fastemit_lambda))
    return reduce_losses(losses, target_lens, reduction)


def reduce_losses(losses: Tensor, target_lens: Tensor, reduction: str) -> Tensor:
    """Apply one of REDUCTIONS to per-utterance losses (B,)."""
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    if reduction in ("mean", "mean_batch"):
        return losses.mean()
    return losses.sum() / target_lens.sum().clamp(min=1).to(losses.dtype)


def check_rnnt_inputs(logits, targets, logit_lens, target_lens, blank, reduction):
    """Raise a clear error for bad shapes, lengths, label ids or options."""
    if logits.ndim != 4 or not logits.is_floating_point():
        raise ValueError(f"logits must be float (B,T,U+1,V), got {tuple(logits.shape)}")
    B, T, U1, V = logits.shape
    if targets.shape != (B, U1 - 1):
        raise ValueError(
            f"targets must be (B,U)=({B},{U1 - 1}), got {tuple(targets.shape)}"
        )
    for name, lens, top in (
        ("logit_lens", logit_lens, T),
        ("target_lens", target_lens, U1 - 1),
    ):
        if lens.shape != (B,):
            raise ValueError(f"{name} must be ({B},), got {tuple(lens.shape)}")
        if lens.numel() and (lens.min() < 0 or lens.max() > top):
            raise ValueError(f"{name} must lie in [0, {top}], got {lens.tolist()}")
    if B and logit_lens.min() < 1:
        raise ValueError(f"logit_lens must be >= 1, got {logit_lens.tolist()}")
    if not 0 <= blank < V:
        raise ValueError(f"blank={blank} is outside the vocabulary of size V={V}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    valid = torch.arange(U1 - 1, device=targets.device) < target_lens[:, None]
    used = targets[valid]
    if used.numel() and (used.min() < 0 or used.max() >= V or (used == blank).any()):
        raise ValueError(
            f"targets must be label ids in [0, {V}) other than blank={blank}"
        )


class _RNNTLoss(torch.autograd.Function):
    """Per-utterance NLL (B,); backward returns the analytic gradient (no graph)."""

    @staticmethod
    def forward(ctx, logits, targets, logit_lens, target_lens, blank, fastemit_lambda):
        log_probs = torch.log_softmax(logits, dim=-1)  # (B,T,U+1,V): the one big buffer
        lattice = Lattice(log_probs, targets, logit_lens, target_lens, blank)
        alpha = lattice.forward_variables()
        log_like = lattice.log_likelihood(alpha)  # (B,)
        ctx.save_for_backward(logits, targets, logit_lens, target_lens)
        ctx.log_probs, ctx.lattice, ctx.alpha = log_probs, lattice, alpha
        ctx.blank, ctx.fastemit_lambda = blank, fastemit_lambda
        return (-(1.0 + fastemit_lambda) * log_like).to(logits.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        logits, targets, logit_lens, target_lens = ctx.saved_tensors
        lattice = ctx.lattice
        gamma_blank, gamma_emit = lattice.arc_posteriors(
            ctx.alpha, lattice.backward_variables()
        )
        scale = grad_out.to(gamma_blank.dtype)[:, None, None]  # (B,1,1)
        gamma_blank.mul_(scale)
        gamma_emit.mul_((1.0 + ctx.fastemit_lambda) * scale)
        occupancy = (gamma_blank + gamma_emit).to(logits.dtype)  # (B,T,U+1)
        # A second backward (retain_graph) must not reuse the buffer consumed below.
        grad = ctx.log_probs if ctx.log_probs is not None else logits.log_softmax(-1)
        ctx.log_probs = None
        grad.exp_().mul_(occupancy.unsqueeze(-1))  # softmax * occ, in place
        grad[..., ctx.blank] -= gamma_blank.to(grad.dtype)
        label_ids = lattice.label_ids[:, None, :, None].expand(
            -1, grad.shape[1], -1, -1
        )
        grad[:, :, :-1].scatter_add_(
            -1, label_ids, -gamma_emit[..., :-1, None].to(grad.dtype)
        )
        return grad, None, None, None, None, None


class Lattice:
    """The T x U+1 transducer lattice of a batch, stored by anti-diagonal n = t + u.

    Diagonal tensors are (N+1, B, U+1) with N = T + U diagonals plus one spare; alpha
    and beta carry one extra column of -inf (first for alpha, last for beta) so that the
    shifted neighbours of a diagonal are plain slices. Arcs that leave an utterance's
    grid (t >= T_b, u > U_b, or a label past U_b) are -inf.
    """

    def __init__(self, log_probs, targets, logit_lens, target_lens, blank):
        B, T, U1, _ = log_probs.shape
        dev = log_probs.device
        dtype = log_probs.dtype if log_probs.dtype == torch.float64 else torch.float32
        self.B, self.T, self.U1, self.N = B, T, U1, T + U1 - 1
        self.logit_lens, self.target_lens = logit_lens.long(), target_lens.long()
        t = torch.arange(T, device=dev)[None, :, None]  # (1,T,1)
        u = torch.arange(U1, device=dev)[None, None, :]  # (1,1,U+1)
        in_time = t < self.logit_lens[:, None, None]  # (B,T,1)
        u_lens = self.target_lens[:, None, None]  # (B,1,1)
        # padded label slots read the blank column; their arcs are masked below
        valid = torch.arange(U1 - 1, device=dev) < self.target_lens[:, None]  # (B,U)
        self.label_ids = torch.where(valid, targets.long(), blank)  # (B,U)
        phi = log_probs[..., blank].to(dtype)  # (B,T,U+1)
        phi.masked_fill_(~(in_time & (u <= u_lens)), -torch.inf)
        ids = self.label_ids[:, None, :, None].expand(-1, T, -1, -1)  # (B,T,U,1)
        emit = log_probs[:, :, :-1].gather(-1, ids)[..., 0].to(dtype)  # (B,T,U)
        emit = torch.nn.functional.pad(emit, (0, 1), value=-torch.inf)  # (B,T,U+1)
        emit.masked_fill_(~(in_time & (u < u_lens)), -torch.inf)
        self.skew_index, self.unskew_index = _skew_indices(T, U1, dev)
        self.phi_d, self.emit_d = self.skew(phi), self.skew(emit)  # (N+1,B,U+1)
        b = torch.arange(B, device=dev)
        self.final_phi = phi[b, self.logit_lens - 1, self.target_lens]  # (B,)
        self.final_diag = self.logit_lens - 1 + self.target_lens  # (B,)

    def skew(self, x: Tensor) -> Tensor:
        """(B,T,U+1) -> (N+1,B,U+1), [n, b, u] = x[b, n-u, u] (-inf off the grid)."""
        flat = torch.nn.functional.pad(x.reshape(self.B, -1), (0, 1), value=-torch.inf)
        return flat[:, self.skew_index].permute(1, 0, 2).contiguous()  # (N+1,B,U+1)

    def unskew(self, d: Tensor) -> Tensor:
        """(N,B,U+1) -> (B,T,U+1), the inverse of skew on the grid."""
        flat = d.permute(1, 0, 2).reshape(self.B, -1)  # (B,N*(U+1))
        return flat[:, self.unskew_index]  # (B,T,U+1)

    def forward_variables(self) -> Tensor:
        """alpha by diagonal: (N+1, B, U+2), column 0 is padding."""
        alpha = self.phi_d.new_full((self.N + 1, self.B, self.U1 + 1), -torch.inf)
        alpha[0, :, 1] = 0.0
        # emit_right[n, :, u] = y(t, u-1) on diagonal n, aligned with its target (t,u)
        emit_right = torch.nn.functional.pad(
            self.emit_d[..., :-1], (1, 0), value=-torch.inf
        )
        phi_d = self.phi_d
        for n in range(1, self.N + 1):
            prev = alpha[n - 1]  # (B,U+2): [-inf, alpha(., 0), ..., alpha(., U)]
            from_blank = prev[:, 1:] + phi_d[n - 1]  # (t-1,u) -> (t,u)
            from_label = prev[:, :-1] + emit_right[n - 1]  # (t,u-1) -> (t,u)
            torch.logaddexp(from_blank, from_label, out=alpha[n, :, 1:])
        return alpha

    def log_likelihood(self, alpha: Tensor) -> Tensor:
        """ln Pr(y*|x) = alpha(T_b-1, U_b) + phi(T_b-1, U_b) for each utterance (B,)."""
        b = torch.arange(self.B, device=alpha.device)
        return alpha[self.final_diag, b, self.target_lens + 1] + self.final_phi

    def backward_variables(self) -> Tensor:
        """beta by diagonal: (N+1, B, U+2), last column is padding. Diagonal n_b + 1
        holds the virtual end node (T_b, U_b) with beta = 0, so that the final blank's
        posterior has the same form as every other arc's."""
        beta = self.phi_d.new_full((self.N + 1, self.B, self.U1 + 1), -torch.inf)
        b = torch.arange(self.B, device=beta.device)
        finals = {}
        for i, n in enumerate(self.final_diag.tolist()):
            finals.setdefault(n, []).append(i)
        phi_d, emit_d, u_last = self.phi_d, self.emit_d, self.target_lens
        for n in range(self.N - 1, -1, -1):
            nxt = beta[n + 1]  # (B,U+2)
            torch.logaddexp(
                nxt[:, :-1] + phi_d[n], nxt[:, 1:] + emit_d[n], out=beta[n, :, :-1]
            )
            if n in finals:  # the last node of these utterances: only the final blank
                i = torch.tensor(finals[n], device=beta.device)
                beta[n, i, u_last[i]] = self.final_phi[i]
        beta[self.final_diag + 1, b, u_last] = 0.0
        return beta

    def arc_posteriors(self, alpha: Tensor, beta: Tensor) -> tuple[Tensor, Tensor]:
        """gamma_blank, gamma_emit (B,T,U+1): posterior of each arc leaving (t,u)."""
        log_like = beta[0, :, 0]  # (B,) equals the forward log-likelihood
        a = alpha[: self.N, :, 1:] - log_like[None, :, None]  # (N,B,U+1)
        blank = self.unskew((a + self.phi_d[: self.N]).add_(beta[1:, :, :-1]).exp_())
        label = self.unskew(a.add_(self.emit_d[: self.N]).add_(beta[1:, :, 1:]).exp_())
        return blank, label  # (B,T,U+1) each


def _skew_indices(T: int, U1: int, device) -> tuple[Tensor, Tensor]:
    """Gather indices between the (T, U+1) grid and its (N+1, U+1) diagonal layout."""
    N = T + U1 - 1
    n = torch.arange(N + 1, device=device)[:, None]  # (N+1,1)
    u = torch.arange(U1, device=device)[None, :]  # (1,U+1)
    t = n - u  # (N+1,U+1)
    on_grid = (t >= 0) & (t < T)
    skew = torch.where(on_grid, t * U1 + u, T * U1)  # off the grid -> the -inf slot
    tt = torch.arange(T, device=device)[:, None]  # (T,1)
    unskew = (tt + u) * U1 + u  # (T,U+1): flat index of [n = t+u, u]
    return skew, unskew
