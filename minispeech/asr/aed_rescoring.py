"""Attention rescoring: the CTC head's beam proposes, the attention decoder chooses.

Two-pass decoding of a hybrid CTC/attention model. Watanabe et al. 2017, "Hybrid
CTC/Attention Architecture for End-to-End Speech Recognition" (IEEE JSTSP 11(8)),
Eq. (43), decodes with a weighted sum of the two log-likelihoods,
    y* = argmax_y  lambda ln p_ctc(y | x) + (1 - lambda) ln p_att(y | x);
the two-pass form here is WeNet's "attention rescoring" (Yao et al. 2021, "WeNet:
Production Oriented Streaming and Non-streaming End-to-End Speech Recognition
Toolkit", arXiv:2102.01547, Sec. 2.2), where the sum is taken over the n best of a
CTC prefix beam search only:
  1. the CTC head's prefix beam search (ctc_decoding.py, with the word LM and the
     lexicon when given) keeps n hypotheses y_1..y_n with their beam scores
         s_ctc(y) = ln p_ctc(y | x) + alpha ln p_LM(W(y)) + beta |W(y)|;
  2. the decoder scores each, teacher-forced after the prompt,
         s_att(y) = sum_u ln p(y_u | prompt, y_<u, x) + ln p(EOS | prompt, y, x);
  3. the answer is argmax_i  w s_ctc(y_i) + s_att(y_i),  w = `rescoring_ctc_weight`
     (WeNet's ctc_weight: the attention score keeps weight 1).
The first pass brings what the attention beam lacks here (the LM and lexicon of the
CTC main job, and no early end); the second brings the decoder's whole-sentence view.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from minispeech.asr.aed_tokenizer import PNC, SPECIAL
from minispeech.asr.ctc_decoding import ctc_prefix_beam_search_single
from minispeech.asr.lexicon import drop_unfinished_word, read_lexicon
from minispeech.asr.ngram_lm import read_lm
from minispeech.core.config import ConfigError

STRATEGY = "attention_rescoring"


def check_rescoring(decoding: dict, has_ctc_head: bool) -> None:
    """The `decoding` keys that only attention rescoring reads need it, and it needs
    the CTC head: a ConfigError naming the key otherwise."""
    rescoring = decoding.get("strategy") == STRATEGY
    if rescoring and not has_ctc_head:
        raise ConfigError(
            f"model.decoding.strategy {STRATEGY} needs the CTC head "
            "(train with loss.ctc_weight > 0)"
        )
    if decoding.get("lm_path") and not rescoring:
        raise ConfigError(
            "model.decoding.lm_path: the attention beam has no LM fusion; the LM "
            f"joins the CTC beam of strategy={STRATEGY}"
        )
    weight = decoding.get("rescoring_ctc_weight")
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
        raise ConfigError(
            f"model.decoding.rescoring_ctc_weight: a number >= 0, got {weight!r}"
        )


def rescores(model, prompt: Sequence[int]) -> bool:
    """Whether `prompt` decodes by attention rescoring: the strategy says so and it
    asks for the spoken form (the LM, lexicon and CTC head know only that one)."""
    pnc = model.tokenizer.token_to_id(PNC[True])
    return model.decoding_cfg["strategy"] == STRATEGY and pnc not in list(prompt)


def text_and_blank(model, log_probs: Tensor) -> Tensor:
    """CTC log-probs (B, T', V+1) with -inf where the head never learned to emit
    (special tokens, the padding ids): the beam proposes text pieces only."""
    tok = model.tokenizer
    keep = torch.zeros(log_probs.size(-1), dtype=torch.bool)
    keep[[i for i in range(tok.vocab_size) if tok.lang_of(i) != SPECIAL]] = True
    keep[model.blank] = True
    return log_probs.masked_fill(~keep.to(log_probs.device), -math.inf)


@torch.no_grad()
def rescoring_decode(model, audio: Tensor, audio_lens: Tensor, prompt) -> list:
    """Attention rescoring of a batch: audio (B, S) -> token ids per item."""
    memory, lens, ctc_log_probs = model.encode_with_ctc(audio, audio_lens)
    ctc_log_probs = text_and_blank(model, ctc_log_probs)  # (B, T', V+1)
    cfg = model.decoding_cfg
    options = dict(
        beam_width=int(cfg["beam_size"]),
        weight=float(cfg["rescoring_ctc_weight"]),
        token_to_text=model.token_texts(),
        lm=read_lm(cfg, model.lm_cache),
        alpha=float(cfg["lm_alpha"]),
        beta=float(cfg["lm_beta"]),
        lexicon=read_lexicon(cfg, model.lexicon_cache),
    )
    out = []
    for b in range(len(memory)):
        frames = ctc_log_probs[b, : int(lens[b])].cpu()  # (T, V+1)
        item = memory[b : b + 1], lens[b : b + 1], frames
        out.append(rescore(model, *item, prompt, **options))
    return out


@torch.no_grad()
def attention_log_likelihoods(
    model, memory: Tensor, memory_len: Tensor, prompt: Sequence[int], candidates
) -> Tensor:
    """s_att of each candidate (token ids after `prompt`, without EOS) for ONE
    utterance: memory (1, T', D_dec), memory_len (1,) -> (N,) float64, all N
    candidates teacher-forced in one padded decoder pass."""
    n_prompt, eos = len(prompt), model.tokenizer.eos_id
    seqs = [list(prompt) + list(c) + [eos] for c in candidates]
    lens = torch.tensor([len(s) for s in seqs], device=memory.device)  # (N,)
    full = torch.full((len(seqs), int(lens.max())), eos, device=memory.device)
    for i, seq in enumerate(seqs):
        full[i, : len(seq)] = torch.tensor(seq)
    n = len(seqs)
    log_probs, _ = model.log_probs(
        full[:, :-1],
        memory.expand(n, -1, -1),
        memory_len.expand(n),
        None,
        lens - 1,
    )  # (N, L-1, V): position j predicts token j+1
    picked = log_probs.double().gather(-1, full[:, 1:, None])[..., 0]  # (N, L-1)
    j = torch.arange(picked.size(1), device=memory.device)  # (L-1,)
    scored = (j >= n_prompt - 1) & (j < lens[:, None] - 1)  # text tokens and EOS
    return torch.where(scored, picked, 0.0).sum(1).cpu()  # (N,)


def rescore(
    model,
    memory: Tensor,
    memory_len: Tensor,
    ctc_log_probs: Tensor,
    prompt: Sequence[int],
    beam_width: int,
    weight: float,
    token_to_text: Sequence[str],
    lm=None,
    alpha: float = 0.5,
    beta: float = 1.0,
    lexicon=None,
) -> list[int]:
    """The rescored best of one utterance: memory (1, T', D_dec), memory_len (1,),
    ctc_log_probs (T, V+1) over its valid frames -> token ids (no EOS)."""
    hyps = ctc_prefix_beam_search_single(
        ctc_log_probs,
        blank=ctc_log_probs.size(-1) - 1,
        beam_width=beam_width,
        lm=lm,
        alpha=alpha,
        beta=beta,
        token_to_text=token_to_text,
        lexicon=lexicon,
    )
    alive = [h for h in hyps if h.score > -math.inf]
    if not alive:  # the lexicon: no beam ends on a whole word; keep the whole ones
        return list(drop_unfinished_word(hyps[0].tokens, token_to_text))
    candidates = [list(h.tokens) for h in alive]
    att = attention_log_likelihoods(model, memory, memory_len, prompt, candidates)
    ctc = torch.tensor([h.score for h in alive], dtype=torch.float64)  # (N,)
    return candidates[int((weight * ctc + att).argmax())]
