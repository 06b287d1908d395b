"""CTC forced alignment: the best path of a known transcript, with token and word times.

Viterbi decoding over the CTC trellis of Graves et al. 2006, "Connectionist Temporal
Classification" (ICML): the forward recursion of Eq. 6-7 over the blank-extended
labels l' (2U+1 states) with the sum replaced by a max, and a backtrace from the better
of the two final states of Eq. 8. The best path gives every label a run of frames.

Differences from the paper: the paper sums over paths (training) or searches label
sequences (decoding); aligning a known l is the same trellis with max-product (the
Viterbi algorithm, as in CTC segmentation tools). Vectorised over batch and states,
one loop over T; the trellis states l' and the skip rule are ctc.py's, shared with the
loss. Word times need the text of each token: a token whose text is the
separator (" " for characters) ends a word, and a SentencePiece piece that starts with
"\u2581" starts one.
"""

from dataclasses import dataclass
from typing import Sequence

import torch

from minispeech.nn.ctc import extend_with_blanks, skip_mask

_LOG_ZERO = float("-inf")
_SP_SPACE = "\u2581"


@dataclass(frozen=True)
class TokenSpan:
    token: int  # label id
    start: int  # first frame of the label
    end: int  # one past its last frame


@dataclass(frozen=True)
class WordSpan:
    word: str  # the text of its tokens
    start: float  # seconds: start of its first token
    end: float  # seconds: end of its last token


@dataclass(frozen=True)
class Alignment:
    spans: list[TokenSpan]  # one per label of the transcript, in order
    frame_labels: list[int]  # the best path: a label id or the blank at every frame
    logp: float  # ln p of the best path


def ctc_forced_align(
    log_probs: torch.Tensor,
    targets: torch.Tensor,
    input_lens: torch.Tensor,
    target_lens: torch.Tensor,
    blank: int = 0,
) -> list[Alignment]:
    """Best CTC path of each transcript: log_probs (B,T,V), targets (B,U) padded."""
    if log_probs.ndim != 3 or targets.ndim != 2:
        shapes = (tuple(log_probs.shape), tuple(targets.shape))
        raise ValueError(f"log_probs must be (B,T,V) and targets (B,U), got {shapes}")
    log_probs = log_probs.detach()
    device = log_probs.device
    input_lens, target_lens = input_lens.to(device), target_lens.to(device)
    n_batch, n_frames, _ = log_probs.shape
    ext = extend_with_blanks(targets.to(device), target_lens, blank)  # (B,U'=2U+1)
    emit = log_probs.gather(2, ext[:, None, :].expand(-1, n_frames, -1))  # (B,T,U')
    delta, back = _viterbi(emit, skip_mask(ext, blank), int(input_lens.max()))
    ends = 2 * target_lens  # the final blank of each l'; the last label is ends - 1
    batch = torch.arange(n_batch, device=device)
    last = delta[batch, input_lens - 1]  # (B,U')
    before_end = last[batch, (ends - 1).clamp(min=0)].masked_fill(ends == 0, _LOG_ZERO)
    final_state = torch.where(before_end > last[batch, ends], ends - 1, ends)
    logp = torch.maximum(last[batch, ends], before_end)  # (B,)
    _check_feasible(logp, targets, target_lens, input_lens)
    states = _backtrace(back, final_state, input_lens)  # (B,T)
    return [
        _to_alignment(states[b, : input_lens[b]], ext[b], blank, float(logp[b]))
        for b in range(n_batch)
    ]


def ctc_forced_align_single(
    log_probs: torch.Tensor, tokens: Sequence[int] | torch.Tensor, blank: int = 0
) -> Alignment:
    """Best CTC path of one transcript: log_probs (T,V), tokens (U,)."""
    if log_probs.ndim != 2:
        raise ValueError(f"log_probs must be (T,V), got {tuple(log_probs.shape)}")
    tokens = torch.as_tensor(tokens, dtype=torch.long).reshape(1, -1)  # (1,U)
    lens = torch.tensor([log_probs.shape[0]]), torch.tensor([tokens.shape[1]])
    return ctc_forced_align(log_probs[None], tokens, *lens, blank=blank)[0]


def word_spans(
    spans: Sequence[TokenSpan],
    token_to_text: Sequence[str],
    frame_duration: float = 0.04,
    separator: str = " ",
) -> list[WordSpan]:
    """Group token spans into words; frame_duration is the seconds per output frame
    (0.04 = 10 ms hop x 4 subsampling)."""
    words, current = [], []
    for span in list(spans) + [None]:  # None flushes the last word
        text = None if span is None else token_to_text[span.token]
        if span is None or text == separator or text.startswith(_SP_SPACE):
            if current:
                word = "".join(token_to_text[s.token] for s in current)
                start, end = current[0].start, current[-1].end
                words.append(
                    WordSpan(
                        word.lstrip(_SP_SPACE),
                        start * frame_duration,
                        end * frame_duration,
                    )
                )
            current = []
        if span is not None and text != separator:
            current.append(span)
    return words


def _viterbi(emit: torch.Tensor, skip: torch.Tensor, n_steps: int):
    """delta_t(s) = max(delta_{t-1}(s), delta_{t-1}(s-1), delta_{t-1}(s-2)) + emit,
    Eq. 7 with max for sum; back[t, b, s] = how many states the best move advanced."""
    n_batch, n_frames, n_states = emit.shape
    no_skip = torch.where(skip, 0.0, _LOG_ZERO).to(emit.dtype)  # (B,U')
    delta = emit.new_full((n_batch, n_frames, n_states + 2), _LOG_ZERO)  # (B,T,U'+2)
    delta[:, 0, 2:4] = emit[:, 0, :2]  # Eq. 6: start in the blank or the first label
    back = emit.new_zeros((n_frames, n_batch, n_states), dtype=torch.long)  # (T,B,U')
    for t in range(1, n_steps):
        prev = delta[:, t - 1]  # (B,U'+2); columns 0-1 stay log 0
        moves = torch.stack([prev[:, 2:], prev[:, 1:-1], prev[:, :-2] + no_skip])
        best, back[t] = moves.max(0)  # (B,U') each
        delta[:, t, 2:] = best + emit[:, t]
    return delta[:, :, 2:], back


def _backtrace(back: torch.Tensor, final_state: torch.Tensor, input_lens: torch.Tensor):
    """States of the best path (B,T), each item from its own last frame backwards."""
    n_frames, n_batch, _ = back.shape
    batch = torch.arange(n_batch, device=back.device)
    states = torch.zeros(n_batch, n_frames, dtype=torch.long, device=back.device)
    current = final_state.clone()
    for t in range(n_frames - 1, -1, -1):
        current = torch.where(input_lens - 1 == t, final_state, current)
        states[:, t] = current
        if t > 0:
            inside = t <= input_lens - 1
            current = torch.where(inside, current - back[t, batch, current], current)
    return states


def _to_alignment(states: torch.Tensor, ext: torch.Tensor, blank: int, logp: float):
    states = states.tolist()
    frame_labels = ext[states].tolist()
    spans = {}
    for t, s in enumerate(states):
        if s % 2 == 1:  # odd states of l' are labels: label index (s - 1) / 2
            start, _ = spans.get(s, (t, t))
            spans[s] = (start, t + 1)
    token_spans = [TokenSpan(int(ext[s]), *spans[s]) for s in sorted(spans)]
    return Alignment(token_spans, frame_labels, logp)


def _check_feasible(logp, targets, target_lens, input_lens) -> None:
    for b in torch.nonzero(torch.isinf(logp)).flatten().tolist():
        labels = targets[b, : target_lens[b]].tolist()
        repeats = sum(x == y for x, y in zip(labels, labels[1:]))
        raise ValueError(
            f"item {b}: {len(labels)} labels with {repeats} repeats need at least "
            f"{len(labels) + repeats} frames, got {int(input_lens[b])} "
            "(or a label has probability 0 at every frame it could take)"
        )
