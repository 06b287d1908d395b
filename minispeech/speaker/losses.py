"""Speaker classification losses: additive angular margin softmax (ArcFace) and CE.

Deng et al. 2019, "ArcFace: Additive Angular Margin Loss for Deep Face Recognition",
arXiv:1801.07698, Eq. 3:
    L = -1/B sum_i log( e^{s cos(theta_y + m)}
                        / (e^{s cos(theta_y + m)} + sum_{j != y} e^{s cos theta_j}) ),
    y = y_i the target class of item i,
with cos theta_j the logits of SpeakerDecoder(angular=True). NeMo's conventions
(AngularSoftmaxLoss, s = 30, m = 0.2), reproduced:
- only the target logit is clamped to [-1 + 1e-7, 1 - 1e-7] before acos; the other
  logits enter as they are, and
- the class weights are not normalised, so a logit is not a true cosine and may pass
  1 (the denominator uses them anyway).
Differs from NeMo: the denominator is summed in log space (logsumexp), the same value
without overflow.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

EPS = 1e-7  # NeMo's clamp on the target cosine, keeps acos differentiable


def angular_softmax_loss(
    logits: Tensor, labels: Tensor, scale: float = 30.0, margin: float = 0.2
) -> Tensor:
    """logits (B, C) cosines, labels (B,) -> the mean ArcFace loss (scalar)."""
    assert logits.dim() == 2 and labels.shape == logits.shape[:1], (
        f"logits (B, C) and labels (B,), got {tuple(logits.shape)}, "
        f"{tuple(labels.shape)}"
    )
    target = logits.gather(1, labels[:, None])[:, 0]  # (B,) cos theta_y
    theta = torch.acos(target.clamp(-1 + EPS, 1 - EPS))  # (B,)
    numerator = scale * torch.cos(theta + margin)  # (B,) s cos(theta_y + m)
    others = scale * logits.scatter(1, labels[:, None], float("-inf"))  # (B, C)
    terms = torch.cat([numerator[:, None], others], dim=1)  # (B, 1 + C)
    return -(numerator - torch.logsumexp(terms, dim=1)).mean()


class SpeakerLoss(nn.Module):
    """`angular` (ArcFace, the logits are cosines) or `cross_entropy` on the logits."""

    def __init__(self, name: str = "angular", scale: float = 30.0, margin: float = 0.2):
        super().__init__()
        if name not in ("angular", "cross_entropy"):
            raise ValueError(f"loss name {name!r}: use 'angular' or 'cross_entropy'")
        self.name, self.scale, self.margin = name, scale, margin

    @property
    def angular(self) -> bool:
        """True when the decoder must give cosine logits (bias-free, normalised)."""
        return self.name == "angular"

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        if self.angular:
            return angular_softmax_loss(logits, labels, self.scale, self.margin)
        return nn.functional.cross_entropy(logits, labels)
