"""Diarization error rate: NeMo's md-eval scores, a 1 ms frame-by-frame reference with
brute-force speaker mapping, and the Hungarian algorithm against brute force."""

import json
import random
from itertools import permutations

import numpy as np
import pytest

from minispeech.diarization.rttm import read_rttm, to_turns
from minispeech.metrics.der import der, file_der, hungarian, pool


# ---------------------------------------------------------------- Hungarian
def brute_force_cost(cost) -> float:
    """Least total cost over every one-to-one matching of min(n, m) pairs."""
    n_rows, n_cols = len(cost), len(cost[0])
    if n_rows > n_cols:
        cost = [list(column) for column in zip(*cost)]
        n_rows, n_cols = n_cols, n_rows
    return min(
        sum(cost[i][j] for i, j in enumerate(cols))
        for cols in permutations(range(n_cols), n_rows)
    )


SHAPES = [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (6, 6), (3, 5), (5, 3), (1, 4)]
SHAPES += [(4, 1), (2, 6), (6, 2), (4, 6), (6, 4)]


@pytest.mark.parametrize("n_rows,n_cols", SHAPES)
def test_hungarian_matches_brute_force(n_rows, n_cols):
    rng = random.Random(n_rows * 10 + n_cols)
    for trial in range(20):
        if trial % 2:  # small integers: many ties
            cost = [[rng.randint(0, 3) for _ in range(n_cols)] for _ in range(n_rows)]
        else:
            cost = [[rng.uniform(-5, 5) for _ in range(n_cols)] for _ in range(n_rows)]
        pairs = hungarian(cost)
        rows, cols = [i for i, _ in pairs], [j for _, j in pairs]
        assert len(pairs) == min(n_rows, n_cols)
        assert len(set(rows)) == len(rows) and len(set(cols)) == len(cols)
        assert rows == sorted(rows)
        best = brute_force_cost(cost)
        assert sum(cost[i][j] for i, j in pairs) == pytest.approx(best, abs=1e-9)


def test_hungarian_hand_worked():
    # 1 + 2 + 2 = 5; the other five permutations cost 6, 6, 7, 9 and 11
    assert hungarian([[4, 1, 3], [2, 0, 5], [3, 2, 2]]) == [(0, 1), (1, 0), (2, 2)]
    assert hungarian([[5, 0, 9]]) == [(0, 1)]
    assert hungarian([[5], [0], [9]]) == [(1, 0)]
    assert hungarian([]) == [] and hungarian([[]]) == []


# ---------------------------------------------------------------- hand-worked DER
def test_hand_worked_confusion_and_miss():
    ref = [(0.0, 10.0, "A")]
    hyp = [(0.0, 5.0, "x"), (6.0, 10.0, "y")]
    # x talks with A for 5 s, y for 4 s: A -> x; 1 s missed, 4 s confused
    result = file_der(ref, hyp, collar=0.0)
    assert result.mapping == {"A": "x"}
    assert (result.scored_s, result.miss_s, result.confusion_s) == (10.0, 1.0, 4.0)
    assert result.der == pytest.approx(0.5) and result.false_alarm == 0.0
    # collars only at reference boundaries 0 and 10: [0.25, 9.75] is scored
    result = file_der(ref, hyp, collar=0.25)
    assert result.scored_s == pytest.approx(9.5)
    assert result.confusion_s == pytest.approx(3.75) and result.miss_s == 1.0


def test_overlap_counts_once_per_speaker_and_can_be_ignored():
    ref = [(0.0, 4.0, "A"), (2.0, 6.0, "B")]  # 2 s of overlap
    hyp = [(0.0, 6.0, "x")]
    result = file_der(ref, hyp, collar=0.0)
    assert result.scored_s == 8.0 and result.miss_s == 2.0  # one of two missed
    assert result.confusion_s == 2.0  # B (unmapped) talks alone in [4, 6]
    ignored = file_der(ref, hyp, collar=0.0, ignore_overlap=True)
    assert ignored.scored_s == 4.0 and ignored.miss_s == 0.0
    assert ignored.confusion_s == 2.0


def test_speech_after_the_last_reference_turn_is_false_alarm():
    ref = [(1.0, 3.0, "A")]
    hyp = [(1.0, 3.0, "x"), (3.0, 5.0, "x")]
    result = file_der(ref, hyp, collar=0.0)
    assert result.false_alarm_s == 2.0 and result.der == 1.0
    # a UEM that ends with the reference does not score the tail
    assert file_der(ref, hyp, collar=0.0, uem=[(0.0, 3.0)]).der == 0.0


def test_uem_limits_scoring_and_mapping():
    ref = [(0.0, 4.0, "A"), (4.0, 8.0, "B")]
    hyp = [(0.0, 8.0, "x")]
    assert file_der(ref, hyp, collar=0.0).der == pytest.approx(0.5)
    result = file_der(ref, hyp, collar=0.0, uem=[(5.0, 8.0)])
    assert result.mapping == {"B": "x"} and result.der == 0.0
    with pytest.raises(ValueError, match="no segments"):
        der({"a": ref}, {"a": hyp}, uem={"b": [(0.0, 1.0)]})


def test_empty_and_degenerate_inputs():
    assert file_der([], []).der == 0.0
    missed = der({"a": [(0.0, 2.0, "A")]}, {})  # no hypothesis: all missed
    assert missed.miss == 1.0 and missed.mapping == {"a": {}}
    assert file_der([(1.0, 1.0, "A")], [(0.0, 1.0, "x")]).der == float("inf")
    with pytest.raises(ValueError, match="collar"):
        file_der([], [], collar=-0.1)


# ---------------------------------------------------------------- NeMo's md-eval
def nemo_cases(nemo_ref):
    results = json.loads((nemo_ref / "diar_ref_io.json").read_text())["der_results"]
    assert len(results) == 12  # (sessA, sessB, both) x collar 0.25/0 x overlap
    return results


def read_pair(nemo_ref, name):
    ref = read_rttm(nemo_ref / f"diar_ref_{name}_ref.rttm")[name]
    hyp = read_rttm(nemo_ref / f"diar_ref_{name}_hyp.rttm")[name]
    return to_turns(ref), to_turns(hyp)


def test_matches_nemo_score_labels(nemo_ref):
    """Every setting of NeMo 3.0.0's `score_labels` (README_tasks.md, "DER")."""
    worst = 0.0
    for tag, expected in nemo_cases(nemo_ref).items():
        names, setting = tag.split("/")  # "sessA+sessB", "collar0.25_ignoreov1"
        collar = float(setting.split("_")[0].removeprefix("collar"))
        pairs = {name: read_pair(nemo_ref, name) for name in names.split("+")}
        result = der(
            {name: ref for name, (ref, _) in pairs.items()},
            {name: hyp for name, (_, hyp) in pairs.items()},
            collar=collar,
            ignore_overlap=setting.endswith("1"),
        )
        got = (result.der, result.miss, result.false_alarm, result.confusion)
        want = tuple(expected[key] for key in ("DER", "MISS", "FA", "CER"))
        worst = max(worst, *(abs(a - b) for a, b in zip(got, want)))
        assert got == pytest.approx(want, abs=1e-4), tag
        cum = expected["cum"]
        seconds = (result.scored_s, result.miss_s, result.false_alarm_s)
        keys = ("SCORED_SPEAKER", "MISSED_SPEAKER", "FALARM_SPEAKER", "SPEAKER_ERROR")
        want_s = tuple(cum[key] for key in keys)
        assert (*seconds, result.confusion_s) == pytest.approx(want_s, abs=1e-6), tag
        assert result.mapping == expected["mapping"], tag
    assert worst < 1e-9  # measured: 0 (the same sums in the same order)


def test_pooling_sums_seconds(nemo_ref):
    expected = nemo_cases(nemo_ref)
    a, b = (file_der(*read_pair(nemo_ref, n)) for n in ("sessA", "sessB"))
    pooled = pool({"sessA": a, "sessB": b})
    assert pooled.der == pytest.approx(
        expected["sessA+sessB/collar0.25_ignoreov0"]["DER"]
    )
    assert abs(pooled.der - (a.der + b.der) / 2) > 1e-3  # not the mean of ratios


# ---------------------------------------------------------------- frame reference
def ms(seconds: float) -> int:
    return round(seconds * 1000)


def active(spans, t) -> np.ndarray:
    """(T,) bool: which frame centres t (ms) fall in any (start, end, ...) span."""
    return np.any([(ms(span[0]) <= t) & (t < ms(span[1])) for span in spans], axis=0)


def der_by_frames(ref, hyp, collar, ignore_overlap, uem=None):
    """The error seconds (scored, miss, false alarm, confusion), counted 1 ms frame
    by frame, for every speaker mapping that ties for the most frames talked
    together; the mappings are found by trying all permutations. Every time in the
    inputs is a whole number of ms, so frame centres never sit on a boundary."""
    ends = [ms(span[1]) for span in ref + hyp + (uem or [])]
    t = np.arange(max(ends)) + 0.5  # frame centres, ms, (T,)
    if uem is None:  # first to last speech of either side
        uem = [(min(s for s, _, _ in ref + hyp), max(e for _, e, _ in ref + hyp))]
    evaluated = active(uem, t)  # (T,)
    refs, hyps = sorted({w for *_, w in ref}), sorted({w for *_, w in hyp})
    n = max(len(refs), len(hyps))  # the shorter side is padded with silent speakers
    R = [active([x for x in ref if x[2] == w], t) for w in refs]
    H = [active([x for x in hyp if x[2] == w], t) for w in hyps]
    R = np.array(R + [t < 0] * (n - len(refs)))  # (n, T)
    H = np.array(H + [t < 0] * (n - len(hyps)))  # (n, T)
    scored = evaluated.copy()
    for s, e, _ in ref:
        for b in (ms(s), ms(e)):
            scored &= np.abs(t - b) > 1000 * collar
    if ignore_overlap:  # md-eval: two reference turns at once, even of one speaker
        n_turns = np.sum([active([x], t) for x in ref], axis=0)  # (T,)
        scored &= n_turns < 2
    together = {
        p: sum((R[i] & H[j] & evaluated).sum() for i, j in enumerate(p))
        for p in permutations(range(n))
    }
    best = max(together.values())
    n_ref, n_hyp = R[:, scored].sum(0), H[:, scored].sum(0)  # (T_scored,)
    out = set()
    for p in (p for p, frames in together.items() if frames == best):
        correct = sum(R[i] & H[j] for i, j in enumerate(p))[scored]
        errors = (
            n_ref.sum(),
            np.maximum(n_ref - n_hyp, 0).sum(),
            np.maximum(n_hyp - n_ref, 0).sum(),
            (np.minimum(n_ref, n_hyp) - correct).sum(),
        )
        out.add(tuple(int(x) / 1000 for x in errors))
    return out


def random_turns(rng, speakers):
    """3-8 turns of 0.05-2.5 s in [0, 8.5] s, whole ms, overlapping at will."""
    turns = []
    for _ in range(rng.randint(3, 8)):
        start, duration = rng.randint(0, 6000), rng.randint(50, 2500)
        turns.append((start / 1000, (start + duration) / 1000, rng.choice(speakers)))
    return turns


def random_uem(rng):
    a, b, c = sorted(rng.sample(range(0, 8000), 3))
    return [(a / 1000, b / 1000), (c / 1000, 8.5)]


@pytest.mark.parametrize("collar", [0.0, 0.25])
@pytest.mark.parametrize("ignore_overlap", [False, True])
def test_matches_frame_reference_on_random_pairs(collar, ignore_overlap):
    rng = random.Random(20211105)
    references, hypotheses, totals = {}, {}, np.zeros(4)
    for case in range(25):
        ref = random_turns(rng, "ABCD"[: rng.randint(2, 4)])
        hyp = random_turns(rng, "wxyz"[: rng.randint(2, 4)])
        uem = random_uem(rng) if case % 5 == 4 else None
        result = file_der(ref, hyp, collar, ignore_overlap, uem)
        got = (result.scored_s, result.miss_s, result.false_alarm_s, result.confusion_s)
        options = der_by_frames(ref, hyp, collar, ignore_overlap, uem)
        assert any(np.allclose(got, want, atol=1e-6) for want in options), (case, got)
        references[f"r{case}"], hypotheses[f"r{case}"] = ref, hyp
        totals += got if uem is None else 0
    # pooled over the recordings without a UEM: the seconds add up
    keep = [key for k, key in enumerate(references) if k % 5 != 4]
    pooled = der(
        {key: references[key] for key in keep},
        {key: hypotheses[key] for key in keep},
        collar=collar,
        ignore_overlap=ignore_overlap,
    )
    assert pooled.scored_s == pytest.approx(totals[0])
    assert pooled.der == pytest.approx(totals[1:].sum() / totals[0])
