"""CTC decoding: greedy (best path) and prefix beam search with n-gram shallow fusion.

Greedy: Graves et al. 2006, "Connectionist Temporal Classification" (ICML), Section
3.2, best path decoding: the most probable label at every frame, then the
many-to-one map B of Section 3.1 (merge repeats, then drop blanks).

Prefix beam search: Hannun, Maas, Jurafsky, Ng 2014, "First-Pass Large Vocabulary
Continuous Speech Recognition using Bi-Directional Recurrent DNNs" (arXiv:1408.2873),
Algorithm 1. Each prefix l keeps p_b(l) and p_nb(l), the probability of the frames
so far given that the last emitted symbol was blank / was not; a prefix is ranked by
  ln(p_b + p_nb) + alpha ln p_LM(W(l)) + beta |W(l)|,  W(l) = the words of l,
and the LM term is added when a word is completed, i.e. when the word separator is
emitted (Hannun applies p(c | W(l))^alpha when c is a space).

Differences from the paper:
- Log space throughout; the LM factor is kept beside the acoustic score of a prefix
  rather than multiplied into p_nb (equivalent: every path to a prefix sees the same
  words).
- Per frame only the `beam_width` most probable labels above `token_min_logp` extend
  a prefix (a common pruning, not in Algorithm 1); with beam_width >= |V| and
  token_min_logp = -inf the search is exhaustive within the beam.
- A prefix that fell out of the beam is forgotten; Algorithm 1's "if l+ not in
  A_prev" lines then add nothing.
- At the end the unfinished last word and </s> are scored by the LM, and
  SentencePiece pieces that start with "\u2581" also complete the previous word.
- Optional lexicon constraint (`lexicon.py`): a prefix survives only while its
  unfinished word is the beginning of a lexicon word and every completed word is in
  the lexicon, so the search spells only known words. With a closed vocabulary this
  turns most misspellings into a known word.
"""

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import torch

from minispeech.asr.lexicon import WordState, drop_unfinished_word


@dataclass(frozen=True)
class BeamHypothesis:
    tokens: tuple[int, ...]  # the label sequence, blanks and repeats removed
    score: float  # acoustic + alpha * lm + beta * n_words: what the beam ranks by
    acoustic: float  # ln p(tokens | x), summed over all alignments (p_b + p_nb)
    lm: float  # ln p_LM of the words (and </s> once finished); 0 without an LM
    n_words: int  # |W(l)|: words scored by the LM so far


def ctc_greedy_decode(
    log_probs: torch.Tensor, lens: torch.Tensor | None = None, blank: int = 0
) -> list[list[int]]:
    """Best path decoding of a batch: argmax, merge repeats, drop blanks.

    log_probs (B,T,V), lens (B,) valid frames (all T when None) -> token ids per item.
    """
    if log_probs.ndim != 3:
        raise ValueError(f"log_probs must be (B,T,V), got {tuple(log_probs.shape)}")
    n_batch, n_frames, _ = log_probs.shape
    best = log_probs.argmax(-1)  # (B,T)
    changed = torch.ones_like(best, dtype=torch.bool)
    changed[:, 1:] = best[:, 1:] != best[:, :-1]  # first frame of each run
    keep = changed & (best != blank)  # (B,T)
    if lens is not None:
        frames = torch.arange(n_frames, device=best.device)
        keep &= frames < lens.to(best.device)[:, None]  # (B,T)
    best, keep = best.cpu(), keep.cpu()
    return [best[b][keep[b]].tolist() for b in range(n_batch)]


def ctc_greedy_decode_single(log_probs: torch.Tensor, blank: int = 0) -> list[int]:
    """Best path decoding of one utterance, log_probs (T,V), one frame at a time."""
    if log_probs.ndim != 2:
        raise ValueError(f"log_probs must be (T,V), got {tuple(log_probs.shape)}")
    tokens, previous = [], blank
    for label in log_probs.argmax(-1).tolist():
        if label != blank and label != previous:  # a new label, not a repeat
            tokens.append(label)
        previous = label
    return tokens


def ctc_prefix_beam_search(
    log_probs: torch.Tensor,
    lens: torch.Tensor | None = None,
    blank: int = 0,
    beam_width: int = 8,
    lm=None,
    alpha: float = 0.5,
    beta: float = 1.0,
    token_to_text: Sequence[str] | None = None,
    token_min_logp: float = -10.0,
    lexicon: Iterable[str] | None = None,
) -> list[list[int]]:
    """Best label sequence of each item; log_probs (B,T,V) or (T,V) (a batch of one).

    lm: an object with score(word, context) -> ln p (e.g. NGramLM), weighted by alpha,
    with a bonus beta per word (beta applies with an LM or a lexicon). lexicon: the
    only words the search may spell (with or without an LM). Both need
    token_to_text, the text of every token id: " " separates words and a piece that
    starts with "\u2581" starts one. Items are decoded one at a time.
    """
    if log_probs.ndim == 2:
        log_probs = log_probs[None]  # (1,T,V)
    if log_probs.ndim != 3:
        shape = tuple(log_probs.shape)
        raise ValueError(f"log_probs must be (B,T,V) or (T,V), got {shape}")
    n_batch, n_frames, _ = log_probs.shape
    lens = [n_frames] * n_batch if lens is None else lens.tolist()
    options = dict(
        blank=blank,
        beam_width=beam_width,
        lm=lm,
        alpha=alpha,
        beta=beta,
        token_to_text=token_to_text,
        token_min_logp=token_min_logp,
        lexicon=lexicon,
    )
    best = []
    for b in range(n_batch):
        hyps = ctc_prefix_beam_search_single(log_probs[b, : lens[b]], **options)
        tokens = hyps[0].tokens
        if hyps[0].score == -math.inf and lexicon is not None:
            tokens = drop_unfinished_word(tokens, token_to_text)
        best.append(list(tokens))
    return best


def ctc_prefix_beam_search_single(
    log_probs: torch.Tensor,
    blank: int = 0,
    beam_width: int = 8,
    lm=None,
    alpha: float = 0.5,
    beta: float = 1.0,
    token_to_text: Sequence[str] | None = None,
    token_min_logp: float = -10.0,
    lexicon: Iterable[str] | None = None,
) -> list[BeamHypothesis]:
    """Hannun et al. Algorithm 1 on one utterance, log_probs (T,V) -> the final beam,
    best first."""
    if log_probs.ndim != 2:
        raise ValueError(f"log_probs must be (T,V), got {tuple(log_probs.shape)}")
    if beam_width < 1:
        raise ValueError(f"beam_width must be >= 1, got {beam_width}")
    if (lm is not None or lexicon is not None) and token_to_text is None:
        raise ValueError("an LM or a lexicon needs token_to_text")
    words = _WordScorer(lm, token_to_text, alpha, beta, lexicon)
    frames = log_probs.detach().double().cpu()
    top_k = min(beam_width + 1, frames.shape[1])  # +1: the blank may be among them
    top_logp, top_ids = frames.topk(top_k, dim=-1)  # (T,k)
    beam = {(): (0.0, -math.inf)}  # prefix -> (ln p_b, ln p_nb); empty prefix at t=0
    for t, frame in enumerate(frames.tolist()):
        candidates = zip(top_ids[t].tolist(), top_logp[t].tolist())
        labels = [k for k, lp in candidates if k != blank and lp >= token_min_logp]
        beam = _extend(beam, frame, labels, blank)
        scores = {p: words.score(p, _logsumexp(*probs)) for p, probs in beam.items()}
        alive = [p for p in beam if scores[p] > -math.inf]  # else needs more frames
        ranked = sorted(alive, key=scores.get, reverse=True)
        beam = {prefix: beam[prefix] for prefix in ranked[:beam_width]}
    hyps = [words.finish(prefix, _logsumexp(*probs)) for prefix, probs in beam.items()]
    return sorted(hyps, key=lambda h: h.score, reverse=True)


def _extend(beam: dict, frame: list[float], labels: list[int], blank: int) -> dict:
    """One frame of Algorithm 1: every prefix absorbs a blank, repeats its last label,
    or is extended by a label."""
    new = {}

    def add(prefix, blank_logp=-math.inf, label_logp=-math.inf):
        p_b, p_nb = new.get(prefix, (-math.inf, -math.inf))
        new[prefix] = (_logsumexp(p_b, blank_logp), _logsumexp(p_nb, label_logp))

    for prefix, (p_b, p_nb) in beam.items():
        total = _logsumexp(p_b, p_nb)
        add(prefix, blank_logp=total + frame[blank])  # 1) blank: l stays
        last = prefix[-1] if prefix else None
        if last is not None:  # 2) the last label again, no blank between: l stays
            add(prefix, label_logp=p_nb + frame[last])
        for label in labels:  # 3) l + c; a repeat needs a blank in between
            source = p_b if label == last else total
            add(prefix + (label,), label_logp=source + frame[label])
    return new


def _logsumexp(*terms: float) -> float:
    top = max(terms)
    if top == -math.inf:
        return -math.inf
    return top + math.log(sum(math.exp(x - top) for x in terms))


class _WordScorer:
    """LM score of each prefix's completed words, on the words of a `WordState`
    (which also applies the lexicon, if any)."""

    def __init__(self, lm, token_to_text, alpha: float, beta: float, lexicon=None):
        self.lm, self.alpha, self.beta = lm, alpha, beta
        self.tracks_words = lm is not None or lexicon is not None
        self.words = WordState(token_to_text, lexicon) if self.tracks_words else None
        self.lm_logps = {(): 0.0}  # prefix -> ln p_LM of its completed words

    def score(self, prefix: tuple, acoustic: float) -> float:
        """The beam's ranking score in log space, with the words completed so far;
        -inf for a prefix the lexicon rules out."""
        if not self.tracks_words:
            return acoustic
        words, _, allowed = self.words(prefix)
        if not allowed:
            return -math.inf
        return acoustic + self.alpha * self._lm_logp(prefix) + self.beta * len(words)

    def finish(self, prefix: tuple, acoustic: float) -> BeamHypothesis:
        """Score the unfinished last word and the end of the sentence."""
        if not self.tracks_words:
            return BeamHypothesis(prefix, acoustic, acoustic, 0.0, 0)
        words, allowed = self.words.finished(prefix)
        lm_logp = self._lm_logp(prefix)
        if self.lm is not None:
            for i in range(len(self.words(prefix)[0]), len(words)):  # the last word
                lm_logp += self.lm.score(words[i], ("<s>",) + words[:i])
            lm_logp += self.lm.score("</s>", ("<s>",) + words)
        total = acoustic + self.alpha * lm_logp + self.beta * len(words)
        if not allowed:
            total = -math.inf
        return BeamHypothesis(prefix, total, acoustic, lm_logp, len(words))

    def _lm_logp(self, prefix: tuple) -> float:
        """ln p_LM of the completed words, one new word at a time from the parent."""
        if self.lm is None:
            return 0.0
        if prefix not in self.lm_logps:
            lm_logp = self._lm_logp(prefix[:-1])
            before, after = self.words(prefix[:-1])[0], self.words(prefix)[0]
            if len(after) > len(before):  # this token completed a word
                lm_logp += self.lm.score(after[-1], ("<s>",) + before)
            self.lm_logps[prefix] = lm_logp
        return self.lm_logps[prefix]
