"""Diarization error rate (DER) with the semantics of NIST md-eval.

NIST's Rich Transcription scoring tool md-eval-22.pl (RT-09 evaluation plan, "speaker
diarization") defines the error; NeMo 3.0 scores diarization with a Python port of it
(nemo/collections/asr/metrics/md_eval.py, through `score_labels`), and this file
matches that port. For each recording:
  1) evaluation region: the UEM segments, or else [first start, last end] over the
     reference AND hypothesis turns (NeMo's default, so hypothesis speech after the
     last reference turn is a false alarm; md-eval alone uses the reference extent).
  2) speaker mapping: reference speakers map one-to-one to hypothesis speakers so
     that the time they talk together inside the evaluation region is largest (the
     Hungarian algorithm, `hungarian`); pairs that never talk together are dropped.
     As in md-eval the mapping is chosen before collars and overlap are removed.
  3) scored region: the evaluation region minus the no-score zone [b - collar,
     b + collar] around every reference turn boundary b (`collar` is a half-width;
     pyannote's collar is the full width, 2 * collar) and, with `ignore_overlap`
     (md-eval's -1), minus where two or more reference turns overlap.
  4) in each piece of the scored region where nobody starts or stops, lasting d
     seconds, with N_ref reference and N_hyp hypothesis speakers talking, of whom
     N_correct reference speakers have their mapped hypothesis speaker talking:
        scored      += d * N_ref
        miss        += d * max(N_ref - N_hyp, 0)
        false alarm += d * max(N_hyp - N_ref, 0)
        confusion   += d * (min(N_ref, N_hyp) - N_correct)
DER = (miss + false alarm + confusion) / scored, so overlapped reference speech counts
once per speaker. Over recordings the seconds are summed (pooled), never the ratios
averaged.

Turns are plain (start, end, speaker) tuples in seconds. As in md-eval, a turn with
end <= start is ignored, a speaker's own overlapping turns count once as talking, but
"overlap" in step 3 counts reference turns (two turns of one speaker overlap too).
Differences from NeMo: ties between equally good speaker mappings may be broken
differently (NeMo calls scipy's `linear_sum_assignment`), and recording ids are taken
as written.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from dataclasses import dataclass

Interval = tuple[float, float]  # (start, end) in seconds, start < end
Turn = tuple[float, float, str]  # (start, end, speaker) in seconds


@dataclass(frozen=True)
class DERResult:
    """DER of one recording (`file_der`) or pooled over recordings (`der`)."""

    der: float  # (miss + false alarm + confusion) / scored speaker time
    miss: float  # missed speaker time / scored speaker time
    false_alarm: float  # false-alarm speaker time / scored speaker time
    confusion: float  # confused speaker time / scored speaker time
    scored_s: float  # scored reference speaker time, seconds (overlap once per speaker)
    miss_s: float  # seconds of reference speakers with no hypothesis speaker
    false_alarm_s: float  # seconds of hypothesis speakers with no reference speaker
    confusion_s: float  # seconds of speakers matched to the wrong speaker
    # file_der: {reference speaker: hypothesis speaker};
    # der and pool: {recording: {reference speaker: hypothesis speaker}}
    mapping: dict


# ---------------------------------------------------------------- Hungarian
def hungarian(cost: list[list[float]]) -> list[tuple[int, int]]:
    """(row, column) pairs, one-to-one, of least total cost: min(n, m) pairs of an
    n x m matrix (rectangular ones too), sorted by row.

    The Hungarian method (Kuhn 1955, "The Hungarian method for the assignment
    problem"; Munkres 1957, "Algorithms for the assignment and transportation
    problems") in its O(n^2 m) form: rows join one at a time, each along a
    shortest augmenting path of reduced costs c[i][j] - u[i] - v[j], with the dual
    potentials u (rows) and v (columns) kept so that every reduced cost stays >= 0
    and is 0 on matched pairs (Tomizawa 1971; Edmonds and Karp 1972).
    """
    n_rows = len(cost)
    n_cols = len(cost[0]) if n_rows else 0
    if n_rows == 0 or n_cols == 0:
        return []
    if n_rows > n_cols:  # match the columns to the rows instead
        transposed = [list(column) for column in zip(*cost)]
        return sorted((i, j) for j, i in hungarian(transposed))
    u = [0.0] * (n_rows + 1)  # row potentials; index 0 unused
    v = [0.0] * (n_cols + 1)  # column potentials; column 0 is a virtual start
    row_of = [0] * (n_cols + 1)  # row_of[j]: row matched to column j (1-based), 0 free
    for row in range(1, n_rows + 1):
        _add_row(cost, row, u, v, row_of)
    return sorted((row_of[j] - 1, j - 1) for j in range(1, n_cols + 1) if row_of[j])


def _add_row(cost, row: int, u: list, v: list, row_of: list) -> None:
    """Match `row` too: Dijkstra over the columns from the virtual column 0, then
    flip the matched/unmatched pairs along the path to the free column reached."""
    n_cols = len(v) - 1
    dist = [math.inf] * (n_cols + 1)  # least reduced cost to reach each column
    prev = [0] * (n_cols + 1)  # the column before it on that path
    done = [False] * (n_cols + 1)
    row_of[0], col = row, 0
    # 1) grow the shortest-path tree until it reaches a free column
    while row_of[col] != 0:
        done[col] = True
        i, delta, nearest = row_of[col], math.inf, 0
        for j in range(1, n_cols + 1):
            if done[j]:
                continue
            reduced = cost[i - 1][j - 1] - u[i] - v[j]
            if reduced < dist[j]:
                dist[j], prev[j] = reduced, col
            if dist[j] < delta:
                delta, nearest = dist[j], j
        # 2) shift the potentials so the edge to `nearest` becomes tight (cost 0)
        for j in range(n_cols + 1):
            if done[j]:
                u[row_of[j]] += delta
                v[j] -= delta
            else:
                dist[j] -= delta
        col = nearest
    # 3) augment: each column on the path takes the row of the column before it
    while col:
        row_of[col] = row_of[prev[col]]
        col = prev[col]


# ---------------------------------------------------------------- intervals
def merge(intervals) -> list[Interval]:
    """The union of (start, end) intervals, sorted and disjoint; empty ones dropped."""
    out: list[Interval] = []
    for start, end in sorted((s, e) for s, e in intervals if e > s):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def subtract(keep: list[Interval], remove: list[Interval]) -> list[Interval]:
    """`keep` minus `remove`, both sorted and disjoint (from `merge`)."""
    out, k = [], 0
    for start, end in keep:
        while k < len(remove) and remove[k][1] <= start:
            k += 1
        j = k
        while j < len(remove) and remove[j][0] < end:
            if remove[j][0] > start:
                out.append((start, remove[j][0]))
            start = max(start, remove[j][1])
            j += 1
        if start < end:
            out.append((start, end))
    return out


def intersect(a: list[Interval], b: list[Interval]) -> list[Interval]:
    """Where both sorted, disjoint interval lists are."""
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start < end:
            out.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def total(intervals: list[Interval]) -> float:
    return sum(end - start for start, end in intervals)


def _contains(intervals: list[Interval], t: float) -> bool:
    k = bisect_right(intervals, (t, math.inf)) - 1
    return k >= 0 and intervals[k][0] <= t < intervals[k][1]


# ---------------------------------------------------------------- md-eval steps
def speaker_intervals(turns: list[Turn]) -> dict[str, list[Interval]]:
    """{speaker: when they talk}, each speaker's turns merged."""
    by_speaker: dict[str, list[Interval]] = {}
    for start, end, speaker in turns:
        by_speaker.setdefault(speaker, []).append((float(start), float(end)))
    merged = {speaker: merge(spans) for speaker, spans in by_speaker.items()}
    return {speaker: spans for speaker, spans in merged.items() if spans}


def collar_zones(turns: list[Turn], collar: float) -> list[Interval]:
    """[b - collar, b + collar] around every boundary b of every reference turn."""
    bounds = [b for start, end, _ in turns if end > start for b in (start, end)]
    return merge((b - collar, b + collar) for b in bounds)


def overlap_zones(turns: list[Turn]) -> list[Interval]:
    """Where two or more reference turns are active (md-eval's -1 removes these).
    At equal times a turn's end comes before another's start: touching is no overlap."""
    events = sorted(
        [(start, 1) for start, end, _ in turns if end > start]
        + [(end, -1) for start, end, _ in turns if end > start]
    )  # (t, -1) sorts before (t, 1)
    zones, active, since = [], 0, 0.0
    for time, step in events:
        active += step
        if active == 2 and step == 1:
            since = time
        elif active == 1 and step == -1:
            zones.append((since, time))
    return merge(zones)


def map_speakers(
    ref: dict[str, list[Interval]],
    hyp: dict[str, list[Interval]],
    region: list[Interval],
) -> dict[str, str]:
    """{reference speaker: hypothesis speaker}, one-to-one, maximising the total time
    each pair talks together inside `region`; pairs that never do are left out."""
    refs, hyps = sorted(ref), sorted(hyp)
    together = [  # (N_ref, N_hyp) seconds
        [total(intersect(intersect(ref[r], region), hyp[h])) for h in hyps]
        for r in refs
    ]
    pairs = hungarian([[-seconds for seconds in row] for row in together])
    return {refs[i]: hyps[j] for i, j in pairs if together[i][j] > 0}


def score_pieces(
    region: list[Interval],
    ref: dict[str, list[Interval]],
    hyp: dict[str, list[Interval]],
    mapping: dict[str, str],
) -> tuple[float, float, float, float]:
    """(scored, miss, false alarm, confusion) seconds over `region`, cut into pieces
    where no speaker starts or stops (step 4 of the module docstring)."""
    cuts = sorted(
        {t for spans in (*ref.values(), *hyp.values()) for s in spans for t in s}
    )
    scored = miss = false_alarm = confusion = 0.0
    for start, end in region:
        inner = cuts[bisect_right(cuts, start) : bisect_left(cuts, end)]
        edges = [start, *inner, end]
        for a, b in zip(edges, edges[1:]):
            mid, d = (a + b) / 2, b - a
            refs = [r for r, spans in ref.items() if _contains(spans, mid)]
            hyps = {h for h, spans in hyp.items() if _contains(spans, mid)}
            n_correct = sum(mapping.get(r) in hyps for r in refs)
            scored += d * len(refs)
            miss += d * max(len(refs) - len(hyps), 0)
            false_alarm += d * max(len(hyps) - len(refs), 0)
            confusion += d * (min(len(refs), len(hyps)) - n_correct)
    return scored, miss, false_alarm, confusion


# ---------------------------------------------------------------- results
def _ratio(seconds: float, scored: float) -> float:
    if scored > 0:
        return seconds / scored
    return 0.0 if seconds == 0 else math.inf


def make_result(scored, miss, false_alarm, confusion, mapping) -> DERResult:
    """A DERResult from seconds: the fractions are of the scored speaker time."""
    return DERResult(
        der=_ratio(miss + false_alarm + confusion, scored),
        miss=_ratio(miss, scored),
        false_alarm=_ratio(false_alarm, scored),
        confusion=_ratio(confusion, scored),
        scored_s=scored,
        miss_s=miss,
        false_alarm_s=false_alarm,
        confusion_s=confusion,
        mapping=mapping,
    )


def file_der(
    reference: list[Turn],
    hypothesis: list[Turn],
    collar: float = 0.25,
    ignore_overlap: bool = False,
    uem: list[Interval] | None = None,
) -> DERResult:
    """DER of one recording; `uem` is its evaluation region as (start, end) pairs
    (default: first to last turn of either side). The defaults, collar 0.25 with
    overlap scored, are NeMo's "fair" setting (VoxSRC)."""
    if collar < 0:
        raise ValueError(f"collar must be >= 0 seconds, got {collar}")
    ref, hyp = speaker_intervals(reference), speaker_intervals(hypothesis)
    # 1) evaluation region: the UEM, or first to last speech of either side
    if uem is None:
        spans = [span for spans in (*ref.values(), *hyp.values()) for span in spans]
        uem = [(min(s for s, _ in spans), max(e for _, e in spans))] if spans else []
    region = merge(uem)
    # 2) speaker mapping over the whole evaluation region
    mapping = map_speakers(ref, hyp, region)
    # 3) scored region: no-score collars, then reference overlap
    if collar > 0:
        region = subtract(region, collar_zones(reference, collar))
    if ignore_overlap:
        region = subtract(region, overlap_zones(reference))
    # 4) errors piece by piece
    return make_result(*score_pieces(region, ref, hyp, mapping), mapping)


def pool(results: dict[str, DERResult]) -> DERResult:
    """DER over recordings: their seconds summed (not their ratios averaged); the
    mapping becomes {recording: mapping}."""
    seconds = [
        sum(getattr(r, name) for r in results.values())
        for name in ("scored_s", "miss_s", "false_alarm_s", "confusion_s")
    ]
    return make_result(*seconds, {key: r.mapping for key, r in results.items()})


def der(
    references: dict[str, list[Turn]],
    hypotheses: dict[str, list[Turn]],
    collar: float = 0.25,
    ignore_overlap: bool = False,
    uem: dict[str, list[Interval]] | None = None,
) -> DERResult:
    """DER pooled over the recordings of `references` ({recording: turns}); a
    recording missing from `hypotheses` is all missed, and, as in md-eval, a
    hypothesis recording with no reference is not scored. `uem`, when given, must
    hold every reference recording."""
    missing = sorted(set(references) - set(uem)) if uem is not None else []
    if missing:
        raise ValueError(f"the UEM has no segments for recordings {missing}")
    results = {
        key: file_der(
            turns,
            hypotheses.get(key, []),
            collar=collar,
            ignore_overlap=ignore_overlap,
            uem=None if uem is None else uem[key],
        )
        for key, turns in references.items()
    }
    return pool(results)
