"""Scores of a SpeechLM's answers, per question type.

`transcribe` answers are scored by word error rate (metrics/wer.py); every other type
by exact match of the normalized answer (lowercase, single spaces, no trailing
punctuation). Validation stats are sums per type (`correct/TYPE`, `count/TYPE`,
`word_errors`, `words`; those of held-out phrasings prefixed "heldout:") plus the list
of (type, reference) pairs, from which the
majority-answer baseline of the scored set is computed: the accuracy of always
answering a type's most frequent answer, the floor a model that ignores the audio
reaches.
"""

from __future__ import annotations

from collections.abc import Sequence

from minispeech.metrics import word_errors
from minispeech.speechlm.qa import majority_baseline as qa_majority

TRANSCRIBE = "transcribe"


def normalize(answer: str) -> str:
    """Lowercase, single spaces, trailing . ? ! dropped."""
    return " ".join(answer.lower().split()).rstrip(".?!").strip()


HELDOUT = "heldout:"  # the prefix of the stats of held-out phrasings


def qa_stats(types, refs, hyps, phrasings=None) -> dict:
    """Summable counts for one batch of answers; the rows whose phrasing is
    "heldout" are counted apart (keys prefixed "heldout:")."""
    phrasings = phrasings or ["train"] * len(types)
    stats = {}
    for held in (False, True):
        keep = [k for k, p in enumerate(phrasings) if (p == "heldout") == held]
        if keep:
            part = _counts(*([x[k] for k in keep] for x in (types, refs, hyps)))
            stats.update({(HELDOUT if held else "") + k: v for k, v in part.items()})
    return stats


def _counts(types: Sequence[str], refs: Sequence[str], hyps: Sequence[str]) -> dict:
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
    """type -> accuracy of always giving that type's most frequent answer (qa.py's
    rule), from "type<TAB>answer" pairs; transcription has no majority answer."""
    rows = [dict(zip(("question_type", "answer"), p.split("\t", 1))) for p in pairs]
    return {
        qtype: accuracy
        for qtype, (_, accuracy) in qa_majority(rows).items()
        if qtype != TRANSCRIBE
    }


def qa_metrics(stats: dict) -> dict:
    """val_wer (transcribe prompts), val_accuracy (all other questions together),
    acc/TYPE per type, majority/TYPE and val_majority (the no-audio floor), on the
    trained phrasings; the same prefixed "heldout_" for the held-out phrasings."""
    metrics = _metrics({k: v for k, v in stats.items() if not k.startswith(HELDOUT)})
    held = {k[len(HELDOUT) :]: v for k, v in stats.items() if k.startswith(HELDOUT)}
    if held:
        for name, value in _metrics(held).items():
            metrics["heldout_" + name.removeprefix("val_")] = value
    return metrics


def _metrics(stats: dict) -> dict:
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
