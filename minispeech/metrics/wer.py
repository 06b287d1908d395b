"""Error rates for transcripts: word and character error rate from an edit alignment.

Levenshtein 1966, "Binary codes capable of correcting deletions, insertions and
reversals" (Soviet Physics Doklady 10(8)), computed with the dynamic programme of
Wagner & Fischer 1974:

    d[i][0] = i,  d[0][j] = j,
    d[i][j] = min(d[i-1][j-1] + [ref_i != hyp_j],   # match or substitution
                  d[i-1][j] + 1,                    # deletion (ref token missing)
                  d[i][j-1] + 1)                    # insertion (extra hyp token)

The backtrace from d[N][M] recovers one optimal alignment; S, D and I are counted on
it. Several alignments can share the minimum (same S + D + I, different split); the
tie-breaking here reproduces jiwer's split exactly (see ``_backtrace``). Differs from
the textbook: a common prefix/suffix is matched before the table is filled, and a pair
too long for a full table (an hour-long transcript: 60,000 x 60,000 characters) is
aligned by Hirschberg's divide and conquer (Hirschberg 1975, "A linear space algorithm
for computing maximal common subsequences", CACM 18(6)) on rows computed with numpy,
in linear memory: the total S + D + I is the same minimum, the split between them may
differ from jiwer's where several alignments tie.

Corpus-level rates (the standard definition, as in jiwer and NeMo):

    WER = (S + D + I) / N,   N = total reference words over the whole corpus,

not an average of per-utterance rates. Words are whitespace-separated tokens; CER
counts characters of each sentence with leading/trailing whitespace stripped
(spaces inside count as characters), as jiwer does.

Empty references: an empty reference sentence is fine (its hypothesis words count as
insertions). If the WHOLE corpus has zero reference tokens the rate is 0.0 when
there are no errors and ``inf`` otherwise (NeMo's ``word_error_rate`` also returns
inf; jiwer differs here). Not a ZeroDivisionError, so a validation loop never dies.
"""

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["ErrorCounts", "edit_alignment", "word_errors", "char_errors", "wer", "cer"]

EQUAL, SUBSTITUTE, DELETE, INSERT = "equal", "substitute", "delete", "insert"


@dataclass(frozen=True)
class ErrorCounts:
    """Edit counts summed over a corpus; they add with ``+``."""

    substitutions: int  # S: reference token replaced by another
    deletions: int  # D: reference token missing from the hypothesis
    insertions: int  # I: hypothesis token with no reference token
    ref_len: int  # N: number of reference tokens

    @property
    def errors(self) -> int:
        """S + D + I."""
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        """(S + D + I) / N; 0.0 for 0/0 and inf for errors over an empty reference."""
        if self.ref_len == 0:
            return 0.0 if self.errors == 0 else float("inf")
        return self.errors / self.ref_len

    def __add__(self, other: "ErrorCounts") -> "ErrorCounts":
        return ErrorCounts(
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
            self.ref_len + other.ref_len,
        )


def _distance_table(ref: Sequence, hyp: Sequence) -> list[list[int]]:
    """d[i][j] = edit distance between ref[:i] and hyp[:j] (the recurrence above)."""
    d = [[0] * (len(hyp) + 1) for _ in range(len(ref) + 1)]  # (N+1, M+1)
    for i in range(len(ref) + 1):
        d[i][0] = i
    for j in range(len(hyp) + 1):
        d[0][j] = j
    for i in range(1, len(ref) + 1):
        row, prev, r = d[i], d[i - 1], ref[i - 1]
        for j in range(1, len(hyp) + 1):
            diagonal = prev[j - 1] + (r != hyp[j - 1])
            row[j] = min(diagonal, prev[j] + 1, row[j - 1] + 1)
    return d


def edit_alignment(
    ref_tokens: Sequence[Hashable], hyp_tokens: Sequence[Hashable]
) -> list[tuple[str, Hashable | None, Hashable | None]]:
    """One minimum-cost alignment as ``(op, ref_tok, hyp_tok)`` in reading order.

    ``op`` is "equal", "substitute", "delete" (hyp_tok is None) or "insert" (ref_tok
    is None). Example: ``edit_alignment("ab", "b")`` is
    ``[("delete", "a", None), ("equal", "b", "b")]``.
    """
    ref, hyp = list(ref_tokens), list(hyp_tokens)
    # 1) A common prefix and suffix always align as matches; strip them first.
    head = 0
    while head < min(len(ref), len(hyp)) and ref[head] == hyp[head]:
        head += 1
    tail = 0
    shorter = min(len(ref), len(hyp))
    while tail < shorter - head and ref[-1 - tail] == hyp[-1 - tail]:
        tail += 1
    mid_ref, mid_hyp = ref[head : len(ref) - tail], hyp[head : len(hyp) - tail]
    # 2) Align the middle: a full table walked back from its corner, or Hirschberg's
    # split when the table would be too large.
    middle = _align(mid_ref, mid_hyp)
    prefix = [(EQUAL, tok, tok) for tok in ref[:head]]
    suffix = [(EQUAL, tok, tok) for tok in ref[len(ref) - tail :]]
    return prefix + middle + suffix


# the largest table filled in full; longer pairs are split by Hirschberg's method
MAX_TABLE_CELLS = 200_000


def _align(ref: list, hyp: list) -> list[tuple]:
    """One minimum-cost alignment of ref and hyp, in at most ~MAX_TABLE_CELLS memory."""
    if len(ref) * len(hyp) <= MAX_TABLE_CELLS or len(ref) < 2:
        return _backtrace(ref, hyp, _distance_table(ref, hyp))
    # Hirschberg: the optimal path crosses the middle row of ref at the column k that
    # minimises (distance of the top half to hyp[:k]) + (bottom half to hyp[k:])
    ids = {tok: n for n, tok in enumerate(dict.fromkeys(ref + hyp))}
    ref_ids = np.array([ids[t] for t in ref])
    hyp_ids = np.array([ids[t] for t in hyp])
    mid = len(ref) // 2
    top = _last_row(ref_ids[:mid], hyp_ids)  # (M+1,)
    bottom = _last_row(ref_ids[mid:][::-1], hyp_ids[::-1])[::-1]  # (M+1,)
    k = int(np.argmin(top + bottom))
    return _align(ref[:mid], hyp[:k]) + _align(ref[mid:], hyp[k:])


def _last_row(ref_ids: np.ndarray, hyp_ids: np.ndarray) -> np.ndarray:
    """d[N][:] of the recurrence above, keeping one row: (M+1,) int64.

    Within a row the insertion term chains left to right; unrolled, row[j] =
    min_{k <= j} (a[k] + j - k) with a the deletion/substitution minimum, which is
    j + running-min(a - j): one vectorised pass per reference token.
    """
    columns = np.arange(len(hyp_ids) + 1)
    row = columns.copy()
    a = np.empty(len(hyp_ids) + 1, dtype=np.int64)
    for i, token in enumerate(ref_ids, 1):
        a[0] = i
        np.minimum(row[:-1] + (hyp_ids != token), row[1:] + 1, out=a[1:])
        row = columns + np.minimum.accumulate(a - columns)
    return row


def _backtrace(ref: list, hyp: list, d: list[list[int]]) -> list[tuple]:
    """Follow optimal moves back from d[N][M]. Ties prefer deletion, substitution,
    insertion, then match: with the affix stripping above this reproduces the S/D/I
    split of RapidFuzz's editops (used by jiwer); any order gives the same total."""
    i, j, ops = len(ref), len(hyp), []
    while i > 0 or j > 0:
        substituted = i > 0 and j > 0 and ref[i - 1] != hyp[j - 1]
        if i > 0 and d[i][j] == d[i - 1][j] + 1:
            ops.append((DELETE, ref[i - 1], None))
            i -= 1
        elif substituted and d[i][j] == d[i - 1][j - 1] + 1:
            ops.append((SUBSTITUTE, ref[i - 1], hyp[j - 1]))
            i, j = i - 1, j - 1
        elif j > 0 and d[i][j] == d[i][j - 1] + 1:
            ops.append((INSERT, None, hyp[j - 1]))
            j -= 1
        else:  # the only move left is a match
            ops.append((EQUAL, ref[i - 1], hyp[j - 1]))
            i, j = i - 1, j - 1
    return ops[::-1]


def _count(ref: Sequence[Hashable], hyp: Sequence[Hashable]) -> ErrorCounts:
    ops = [op for op, _, _ in edit_alignment(ref, hyp)]
    counts = (ops.count(SUBSTITUTE), ops.count(DELETE), ops.count(INSERT))
    return ErrorCounts(*counts, ref_len=len(ref))


def _check_pairs(refs: Sequence[str], hyps: Sequence[str]) -> None:
    if isinstance(refs, str) or isinstance(hyps, str):
        raise TypeError("refs and hyps must be lists of strings, not a single string")
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    for k, text in enumerate(list(refs) + list(hyps)):
        if not isinstance(text, str):
            side = "refs" if k < len(refs) else "hyps"
            raise TypeError(f"{side} must hold strings, got {type(text).__name__}")


def word_errors(refs: Sequence[str], hyps: Sequence[str]) -> ErrorCounts:
    """Word-level S, D, I and N summed over sentence pairs (split on whitespace)."""
    _check_pairs(refs, hyps)
    total = ErrorCounts(0, 0, 0, 0)
    for ref, hyp in zip(refs, hyps):
        total = total + _count(ref.split(), hyp.split())
    return total


def char_errors(refs: Sequence[str], hyps: Sequence[str]) -> ErrorCounts:
    """Character-level S, D, I and N summed over pairs (each sentence stripped)."""
    _check_pairs(refs, hyps)
    total = ErrorCounts(0, 0, 0, 0)
    for ref, hyp in zip(refs, hyps):
        total = total + _count(ref.strip(), hyp.strip())
    return total


def wer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Corpus word error rate (S + D + I) / N over lists of sentences."""
    return word_errors(refs, hyps).rate


def cer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Corpus character error rate (S + D + I) / N over lists of sentences."""
    return char_errors(refs, hyps).rate
