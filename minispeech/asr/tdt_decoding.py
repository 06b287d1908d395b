"""Decoding for the Token-and-Duration Transducer (Xu et al. 2023, arXiv:2304.06795,
Sec. 4).

Greedy: at frame t take the best token and, separately, the best duration d; a label is
emitted and fed to the prediction network, then the search jumps to frame t + d (d = 0
stays on the frame); a blank jumps max(d, 1) frames, so frames predicted to hold nothing
are never visited. As in NeMo's greedy TDT decoder, at most max_symbols labels are taken
on one frame before moving one frame on.

Beam search: the same moves, each scored ln P(token) + ln P(d) (the joint's two
softmaxes). A hypothesis that emits a label with d = 0 stays on frame t (a "stay");
every other move sends it to frame t + max(d, 1) (a "move"; past the last frame it is
finished). Moves of one hypothesis that land on the same frame with the same labels (a
blank with d = 0 or 1; the max_symbols-th label with d = 0 or 1) count once, with the
better duration, so that beam 1 is the greedy search. Within frame t the hypotheses
that arrived there are expanded level by level (labels emitted on the frame so far);
each level keeps the W best of its stays and of the frame's moves so far, and the
frame ends when no stay is among them (Graves 2012's rule for RNN-T, arXiv:1211.3711
Sec. 2.5). Equal label sequences that reach the same frame along different alignments
are merged by log-add, so with a beam wider than the number of hypotheses the score of
y is ln Pr(y|x) summed over all its alignments.
"""

import torch
from torch import Tensor

from minispeech.asr.lexicon import WordState
from minispeech.asr.rnnt_decoding import (
    Hypothesis,
    _best,
    _best_labels,
    _check_max_symbols,
    _extend_cache,
    _logaddexp,
    _ranked,
)
from minispeech.asr.transducer_nets import JointNetwork, PredictionNetwork


@torch.no_grad()
def tdt_greedy_decode_single(
    prediction: PredictionNetwork,
    joint: JointNetwork,
    enc: Tensor,
    durations: list[int],
    max_symbols: int = 10,
) -> list[int]:
    """Greedy labels of one utterance; enc (T,D_enc), already cut to its length.

    The joint's output is the V token logits (blank = prediction.blank, last) followed
    by len(durations) duration logits.
    """
    assert enc.ndim == 2, f"enc must be (T,D_enc), got {tuple(enc.shape)}"
    if joint.num_extra_outputs != len(durations):
        raise ValueError(
            f"joint has {joint.num_extra_outputs} extra outputs for "
            f"{len(durations)} durations {durations}"
        )
    blank, n_tokens = prediction.blank, prediction.blank + 1
    step = prediction.step_function()
    g, state = step(enc.new_full((1,), blank).long())  # (1,D_pred)
    hyp, t, on_this_frame = [], 0, 0
    while t < enc.shape[0]:
        logits = joint.step(enc[t : t + 1], g)[0]  # (V+D,)
        k = int(logits[:n_tokens].argmax())
        d = durations[int(logits[n_tokens:].argmax())]
        if k == blank:
            t, on_this_frame = t + max(d, 1), 0
            continue
        hyp.append(k)
        g, state = step(enc.new_full((1,), k).long(), state)
        on_this_frame += 1
        if d > 0 or on_this_frame >= max_symbols:
            t, on_this_frame = t + max(d, 1), 0
    return hyp


def tdt_greedy_decode(
    prediction: PredictionNetwork,
    joint: JointNetwork,
    enc: Tensor,
    enc_lens: Tensor,
    durations: list[int],
    max_symbols: int = 10,
) -> list[list[int]]:
    """tdt_greedy_decode_single for each utterance of enc (B,T,D_enc), enc_lens (B,).

    Utterances jump by different durations, so they are decoded one by one (NeMo also
    recommends its non-batched greedy for TDT).
    """
    assert enc.ndim == 3, f"enc must be (B,T,D_enc), got {tuple(enc.shape)}"
    return [
        tdt_greedy_decode_single(prediction, joint, e[:n], durations, max_symbols)
        for e, n in zip(enc, enc_lens.tolist())
    ]


@torch.no_grad()
def tdt_beam_search(
    prediction: PredictionNetwork,
    joint: JointNetwork,
    enc: Tensor,
    durations: list[int],
    beam_size: int = 4,
    max_symbols: int = 10,
    score_norm: bool = True,
    words: WordState | None = None,
) -> list[Hypothesis]:
    """Beam search over one utterance, enc (T,D_enc) cut to its length; hypotheses
    best first (score_norm: ranked by score / len(tokens), NeMo's default). words: a
    WordState with a lexicon, to spell only its words (whole words ranked first)."""
    assert enc.ndim == 2, f"enc must be (T,D_enc), got {tuple(enc.shape)}"
    _check_max_symbols(max_symbols)
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    if joint.num_extra_outputs != len(durations):
        raise ValueError(
            f"joint has {joint.num_extra_outputs} extra outputs for "
            f"{len(durations)} durations {durations}"
        )
    blank, n_frames = prediction.blank, enc.shape[0]
    f = joint.project_encoder(enc)  # (T,Dh)
    cache = {}  # tokens -> (projected prediction output (Dh,), LSTM state)

    def log_probs(hyps: list[tuple], t: int) -> tuple[Tensor, Tensor]:
        """-> token log-probs (n, V) and duration log-probs (n, len(durations))."""
        new = [tokens for tokens in hyps if tokens not in cache]
        if new:
            _extend_cache(prediction, joint, cache, new, blank, enc.device)
        g = torch.stack([cache[tokens][0] for tokens in hyps])  # (n,Dh)
        logits = joint.joint_projected(f[t].expand_as(g), g)  # (n, V + n_durations)
        return (
            logits[:, : blank + 1].log_softmax(-1),
            logits[:, blank + 1 :].log_softmax(-1),
        )

    arrivals = {0: {(): 0.0}}  # frame -> {tokens: score} of hypotheses starting it
    finished = {}  # tokens -> score of hypotheses past the last frame
    for t in range(n_frames):
        level, moves = _best(arrivals.pop(t, {}), beam_size), {}
        for n_emitted in range(max_symbols):
            if not level:
                break
            lp_tokens, lp_durs = log_probs(list(level), t)
            stays = {}
            for (tokens, score), lt, ld in zip(level.items(), lp_tokens, lp_durs):
                options = {}  # this hypothesis's moves: (frame, tokens) -> best score
                labels = _best_labels(lt, blank, beam_size, tokens, words)
                for k in [blank, *labels]:
                    new = tokens if k == blank else (*tokens, k)
                    for d, lp_d in zip(durations, ld.tolist()):
                        value = score + float(lt[k]) + lp_d
                        if k != blank and d == 0 and n_emitted + 1 < max_symbols:
                            stays[new] = max(stays.get(new, -torch.inf), value)
                        else:
                            key = (t + max(d, 1), new)
                            options[key] = max(options.get(key, -torch.inf), value)
                for key, value in options.items():
                    moves[key] = _logaddexp(moves.get(key), value)
            kept = _best({**{("stay", k): v for k, v in stays.items()}, **moves},
                         beam_size)  # fmt: skip
            moves = {key: v for key, v in kept.items() if key[0] != "stay"}
            level = {key[1]: v for key, v in kept.items() if key[0] == "stay"}
        for (frame, tokens), value in moves.items():
            table = finished if frame >= n_frames else arrivals.setdefault(frame, {})
            table[tokens] = _logaddexp(table.get(tokens), value)
    return _ranked(_best(finished, beam_size), score_norm, words)
