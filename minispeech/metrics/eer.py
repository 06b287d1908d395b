"""Speaker-verification metrics: equal error rate and minimum detection cost.

Both read a list of trial scores (higher = more likely the same speaker) and labels
(1 = target trial, 0 = non-target). A threshold t accepts the trials with score >= t:
    P_miss(t) = rejected targets / targets,
    P_fa(t) = accepted non-targets / non-targets.
The ROC is the polyline through (P_fa, 1 - P_miss) at every distinct score, from
(0, 0) (reject all) to (1, 1) (accept all).
- EER: where the polyline crosses P_miss = P_fa, interpolated linearly between the
  two ROC points around the crossing. This is NeMo's voxceleb evaluation
  (`brentq(lambda x: 1 - x - interp1d(fpr, tpr)(x), 0, 1)` on sklearn's roc_curve),
  solved in closed form here.
- minDCF: NIST SRE's normalised detection cost (SRE 2008-2019 evaluation plans),
      C_det(t) = C_miss P_miss(t) P_target + C_fa P_fa(t) (1 - P_target),
      minDCF = min_t C_det(t) / min(C_miss P_target, C_fa (1 - P_target)).
Rates are fractions (0.05, not 5 %).
"""

from __future__ import annotations

import numpy as np


def roc_points(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    """(P_fa, 1 - P_miss) at (0, 0), then at each distinct score, high to low."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel()
    if scores.shape != labels.shape:
        raise ValueError(f"{scores.size} scores but {labels.size} labels")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 1 (target) or 0 (non-target)")
    n_target = int(labels.sum())
    if n_target == 0 or n_target == labels.size:
        raise ValueError("trials need both target (1) and non-target (0) labels")
    order = np.argsort(-scores, kind="stable")
    scores, labels = scores[order], labels[order]
    # the last trial of each run of equal scores: one ROC point per threshold
    ends = np.r_[np.flatnonzero(np.diff(scores) != 0), scores.size - 1]
    hits = np.cumsum(labels)[ends]  # targets accepted
    false_alarms = ends + 1 - hits  # non-targets accepted
    p_fa = np.r_[0.0, false_alarms / (labels.size - n_target)]
    p_hit = np.r_[0.0, hits / n_target]
    return p_fa, p_hit


def eer(scores, labels) -> float:
    """Equal error rate: the fraction where P_miss = P_fa on the ROC polyline."""
    p_fa, p_hit = roc_points(scores, labels)
    # along the polyline P_fa + P_hit grows from 0 to 2; the crossing is where it is 1
    k = int(np.argmax(p_fa + p_hit >= 1.0))  # first point on or past the crossing
    f0, h0, f1, h1 = p_fa[k - 1], p_hit[k - 1], p_fa[k], p_hit[k]
    u = (1.0 - f0 - h0) / ((f1 - f0) + (h1 - h0))  # in [0, 1] along segment k
    return float(f0 + u * (f1 - f0))


def min_dcf(
    scores, labels, p_target: float = 0.01, c_miss: float = 1.0, c_fa: float = 1.0
) -> float:
    """NIST's normalised minimum detection cost over every threshold."""
    p_fa, p_hit = roc_points(scores, labels)
    cost = c_miss * (1.0 - p_hit) * p_target + c_fa * p_fa * (1.0 - p_target)
    default = min(c_miss * p_target, c_fa * (1.0 - p_target))  # accept or reject all
    return float(cost.min() / default)
