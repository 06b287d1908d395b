"""EER and minDCF against a brute-force sweep of every threshold, scikit-learn's
roc_curve and NeMo's voxceleb evaluation (brentq on interp1d of the ROC)."""

import numpy as np
import pytest

from minispeech.metrics import eer, min_dcf
from minispeech.metrics.eer import roc_points


def sweep(scores, labels):
    """Brute force: (P_fa, P_miss) for the threshold below everything, then for
    every distinct score t, accepting scores >= t (reject-all first)."""
    scores, labels = np.asarray(scores, float), np.asarray(labels)
    thresholds = [np.inf] + sorted(set(scores.tolist()), reverse=True)
    points = []
    for t in thresholds:
        accept = scores >= t
        p_fa = (accept & (labels == 0)).sum() / (labels == 0).sum()
        p_miss = (~accept & (labels == 1)).sum() / (labels == 1).sum()
        points.append((p_fa, p_miss))
    return np.array(points)


def random_trials(rng, n, ties=False):
    labels = rng.integers(0, 2, n)
    labels[:2] = [0, 1]
    scores = rng.normal(size=n) + 1.2 * labels
    if ties:
        scores = np.round(scores, 1)  # many equal scores
    return scores, labels


def test_hand_worked_eer():
    # targets 0.9, 0.6; non-targets 0.8, 0.1: at t = 0.8 P_fa = 1/2, P_miss = 1/2
    assert eer([0.9, 0.8, 0.6, 0.1], [1, 0, 1, 0]) == pytest.approx(0.5)
    assert eer([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0]) == 0.0  # separable
    assert eer([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]) == 1.0  # all wrong


@pytest.mark.parametrize("ties", [False, True])
def test_roc_points_equal_the_brute_force_sweep(ties):
    rng = np.random.default_rng(0)
    for _ in range(20):
        scores, labels = random_trials(rng, 40, ties)
        p_fa, p_hit = roc_points(scores, labels)
        np.testing.assert_allclose(
            np.c_[p_fa, 1 - p_hit], sweep(scores, labels), atol=1e-12
        )


@pytest.mark.parametrize("ties", [False, True])
def test_eer_lies_on_the_sweep_and_where_miss_equals_false_alarm(ties):
    rng = np.random.default_rng(1)
    for _ in range(30):
        scores, labels = random_trials(rng, 50, ties)
        points = sweep(scores, labels)
        value = eer(scores, labels)
        # between the best and worst operating points around the crossing
        assert points.min(axis=1).max() - 1e-12 <= value
        assert value <= points.max(axis=1).min() + 1e-12


def test_eer_matches_sklearn_roc_with_nemo_interpolation():
    brentq = pytest.importorskip("scipy.optimize").brentq
    interp1d = pytest.importorskip("scipy.interpolate").interp1d
    roc_curve = pytest.importorskip("sklearn.metrics").roc_curve

    def nemo_eer(scores, labels):  # examples/speaker_tasks/recognition/voxceleb_eval.py
        fpr, tpr, _ = roc_curve(labels, scores, pos_label=1)
        return brentq(lambda x: 1.0 - x - interp1d(fpr, tpr)(x), 0.0, 1.0)

    rng = np.random.default_rng(2)
    for ties in (False, True):
        for _ in range(20):
            scores, labels = random_trials(rng, 60, ties)
            assert eer(scores, labels) == pytest.approx(
                nemo_eer(scores, labels), abs=1e-9
            )


def test_min_dcf_equals_brute_force():
    rng = np.random.default_rng(3)
    for p_target, c_miss, c_fa in [(0.01, 1, 1), (0.05, 1, 1), (0.5, 10, 1)]:
        for ties in (False, True):
            scores, labels = random_trials(rng, 80, ties)
            points = sweep(scores, labels)
            cost = c_miss * points[:, 1] * p_target + c_fa * points[:, 0] * (
                1 - p_target
            )
            expected = cost.min() / min(c_miss * p_target, c_fa * (1 - p_target))
            got = min_dcf(scores, labels, p_target, c_miss, c_fa)
            assert got == pytest.approx(expected, abs=1e-12)
            assert 0.0 <= got <= 1.0


def test_order_of_trials_does_not_matter():
    rng = np.random.default_rng(4)
    scores, labels = random_trials(rng, 30, ties=True)
    perm = rng.permutation(30)
    assert eer(scores, labels) == eer(scores[perm], labels[perm])
    assert min_dcf(scores, labels) == min_dcf(scores[perm], labels[perm])


@pytest.mark.parametrize(
    "scores, labels",
    [([0.1, 0.2], [1, 1]), ([0.1, 0.2], [0, 0]), ([0.1], [1, 0]), ([0.1], [2])],
)
def test_bad_trials_are_refused(scores, labels):
    with pytest.raises(ValueError):
        eer(scores, labels)
