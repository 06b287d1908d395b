"""Transducer decoding: greedy (one utterance, and batched) and beam search.

Greedy: at each frame t, take the most likely symbol; a label is emitted and fed back to
the prediction network (the frame stays), blank moves to frame t+1; at most
`max_symbols` labels per frame (NeMo's greedy / greedy_batch, default 10 there).

Beam search: Graves 2012, "Sequence Transduction with Recurrent Neural Networks"
(arXiv:1211.3711), Sec. 2.5, Algorithm 1: hypotheses B that have consumed frames < t
are extended within frame t (set A) until the best of A cannot enter the beam, each
extension's blank closes it into B, prefixes' probabilities are summed, and B keeps the
W best. Differs from Algorithm 1: A is expanded in levels by the number of labels
emitted in the frame (at most max_symbols), and equal label sequences are merged by
log-add only when they close with a blank, so every alignment is counted exactly once
(Algorithm 1's prefix step can count a path twice). With a beam wider than the number
of hypotheses it is exact: the score of y is ln Pr(y|x) over alignments with at most
max_symbols labels per frame. Each hypothesis tries only its W best labels, which
cannot change the result (any other extension has W better siblings).

Lexicon constraint (optional, `lexicon.py`): an extension whose words leave the lexicon
is never made, and the final ranking puts hypotheses that end on a whole word first;
each hypothesis then tries its W best labels among those the lexicon allows.
"""

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from minispeech.asr.lexicon import WordState
from minispeech.asr.transducer_nets import JointNetwork, PredictionNetwork


@dataclass(frozen=True)
class Hypothesis:
    tokens: tuple[int, ...]  # label ids, blank excluded
    score: float  # ln Pr(tokens | x), summed over the alignments the search kept


@torch.no_grad()
def rnnt_greedy_decode_single(
    prediction: PredictionNetwork,
    joint: JointNetwork,
    enc: Tensor,
    max_symbols: int = 10,
) -> list[int]:
    """Greedy labels of one utterance; enc (T,D_enc), already cut to its length."""
    assert enc.ndim == 2, f"enc must be (T,D_enc), got {tuple(enc.shape)}"
    _check_max_symbols(max_symbols)
    blank, step = prediction.blank, prediction.step_function()
    g, state = step(enc.new_full((1,), blank, dtype=torch.long))  # (1,Dh)
    hyp = []
    for t in range(enc.shape[0]):
        for _ in range(max_symbols):
            k = int(joint.step(enc[t : t + 1], g)[0, : blank + 1].argmax())
            if k == blank:
                break
            hyp.append(k)
            g, state = step(enc.new_full((1,), k, dtype=torch.long), state)
    return hyp


@torch.no_grad()
def rnnt_greedy_decode(
    prediction: PredictionNetwork,
    joint: JointNetwork,
    enc: Tensor,
    enc_lens: Tensor,
    max_symbols: int = 10,
) -> list[list[int]]:
    """Batched greedy decoding, the same result as rnnt_greedy_decode_single per item.

    enc (B,T,D_enc) (transpose an encoder's (B,D,T') output first), enc_lens (B,).
    """
    assert enc.ndim == 3, f"enc must be (B,T,D_enc), got {tuple(enc.shape)}"
    _check_max_symbols(max_symbols)
    B, T, _ = enc.shape
    blank, step = prediction.blank, prediction.step_function()
    f = joint.project_encoder(enc)  # (B,T,Dh)
    labels = torch.full((B,), blank, dtype=torch.long, device=enc.device)
    g, state = step(labels)  # (B,D_pred)
    g = joint.project_prediction(g)  # (B,Dh)
    hyps = [[] for _ in range(B)]
    for t in range(T):
        active = t < enc_lens  # (B,) utterances still emitting in frame t
        for _ in range(max_symbols):
            k = joint.joint_projected(f[:, t], g)[:, : blank + 1].argmax(-1)  # (B,)
            active = active & (k != blank)
            if not active.any():
                break
            rows = active.nonzero()[:, 0]  # (n,) the utterances that emitted
            labels = k[rows]  # (n,)
            for b, label in zip(rows.tolist(), labels.tolist()):
                hyps[b].append(label)
            # step those rows only: past a frame's first symbol few utterances still
            # emit, and a step costs the same per row whether its output is kept or not
            g_new, state_new = step(labels, tuple(s[:, rows] for s in state))
            g = g.index_copy(0, rows, joint.project_prediction(g_new))  # (B,Dh)
            state = tuple(s.index_copy(1, rows, n) for s, n in zip(state, state_new))
    return hyps


def _check_max_symbols(max_symbols: int) -> None:
    if not isinstance(max_symbols, int) or max_symbols < 1:
        raise ValueError(f"max_symbols must be an int >= 1, got {max_symbols!r}")


@torch.no_grad()
def rnnt_beam_search_reference(
    prediction: PredictionNetwork,
    joint: JointNetwork,
    enc: Tensor,
    beam_size: int = 4,
    max_symbols: int = 10,
    score_norm: bool = True,
    words: WordState | None = None,
) -> list[Hypothesis]:
    """Beam search over one utterance, enc (T,D_enc); hypotheses best first.

    Scores one hypothesis at a time (slow); `rnnt_beam_search` batches the same search.
    score_norm ranks the final beam by score / len(tokens) (Graves' last line; NeMo's
    default); the scores themselves stay unnormalized. words: a WordState with a
    lexicon, to spell only its words.
    """
    assert enc.ndim == 2, f"enc must be (T,D_enc), got {tuple(enc.shape)}"
    blank, f = prediction.blank, joint.project_encoder(enc)  # (T,Dh)
    cache = {}  # tokens -> (projected prediction output (1,Dh), LSTM state)

    def log_probs(hyps: list[tuple], t: int) -> Tensor:
        rows = []
        for tokens in hyps:
            if tokens not in cache:
                state = cache[tokens[:-1]][1] if tokens else None
                label = enc.new_full((1,), tokens[-1] if tokens else blank).long()
                g, state = prediction.step(label, state)  # (1,D_pred)
                cache[tokens] = (joint.project_prediction(g), state)
            logits = joint.joint_projected(f[t : t + 1], cache[tokens][0])  # (1,V)
            rows.append(logits[0, : blank + 1].log_softmax(-1))
        return torch.stack(rows)  # (n,V)

    return _search(
        log_probs, f.shape[0], blank, beam_size, max_symbols, score_norm, words
    )


@torch.no_grad()
def rnnt_beam_search(
    prediction: PredictionNetwork,
    joint: JointNetwork,
    enc: Tensor,
    beam_size: int = 4,
    max_symbols: int = 10,
    score_norm: bool = True,
    words: WordState | None = None,
) -> list[Hypothesis]:
    """The search of rnnt_beam_search_reference with one prediction-network step and
    one joint call per expansion level for all hypotheses at once."""
    assert enc.ndim == 2, f"enc must be (T,D_enc), got {tuple(enc.shape)}"
    blank, f = prediction.blank, joint.project_encoder(enc)  # (T,Dh)
    cache = {}  # tokens -> (projected prediction output (Dh,), (h, c) each (Nl,Dh))

    def log_probs(hyps: list[tuple], t: int) -> Tensor:
        new = [tokens for tokens in hyps if tokens not in cache]
        if new:
            _extend_cache(prediction, joint, cache, new, blank, enc.device)
        g = torch.stack([cache[tokens][0] for tokens in hyps])  # (n,Dh)
        logits = joint.joint_projected(f[t].expand_as(g), g)  # (n,V)
        return logits[:, : blank + 1].log_softmax(-1)

    return _search(
        log_probs, f.shape[0], blank, beam_size, max_symbols, score_norm, words
    )


def _extend_cache(prediction, joint, cache, new, blank, device) -> None:
    """Run the prediction network once for hypotheses whose parent is cached."""
    labels = torch.tensor([tok[-1] if tok else blank for tok in new], device=device)
    state = None
    if new[0]:  # a level's new hypotheses are all non-empty or all the empty root
        h = torch.stack([cache[tok[:-1]][1][0] for tok in new], dim=1)  # (Nl,n,Dh)
        c = torch.stack([cache[tok[:-1]][1][1] for tok in new], dim=1)  # (Nl,n,Dh)
        state = (h, c)
    g, (h, c) = prediction.step(labels, state)  # (n,D_pred)
    g = joint.project_prediction(g)  # (n,Dh)
    for i, tokens in enumerate(new):
        cache[tokens] = (g[i], (h[:, i], c[:, i]))


def _search(log_probs, n_frames, blank, beam_size, max_symbols, score_norm, words):
    """The search itself; log_probs(hyps, t) -> (len(hyps), V) for each hypothesis."""
    _check_max_symbols(max_symbols)
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    beam = {(): 0.0}  # B: label sequence -> ln Pr(sequence, frames < t consumed)
    for t in range(n_frames):
        # closed: the new B; level: A, the hypotheses with n labels in frame t
        closed, level = {}, dict(beam)
        for n_emitted in range(max_symbols + 1):
            level = _best(level, beam_size)
            lps = log_probs(list(level), t)  # (n,V)
            extended = {}
            for (tokens, score), lp in zip(level.items(), lps):
                closed[tokens] = _logaddexp(
                    closed.get(tokens), score + float(lp[blank])
                )
                if n_emitted < max_symbols:
                    for k in _best_labels(lp, blank, beam_size, tokens, words):
                        extended[tokens + (k,)] = score + float(lp[k])
            level = extended
            if not level or _beam_is_safe(closed, level, beam_size):
                break
        beam = _best(closed, beam_size)
    return _ranked(beam, score_norm, words)


def _best(hyps: dict, n: int) -> dict:
    """The n highest-scoring entries (ties by insertion order)."""
    return dict(sorted(hyps.items(), key=lambda kv: -kv[1])[:n])


def _best_labels(log_probs: Tensor, blank: int, n: int, tokens=(), words=None):
    """The n most probable labels (blank excluded) that the lexicon, if any, allows
    after `tokens`."""
    lp = log_probs.clone()
    lp[blank] = -torch.inf
    if words is not None:  # (V,) mask of the labels that keep the words allowed
        allowed = words.next_allowed(tokens)
        lp[: allowed.numel()][~allowed] = -torch.inf
    n = min(n, int(torch.isfinite(lp).sum()))
    return lp.topk(n).indices.tolist()


def _beam_is_safe(closed: dict, level: dict, beam_size: int) -> bool:
    """Graves' stopping rule: W closed hypotheses beat the best open one."""
    if len(closed) < beam_size:
        return False
    return sorted(closed.values())[-beam_size] >= max(level.values())


def _logaddexp(a: Optional[float], b: float) -> float:
    if a is None:
        return b
    return max(a, b) + math.log1p(math.exp(-abs(a - b)))


def _ranked(beam: dict, score_norm: bool, words=None) -> list[Hypothesis]:
    """Best first; with a lexicon, hypotheses that end on a whole word first."""

    def key(kv):
        score = kv[1] / max(len(kv[0]), 1) if score_norm else kv[1]
        return (words is None or words.finished(kv[0])[1], score)

    return [Hypothesis(k, s) for k, s in sorted(beam.items(), key=key, reverse=True)]
