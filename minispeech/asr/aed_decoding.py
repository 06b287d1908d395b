"""Greedy and beam search decoding of attention encoder-decoder (AED) ASR models.

The decoder continues a prompt (task, language, ... tokens, as in Canary) one token at
a time; `model.decode_step(tokens, memory, memory_lens, cache)` returns the log-probs
of the next token at every position of `tokens` and the grown key/value cache.

Beam search scores a hypothesis Y by its summed log-probs ln P(Y | X) and ranks the
finished ones by the length-normalised score of Wu et al. 2016, "Google's Neural Machine
Translation System", arXiv:1609.08144, Sec. 7, Eq. 14:
    s(Y, X) = ln P(Y | X) / lp(Y),   lp(Y) = ((5 + |Y|) / 6) ** alpha,
where |Y| counts every scored token: the EOS included, the prompt excluded.
Each step ranks the K x V extensions of the K live beams by raw score; the EOS
extensions among the K best finish, the K best non-EOS extensions stay live.

Stopping rule (exact: stopping early never changes the answer). For alpha >= 0 a live
beam with raw score s <= 0 can only finish with a normalised score <= s / lp(max_len),
because later tokens only lower s and lp grows with |Y| <= max_len. An item is done
when its best finished score is >= that bound for its best live beam (with alpha = 0,
lp = 1: the best finished >= the best live). The search ends when every item is done
or after max_len steps, where the live beams finish without EOS (|Y| = max_len).

Only the K best extensions may finish, so beam_size=1 is greedy decoding (alpha = 0).

Lexicon constraint (optional, `lexicon.py`'s `WordState`): an extension whose words
leave the lexicon scores -inf, and EOS may only follow a whole lexicon word, so every
finished hypothesis is a sequence of lexicon words. Live beams that reach max_len
finish only if they end on a whole word; an item left with none gets the completed
words of its best live beam.

Differences from the paper: no coverage penalty (beta = 0 in Eq. 14) and no pruning
by a score margin below the best hypothesis: the beam width is the only pruning.
"""

import dataclasses
from typing import Any, Callable, Protocol

import torch
from torch import Tensor

from minispeech.asr.lexicon import WordState, drop_unfinished_word


class StepDecoder(Protocol):
    def decode_step(
        self, tokens: Tensor, memory: Tensor, memory_lens: Tensor, cache: Any
    ) -> tuple[Tensor, Any]:
        """tokens (B, L_new) after `cache` (None: tokens is the prompt) ->
        (log_probs (B, L_new, V), grown cache)."""
        ...


def generation_cap(
    n_frames: int | Tensor, prompt_len: int, max_sequence_length: int, delta: int
) -> int:
    """How many tokens decoding may emit after a `prompt_len`-token prompt.

    NeMo's cap on the decoder's input positions: cap = min(max_sequence_length,
    T'_padded + max_generation_delta) (only max_sequence_length when the delta is
    negative). The decoder reads the prompt and every emitted token but the last,
    so it may emit cap - prompt_len + 1 tokens: canary_aed_tiny (T'_padded 18,
    delta 8, P 5) emits 26 - 5 + 1 = 22. `n_frames`: T'_padded, or the (B,)
    memory lengths (their maximum)."""
    if isinstance(n_frames, Tensor):
        n_frames = int(n_frames.max()) if n_frames.numel() else 0
    cap = max_sequence_length
    if delta >= 0:
        cap = min(cap, int(n_frames) + delta)
    return max(cap - prompt_len + 1, 0)


def gnmt_length_penalty(n_tokens: int, alpha: float) -> float:
    """GNMT lp(Y) = ((5 + |Y|) / 6) ** alpha (Wu et al. 2016, Eq. 14)."""
    return ((5 + n_tokens) / 6) ** alpha


def select_cache(cache: Any, index: Tensor) -> Any:
    """index_select every tensor of a cache along dim 0: (B, ...) -> (len(index), ...).

    Walks dataclasses (e.g. DecoderCache), lists, tuples and dicts; other values
    (ints, None) carry no batch dimension and are kept.
    """
    return _map_tensors(cache, lambda t: t.index_select(0, index))


def _map_tensors(obj: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    if isinstance(obj, Tensor):
        return fn(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = [f.name for f in dataclasses.fields(obj) if f.init]
        changes = {name: _map_tensors(getattr(obj, name), fn) for name in fields}
        return dataclasses.replace(obj, **changes)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_map_tensors(x, fn) for x in obj)
    if isinstance(obj, dict):
        return {key: _map_tensors(value, fn) for key, value in obj.items()}
    return obj


def _check_inputs(memory, memory_lens, prompt, max_len):
    assert memory.ndim == 3, f"memory must be (B, T', D), got {tuple(memory.shape)}"
    n_batch = memory.size(0)
    assert memory_lens.shape == (n_batch,), (
        f"memory_lens must be ({n_batch},), got {tuple(memory_lens.shape)}"
    )
    assert prompt.ndim == 2 and prompt.size(0) == n_batch and prompt.size(1) >= 1, (
        f"prompt must be ({n_batch}, P) with P >= 1, got {tuple(prompt.shape)}"
    )
    assert max_len >= 0, f"max_len must be >= 0, got {max_len}"


def _cut_at_eos(tokens: list[int], eos_id: int) -> list[int]:
    return tokens[: tokens.index(eos_id)] if eos_id in tokens else tokens


@torch.no_grad()
def aed_greedy_decode(
    model: StepDecoder,
    memory: Tensor,
    memory_lens: Tensor,
    prompt: Tensor,
    eos_id: int,
    max_len: int,
) -> list[list[int]]:
    """The most likely next token, step by step, for a batch.

    memory (B, T', D), memory_lens (B,), prompt (B, P) -> token ids per item, the
    prompt and EOS excluded, at most max_len of them. Finished items are fed EOS
    while the others go on; their outputs are frozen. Call model.eval() first.
    """
    _check_inputs(memory, memory_lens, prompt, max_len)
    finished = torch.zeros(prompt.size(0), dtype=torch.bool, device=prompt.device)
    out = prompt.new_empty(prompt.size(0), 0)  # (B, 0)
    log_probs, cache = model.decode_step(prompt, memory, memory_lens, None)  # (B,P,V)
    for step in range(max_len):
        next_ids = log_probs[:, -1].argmax(-1).masked_fill(finished, eos_id)  # (B,)
        out = torch.cat([out, next_ids.unsqueeze(1)], dim=1)  # (B, step + 1)
        finished |= next_ids == eos_id
        if finished.all() or step == max_len - 1:
            break
        log_probs, cache = model.decode_step(
            next_ids.unsqueeze(1), memory, memory_lens, cache
        )  # (B, 1, V)
    return [_cut_at_eos(row, eos_id) for row in out.tolist()]


@dataclasses.dataclass
class _Best:
    """The best finished hypothesis of each item so far."""

    score: Tensor  # (B,) normalised score s(Y, X); -inf while there is none
    tokens: list[list[int]]  # its tokens, prompt and EOS excluded


def _finish(best: _Best, norm: Tensor, rows: Tensor, prefixes: Tensor) -> None:
    """Keep the candidates that beat their item's best (ties keep the older one).

    norm (B, C) normalised scores (-inf: no candidate), rows (B, C) their rows of
    prefixes (B*K, L)."""
    top, col = norm.max(dim=1)  # (B,)
    for b in torch.nonzero(top > best.score).flatten().tolist():
        best.score[b] = top[b]
        best.tokens[b] = prefixes[rows[b, col[b]]].tolist()


def _extend(scores: Tensor, log_probs: Tensor, eos_id: int):
    """One step of the beams: scores (B, K) raw, log_probs (B*K, V) of the next token.

    Returns the EOS extensions among the K best (scores (B, K), -inf for the others,
    and their rows (B, K)) and the K best non-EOS extensions (scores (B, K), the rows
    they extend (B*K,), their tokens (B*K,))."""
    n_batch, k = scores.shape
    vocab = log_probs.size(-1)
    cand = scores.unsqueeze(-1) + log_probs.view(n_batch, k, vocab)  # (B, K, V)
    cand = cand.view(n_batch, k * vocab)  # (B, K*V)
    base = torch.arange(n_batch, device=scores.device).unsqueeze(1) * k  # (B, 1)
    top, idx = cand.topk(k, dim=1)  # (B, K)
    eos_scores = top.masked_fill(idx % vocab != eos_id, -torch.inf)
    eos_rows = base + idx // vocab  # (B, K)
    cand.view(n_batch, k, vocab)[..., eos_id] = -torch.inf
    live, idx = cand.topk(k, dim=1)  # (B, K)
    rows = (base + idx // vocab).flatten()  # (B*K,)
    return eos_scores, eos_rows, live, rows, (idx % vocab).flatten()


def lexicon_penalty(
    words: WordState, prefixes: Tensor, eos_id: int, vocab: int
) -> Tensor:
    """(R, V) float64 to add to the next token's log-probs of R prefixes (R, L):
    0 where the lexicon allows the token, -inf elsewhere (EOS: after a whole word)."""
    allowed = torch.zeros(prefixes.size(0), vocab, dtype=torch.bool)  # (R, V)
    for row, prefix in enumerate(prefixes.tolist()):
        tokens = tuple(prefix)
        mask = words.next_allowed(tokens)[:vocab]
        allowed[row, : mask.numel()] = mask
        allowed[row, eos_id] = words.finished(tokens)[1]
    penalty = torch.zeros(allowed.shape, dtype=torch.float64)
    return penalty.masked_fill_(~allowed, -torch.inf).to(prefixes.device)


@torch.no_grad()
def aed_beam_search(
    model: StepDecoder,
    memory: Tensor,
    memory_lens: Tensor,
    prompt: Tensor,
    eos_id: int,
    max_len: int,
    beam_size: int = 4,
    length_penalty: float = 0.0,
    return_scores: bool = False,
    words: WordState | None = None,
):
    """Batched beam search over B*K rows; the rule is in the module docstring.

    memory (B, T', D), memory_lens (B,), prompt (B, P) -> the best hypothesis per item
    (prompt and EOS excluded); with return_scores, (hypotheses, their s(Y, X)).
    words: a WordState with a lexicon, to spell only its words. Equals
    `aed_beam_search_reference` item by item. Call model.eval() first.
    """
    _check_inputs(memory, memory_lens, prompt, max_len)
    assert beam_size >= 1 and length_penalty >= 0, (beam_size, length_penalty)
    n_batch, k, device = prompt.size(0), beam_size, memory.device
    expand = torch.arange(n_batch, device=device).repeat_interleave(k)  # (B*K,)
    log_probs, cache = model.decode_step(prompt, memory, memory_lens, None)
    log_probs, cache = log_probs[expand], select_cache(cache, expand)  # (B*K, P, V)
    memory, memory_lens = memory[expand], memory_lens[expand]  # (B*K, T', D)
    scores = torch.full((n_batch, k), -torch.inf, dtype=torch.float64, device=device)
    scores[:, 0] = 0.0  # (B, K): one live beam per item at the start
    prefixes = prompt.new_empty(n_batch * k, 0)  # (B*K, 0)
    best = _Best(
        torch.full_like(scores[:, 0], -torch.inf), [[] for _ in range(n_batch)]
    )
    bound_lp = gnmt_length_penalty(max_len, length_penalty)
    vocab = log_probs.size(-1)
    for step in range(1, max_len + 1):
        lp = gnmt_length_penalty(step, length_penalty)
        # 1) EOS extensions among the K best finish with |Y| = step
        next_lp = log_probs[:, -1].double()  # (B*K, V)
        if words is not None:
            next_lp = next_lp + lexicon_penalty(words, prefixes, eos_id, vocab)
        eos_scores, eos_rows, scores, rows, new_ids = _extend(scores, next_lp, eos_id)
        _finish(best, eos_scores / lp, eos_rows, prefixes)
        # 2) the K best non-EOS extensions stay live
        prefixes = torch.cat([prefixes[rows], new_ids.unsqueeze(1)], 1)  # (B*K, step)
        # 3) stopping rule: an item whose best live beam cannot win is done (frozen)
        done = best.score >= scores.max(dim=1).values / bound_lp  # (B,)
        scores[done] = -torch.inf
        if done.all() or step == max_len:
            break
        cache = select_cache(cache, rows)
        log_probs, cache = model.decode_step(
            new_ids.unsqueeze(1), memory, memory_lens, cache
        )  # (B*K, 1, V)
    # 4) live beams that reach max_len finish without EOS (|Y| = max_len)
    own_rows = torch.arange(n_batch * k, device=device).view(n_batch, k)  # (B, K)
    final = scores
    if words is not None:  # ... on a whole word, with a lexicon
        whole = [words.finished(tuple(p))[1] for p in prefixes.tolist()]
        whole = torch.tensor(whole, device=device).view(n_batch, k)
        final = scores.masked_fill(~whole, -torch.inf)
    _finish(best, final / bound_lp, own_rows, prefixes)
    if words is not None:
        _fall_back_to_completed_words(best, scores, own_rows, prefixes, words)
    return (best.tokens, best.score.tolist()) if return_scores else best.tokens


def _fall_back_to_completed_words(best, scores, own_rows, prefixes, words) -> None:
    """Items without a finished hypothesis: the completed words of the best live
    beam (score: -inf, it did not finish)."""
    top, col = scores.max(dim=1)  # (B,)
    for b in torch.nonzero(best.score == -torch.inf).flatten().tolist():
        if top[b] > -torch.inf:
            tokens = tuple(prefixes[own_rows[b, col[b]]].tolist())
            best.tokens[b] = list(drop_unfinished_word(tokens, words.token_to_text))


def _next_log_probs(model, memory, memory_lens, prompt, tokens) -> list[float]:
    """ln P(next token | prompt + tokens): the whole prefix again, no cache."""
    prefix = torch.cat([prompt, prompt.new_tensor(tokens)]).unsqueeze(0)  # (1, P+L)
    log_probs, _ = model.decode_step(prefix, memory, memory_lens, None)  # (1,P+L,V)
    return log_probs[0, -1].double().tolist()


@torch.no_grad()
def aed_beam_search_reference(
    model: StepDecoder,
    memory: Tensor,
    prompt: Tensor,
    eos_id: int,
    max_len: int,
    beam_size: int = 4,
    length_penalty: float = 0.0,
    words: WordState | None = None,
) -> tuple[list[int], float]:
    """Beam search for one utterance, slow and plain: lists of (score, tokens).

    memory (T', D) cut to its length, prompt (P,) -> (best tokens, s(Y, X)).
    words: a WordState with a lexicon; an extension it does not allow is skipped.
    """

    def allowed(tokens: list[int]) -> bool:
        if words is None:
            return True
        if tokens and tokens[-1] == eos_id:  # EOS: only after a whole word
            return words.finished(tuple(tokens[:-1]))[1]
        return words.allows(tuple(tokens))

    assert memory.ndim == 2 and prompt.ndim == 1, (memory.shape, prompt.shape)
    memory, memory_lens = memory.unsqueeze(0), torch.tensor([memory.size(0)])
    bound_lp = gnmt_length_penalty(max_len, length_penalty)
    live = [(0.0, [])]  # (raw score ln P(tokens | X), tokens)
    best_score, best_tokens = -float("inf"), []
    for step in range(1, max_len + 1):
        lp = gnmt_length_penalty(step, length_penalty)
        # 1) every extension of every live beam, best first
        cands = []
        for score, tokens in live:
            next_lp = _next_log_probs(model, memory, memory_lens, prompt, tokens)
            cands += [(score + x, tokens + [v]) for v, x in enumerate(next_lp)]
        cands = [cand for cand in cands if allowed(cand[1])]
        cands.sort(key=lambda cand: -cand[0])
        # 2) EOS extensions among the K best finish with |Y| = step
        for score, tokens in cands[:beam_size]:
            if tokens[-1] == eos_id and score / lp > best_score:
                best_score, best_tokens = score / lp, tokens[:-1]
        # 3) the K best non-EOS extensions stay live
        live = [cand for cand in cands if cand[1][-1] != eos_id][:beam_size]
        # 4) stopping rule: the best live beam cannot win any more (or none is left)
        if not live or best_score >= live[0][0] / bound_lp:
            return best_tokens, best_score
    for score, tokens in live:  # 5) max_len reached: finish without EOS
        whole = words is None or words.finished(tuple(tokens))[1]
        if whole and score / bound_lp > best_score:
            best_score, best_tokens = score / bound_lp, tokens
    if best_score == -float("inf") and live and words is not None:
        best_tokens = list(drop_unfinished_word(tuple(live[0][1]), words.token_to_text))
    return best_tokens, best_score
