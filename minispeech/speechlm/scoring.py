"""Scores of a SpeechLM's answers, per question type.

`transcribe` answers are scored by word error rate (metrics/wer.py); every other type
by exact match of the normalized answer (lowercase, single spaces, no trailing
punctuation). Validation stats are sums per type (`correct/TYPE`, `count/TYPE`,
`word_errors`, `words`) plus the list of (type, reference) pairs, from which the
majority-answer baseline of the scored set is computed: the accuracy of always
answering a type's most frequent answer, the floor a model that ignores the audio
reaches.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from minispeech.metrics import word_errors

TRANSCRIBE = "transcribe"


def normalize(answer: str) -> str:
    """Lowercase, single spaces, trailing . ? ! dropped."""
    return " ".join(answer.lower().split()).rstrip(".?!").strip()


def qa_stats(types: Sequence[str], refs: Sequence[str], hyps: Sequence[str]) -> dict:
    """Summable counts for one batch of answers."""
    stats: dict = {"pairs": [f"{t}\t{normalize(r)}" for t, r in zip(types, refs)]}
    spoken = [k for k, t in enumerate(types) if t == TRANSCRIBE]
    if spoken:
        counts = word_errors([refs[k] for k in spoken], [hyps[k] for k in spoken])
        stats.update(word_errors=counts.errors, words=counts.ref_len)
    for qtype, ref, hyp in zip(types, refs, hyps):
        if qtype == TRANSCRIBE:
            continue
        stats[f"count/{qtype}"] = stats.get(f"count/{qtype}", 0) + 1
        hit = int(normalize(ref) == normalize(hyp))
        stats[f"correct/{qtype}"] = stats.get(f"correct/{qtype}", 0) + hit
    return stats


def majority_baseline(pairs: Sequence[str]) -> dict[str, float]:
    """type -> accuracy of always giving that type's most frequent answer."""
    by_type: dict[str, Counter] = {}
    for pair in pairs:
        qtype, answer = pair.split("\t", 1)
        by_type.setdefault(qtype, Counter())[answer] += 1
    return {
        qtype: counts.most_common(1)[0][1] / sum(counts.values())
        for qtype, counts in by_type.items()
        if qtype != TRANSCRIBE
    }


def qa_metrics(stats: dict) -> dict:
    """val_wer (transcribe prompts), val_accuracy (all other questions together),
    acc/TYPE per type, majority/TYPE and val_majority (the no-audio floor)."""
    metrics = {}
    if stats.get("words"):
        metrics["val_wer"] = stats["word_errors"] / stats["words"]
    types = sorted(k.split("/", 1)[1] for k in stats if k.startswith("count/"))
    for qtype in types:
        metrics[f"acc/{qtype}"] = stats[f"correct/{qtype}"] / stats[f"count/{qtype}"]
    total = sum(stats[f"count/{t}"] for t in types)
    if total:
        correct = sum(stats[f"correct/{t}"] for t in types)
        metrics["val_accuracy"] = correct / total
        majority = majority_baseline(stats.get("pairs", []))
        for qtype, accuracy in sorted(majority.items()):
            metrics[f"majority/{qtype}"] = accuracy
        counts = {t: stats[f"count/{t}"] for t in types}
        metrics["val_majority"] = sum(majority[t] * counts[t] for t in types) / total
    return metrics
