"""Word n-gram language model with interpolated modified Kneser-Ney smoothing.

Chen & Goodman 1998, "An Empirical Study of Smoothing Techniques for Language
Modeling" (Harvard TR-10-98), their "modified Kneser-Ney": interpolated Kneser-Ney
  p(w|h) = max(a(hw) - D(a(hw)), 0) / sum_w a(hw) + gamma(h) p(w|h'),
  gamma(h) = (D1 N1(h.) + D2 N2(h.) + D3+ N3+(h.)) / sum_w a(hw),
with three discounts estimated from the counts of counts n_k:
  Y = n1 / (n1 + 2 n2), D1 = 1 - 2Y n2/n1, D2 = 2 - 3Y n3/n2, D3+ = 3 - 4Y n4/n3.
Lower orders use continuation counts N1+(. w) instead of raw counts (Kneser & Ney
1995), except for n-grams that start with <s>, which cannot be extended to the left.

Differences from the paper:
- The model is stored in backoff (ARPA) form: each seen n-gram keeps its full
  interpolated probability and each context its interpolation weight gamma(h) as the
  backoff weight, which gives exactly the interpolated distribution.
- The unigram level interpolates with a uniform distribution over the vocabulary,
  which includes </s> and <unk> (so unseen words get gamma / |V|), as KenLM does.
- On tiny corpora a discount estimate can fall outside (0, k] (a count of counts is
  0); it then falls back to k / 2 (see `kneser_ney_discounts`).
- score() returns natural-log probabilities; the ARPA file holds log10, as usual.
"""

import math
import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterable, Sequence

from minispeech.core.checkpoint import atomic_write
from minispeech.errors import ConfigError

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
_LOG10 = math.log(10.0)
_ARPA_LOG_ZERO = -99.0  # ARPA's "log10 0", written for <s>, which is never predicted


class NGramLM:
    """Backoff word n-gram LM: ln p(word | context) from n-gram and backoff tables."""

    def __init__(self, order: int, logprobs: dict, backoffs: dict):
        """logprobs: n-gram -> ln p(last word | the others); backoffs: context ->
        ln gamma(context), the weight of the lower order."""
        if order < 1:
            raise ValueError(f"order must be >= 1, got {order}")
        self.order = order
        self.logprobs = logprobs
        self.backoffs = backoffs
        self.vocab = {gram[0] for gram in logprobs if len(gram) == 1}
        if UNK not in self.vocab or EOS not in self.vocab:
            raise ValueError(f"the unigram table must hold {UNK} and {EOS}")

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        order: int = 3,
        discounts: Sequence[float] | None = None,
    ) -> "NGramLM":
        """Train on whitespace-tokenised sentences. discounts=(D1, D2, D3+) fixes the
        discounts of every order instead of estimating them from counts of counts."""
        if order < 1:
            raise ValueError(f"order must be >= 1, got {order}")
        counts = count_ngrams(texts, order)
        vocab = {gram[0] for gram in counts[1] if gram[0] != BOS} | {EOS, UNK}
        logprobs, backoffs = {}, {}
        for n in range(1, order + 1):  # each order interpolates with the one below
            adjusted = adjusted_counts(counts, n, order)
            d = discounts or kneser_ney_discounts(Counter(adjusted.values()))
            if n == 1:
                _unigram_level(adjusted, vocab, d, logprobs)
            else:  # the tables so far are the (n-1)-gram model; it reads only those
                lower = cls(n - 1, logprobs, backoffs)
                _higher_level(adjusted, d, lower, logprobs, backoffs)
        return cls(order, logprobs, backoffs)

    @classmethod
    def from_manifest(cls, path: str | os.PathLike, order: int = 3) -> "NGramLM":
        """Train on the `text` field of every row of a JSONL manifest."""
        from minispeech.data.manifest import read_manifest

        rows = read_manifest(path, required=("text",), check_audio=False)
        return cls.train([row["text"] for row in rows], order=order)

    def words(self) -> frozenset:
        """The vocabulary's real words: without <s>, </s> and <unk>."""
        return frozenset(self.vocab - {BOS, EOS, UNK})

    def score(self, word: str, context: Sequence[str] = ()) -> float:
        """ln p(word | context); context is the preceding words, "<s>" first if the
        sentence starts there. Unknown words are scored as <unk>."""
        word = word if word in self.vocab else UNK
        context = tuple(w if w in self.vocab or w == BOS else UNK for w in context)
        context = context[max(len(context) - self.order + 1, 0) :]  # last N-1 words
        context = context if self.order > 1 else ()
        backoff = 0.0
        for start in range(len(context) + 1):  # longest history first (ARPA backoff)
            history = context[start:]
            logprob = self.logprobs.get(history + (word,))
            if logprob is not None:
                return backoff + logprob
            backoff += self.backoffs.get(history, 0.0)
        raise AssertionError("unreachable: every vocabulary word has a unigram")

    def sentence_score(self, text: str) -> float:
        """ln p(<s> words </s>) of a whitespace-tokenised sentence."""
        words = [BOS] + text.split() + [EOS]
        return sum(self.score(w, words[:i]) for i, w in enumerate(words) if i > 0)

    def save(self, path: str | os.PathLike) -> Path:
        """Write an ARPA file (log10 probabilities and backoff weights)."""
        by_order = defaultdict(list)
        for gram in set(self.logprobs) | set(self.backoffs):  # + <s>: a context only
            by_order[len(gram)].append(gram)
        lines = ["\\data\\"]
        lines += [f"ngram {n}={len(by_order[n])}" for n in range(1, self.order + 1)]
        for n in range(1, self.order + 1):
            lines += ["", f"\\{n}-grams:"]
            for gram in sorted(by_order[n]):
                logprob = self.logprobs.get(gram)
                log10p = _ARPA_LOG_ZERO if logprob is None else logprob / _LOG10
                fields = [f"{log10p:.10g}", " ".join(gram)]
                if gram in self.backoffs:
                    fields.append(f"{self.backoffs[gram] / _LOG10:.10g}")
                lines.append("\t".join(fields))
        lines += ["", "\\end\\", ""]
        data = "\n".join(lines).encode("utf-8")
        # written beside the path and renamed over it: a crash never leaves half an LM
        return atomic_write(path, lambda file: file.write(data))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "NGramLM":
        """Read an ARPA file written by `save` (or by SRILM/KenLM)."""
        logprobs, backoffs, order = {}, {}, 0
        section = None
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        for line_no, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("ngram ") or line in ("\\data\\", "\\end\\"):
                continue
            if line.startswith("\\") and line.endswith("-grams:"):
                section = int(line[1:].split("-")[0])
                order = max(order, section)
                continue
            fields = line.split()
            if section is None or len(fields) not in (section + 1, section + 2):
                where = f"{path}:{line_no}"
                raise ValueError(f"{where}: not an ARPA {section}-gram line: {line!r}")
            gram = tuple(fields[1 : section + 1])
            if float(fields[0]) > _ARPA_LOG_ZERO:
                logprobs[gram] = float(fields[0]) * _LOG10
            if len(fields) == section + 2:
                backoffs[gram] = float(fields[-1]) * _LOG10
        return cls(order, logprobs, backoffs)


def count_ngrams(texts: Iterable[str], order: int) -> list[Counter]:
    """Raw counts c(w_1..w_n) for n = 1..order of "<s> w1 .. wk </s>" (index = n)."""
    counts = [Counter() for _ in range(order + 1)]
    for text in texts:
        words = [BOS] + text.split() + [EOS]
        for n in range(1, order + 1):
            for i in range(len(words) - n + 1):
                counts[n][tuple(words[i : i + n])] += 1
    return counts


def adjusted_counts(counts: list[Counter], n: int, order: int) -> Counter:
    """Kneser-Ney counts of order n: raw counts at the highest order and for n-grams
    starting with <s>; otherwise the continuation count N1+(. w_1..w_n), the number of
    distinct words seen before the n-gram."""
    if n == order:
        return Counter(counts[n])
    adjusted = Counter({gram: c for gram, c in counts[n].items() if gram[0] == BOS})
    for gram in counts[n + 1]:  # distinct (n+1)-grams v w_1..w_n: one per left word v
        adjusted[gram[1:]] += 1
    return adjusted


def kneser_ney_discounts(count_of_counts: Counter) -> tuple[float, float, float]:
    """(D1, D2, D3+) from n_k = number of n-grams with count k (Chen & Goodman).
    An estimate outside [0, k] (too few n-grams to count) is replaced by k / 2."""
    n1, n2, n3, n4 = (count_of_counts.get(k, 0) for k in (1, 2, 3, 4))
    y = n1 / (n1 + 2 * n2) if n1 + 2 * n2 > 0 else 0.5
    estimates = (
        1 - 2 * y * n2 / n1 if n1 > 0 else -1.0,
        2 - 3 * y * n3 / n2 if n2 > 0 else -1.0,
        3 - 4 * y * n4 / n3 if n3 > 0 else -1.0,
    )
    return tuple(d if 0 < d <= k else k / 2 for k, d in zip((1, 2, 3), estimates))


def _discount(count: int, discounts: Sequence[float]) -> float:
    return discounts[min(count, 3) - 1]


def _gamma_numerator(counts: Iterable[int], discounts: Sequence[float]) -> float:
    """D1 N1(h.) + D2 N2(h.) + D3+ N3+(h.): the mass the discounts free."""
    return sum(_discount(c, discounts) for c in counts)


def _unigram_level(adjusted, vocab, discounts, logprobs) -> None:
    """p(w) = max(a(w) - D, 0) / sum a + gamma / |V| (uniform base distribution)."""
    seen = {gram[0]: c for gram, c in adjusted.items() if gram[0] != BOS and c > 0}
    total = sum(seen.values())
    gamma = _gamma_numerator(seen.values(), discounts) / total if total else 1.0
    for word in vocab:
        count = seen.get(word, 0)
        kept = max(count - _discount(count, discounts), 0.0) / total if count else 0.0
        logprobs[(word,)] = math.log(kept + gamma / len(vocab))


def _higher_level(adjusted, discounts, lower, logprobs, backoffs) -> None:
    """p(w|h) = max(a(hw) - D, 0) / sum_w a(hw) + gamma(h) p(w|h')."""
    by_history = defaultdict(dict)
    for gram, count in adjusted.items():
        by_history[gram[:-1]][gram[-1]] = count
    for history, followers in by_history.items():
        total = sum(followers.values())
        gamma = _gamma_numerator(followers.values(), discounts) / total
        backoffs[history] = math.log(gamma)
        for word, count in followers.items():
            kept = (count - _discount(count, discounts)) / total
            lower_p = math.exp(lower.score(word, history[1:]))
            logprobs[history + (word,)] = math.log(kept + gamma * lower_p)


def read_lm(decoding: dict, cache: dict) -> NGramLM | None:
    """The `decoding.lm_path` n-gram LM (None when absent), read once into `cache`
    (the model's own dict): the ARPA file is not part of the model."""
    path = decoding.get("lm_path")
    if not path:
        return None
    if path not in cache:
        try:
            cache[path] = NGramLM.load(path)
        except (OSError, ValueError) as error:
            raise ConfigError(f"model.decoding.lm_path: {error}") from None
    return cache[path]
