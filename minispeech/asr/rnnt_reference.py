"""RNN-T loss, the readable version: Graves' forward recursion as a double loop.

Graves 2012, "Sequence Transduction with Recurrent Neural Networks" (arXiv:1211.3711),
Sec. 2.4: alpha(t,u) = alpha(t-1,u) Pr(blank|t-1,u) + alpha(t,u-1) Pr(y_u|t,u-1),
Pr(y*|x) = alpha(T,U) Pr(blank|T,U); here in log space with 0-based frames. Autograd
differentiates through the loops, so this is slow (one graph node per lattice arc) and
meant as the reference that `minispeech.asr.rnnt.rnnt_loss` is tested against.

FastEmit (Yu et al. 2021, arXiv:2010.11148): label arcs get their gradient scaled by
(1 + lambda) through `(1 + lambda) * x - lambda * x.detach()`, which keeps the value of
x; the reported value is (1 + lambda) * NLL, as in `rnnt_loss`.
"""

import torch
from torch import Tensor

from minispeech.asr.rnnt import check_rnnt_inputs, reduce_losses


def rnnt_loss_reference(
    logits: Tensor,
    targets: Tensor,
    logit_lens: Tensor,
    target_lens: Tensor,
    blank: int = 0,
    reduction: str = "mean",
    fastemit_lambda: float = 0.0,
) -> Tensor:
    """Same arguments and result as `rnnt_loss`, computed one utterance at a time."""
    check_rnnt_inputs(logits, targets, logit_lens, target_lens, blank, reduction)
    losses = []
    for b in range(logits.shape[0]):
        T, U = int(logit_lens[b]), int(target_lens[b])
        log_probs = logits[b, :T, : U + 1].log_softmax(dim=-1)  # (T,U+1,V)
        labels = targets[b, :U].tolist()
        nll = -utterance_log_likelihood(log_probs, labels, blank, fastemit_lambda)
        losses.append(nll + fastemit_lambda * nll.detach())
    return reduce_losses(torch.stack(losses), target_lens, reduction)


def utterance_log_likelihood(
    log_probs: Tensor, labels: list[int], blank: int, fastemit_lambda: float = 0.0
) -> Tensor:
    """ln Pr(labels | x) from log_probs (T, U+1, V) by the forward recursion."""
    T, U1, _ = log_probs.shape
    alpha = [[None] * U1 for _ in range(T)]
    for t in range(T):
        for u in range(U1):
            paths = []
            if t == 0 and u == 0:
                paths.append(log_probs.new_zeros(()))
            if t > 0:  # a blank at (t-1, u) moved one frame on
                paths.append(alpha[t - 1][u] + log_probs[t - 1, u, blank])
            if u > 0:  # label u was emitted at (t, u-1)
                y = log_probs[t, u - 1, labels[u - 1]]
                y = (1 + fastemit_lambda) * y - fastemit_lambda * y.detach()
                paths.append(alpha[t][u - 1] + y)
            alpha[t][u] = torch.logsumexp(torch.stack(paths), dim=0)
    return alpha[T - 1][U1 - 1] + log_probs[T - 1, U1 - 1, blank]
