"""Label-smoothed negative log-likelihood of token sequences.

Szegedy et al. 2016, "Rethinking the Inception Architecture for Computer Vision",
arXiv:1512.00567, Sec. 7: the target distribution q'(k) = (1 - eps) [k = y] + eps / V,
so the cross-entropy is (1 - eps) (-ln p(y)) + eps (1/V) sum_v (-ln p(v)).
"""

from torch import Tensor


def label_smoothed_nll(
    log_probs: Tensor, targets: Tensor, mask: Tensor, eps: float = 0.0
) -> Tensor:
    """Mean over the masked-in positions of -(1-eps) ln p(y) - eps/V sum_v ln p(v).

    log_probs (B, L, V), targets (B, L) ids, mask (B, L) bool -> scalar."""
    nll = -log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B, L)
    smooth = -log_probs.mean(dim=-1)  # (B, L): (1/V) sum_v -ln p(v)
    loss = (1.0 - eps) * nll + eps * smooth  # (B, L)
    return loss.masked_fill(~mask, 0.0).sum() / mask.sum().clamp_min(1)
