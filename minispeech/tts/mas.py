"""Monotonic alignment search (MAS): the most likely hard text-to-mel alignment.

Badlani et al. 2022, "One TTS Alignment To Rule Them All" (arXiv:2108.10447), Sec. 2.2:
the hard alignment A_hard is the monotonic, surjective path through the soft map A_soft
that maximises the sum of log A_soft (the Viterbi path of the forward-sum model). The
dynamic program is the one of Glow-TTS (Kim et al. 2020, arXiv:2005.11129, Eq. 8):

    Q[i, j] = log A[i, j] + max(Q[i-1, j], Q[i-1, j-1]),  Q[0, 0] = log A[0, 0],

with i over mel frames and j over tokens. The path starts at token 0, ends at the last
token on the last frame, and each frame stays on a token or advances by exactly one.

As NeMo (`mas_width1`, `b_mas`, `binarize_attention_parallel`, README_tasks.md):
- ties go to the earlier token: the backtrack moves to j-1 when Q[i-1, j-1] >= Q[i-1, j]
  (a uniform 7x4 map gives durations [4, 1, 1, 1]);
- the DP runs in the input's dtype (float32 for attention maps).
Differs: the fast `mas` is vectorised over batch and tokens in torch (NeMo loops over
items with numba), and token 0 never moves left even when a -inf makes a tie there.
"""

import numpy as np
import torch


def mas_reference(log_attn: np.ndarray) -> np.ndarray:
    """Readable MAS on one (T_mel, T_text) log attention map -> 0/1 path, same shape."""
    assert log_attn.ndim == 2, log_attn.shape
    n_mel, n_text = log_attn.shape
    # 1) forward: value[i, j] = best log score of a path ending on token j at frame i
    value = np.full((n_mel, n_text), -np.inf, dtype=log_attn.dtype)
    value[0, 0] = log_attn[0, 0]  # the start is forced at token 0
    for i in range(1, n_mel):
        for j in range(n_text):
            stay = value[i - 1, j]
            advance = value[i - 1, j - 1] if j > 0 else -np.inf
            value[i, j] = log_attn[i, j] + max(stay, advance)
    # 2) backtrack from the last token on the last frame; ties move to j-1
    path = np.zeros((n_mel, n_text), dtype=log_attn.dtype)
    j = n_text - 1
    for i in range(n_mel - 1, -1, -1):
        path[i, j] = 1
        if i > 0 and j > 0 and value[i - 1, j - 1] >= value[i - 1, j]:
            j -= 1
    return path


def mas(
    log_attn: torch.Tensor, text_lens: torch.Tensor, mel_lens: torch.Tensor
) -> torch.Tensor:
    """Batched MAS: (B,T_mel,T_text) log attention -> 0/1 paths, zero past the lengths.

    One loop over mel frames; each step works on all items and tokens at once.
    """
    assert log_attn.ndim == 3, f"log_attn must be (B,T_mel,T_text): {log_attn.shape}"
    n_batch, n_mel, n_text = log_attn.shape
    assert text_lens.shape == mel_lens.shape == (n_batch,), (text_lens, mel_lens)
    with torch.no_grad():
        moves = _forward(log_attn)  # (B, T_mel, T_text) bool
        path = _backtrack(moves, text_lens.to(moves.device), mel_lens.to(moves.device))
    return path.to(log_attn.dtype)


def _forward(log_attn: torch.Tensor) -> torch.Tensor:
    """moves[b, i, j]: the best path into (i, j) comes from token j-1 at frame i-1."""
    n_batch, n_mel, n_text = log_attn.shape
    ninf = log_attn.new_full((n_batch, 1), -float("inf"))
    value = torch.cat(
        [log_attn[:, 0, :1], ninf.expand(-1, n_text - 1)], 1
    )  # (B,T_text)
    moves = torch.zeros(log_attn.shape, dtype=torch.bool, device=log_attn.device)
    for i in range(1, n_mel):
        advance = torch.cat([ninf, value[:, :-1]], 1)  # value[i-1, j-1], (B,T_text)
        moves[:, i] = advance >= value  # ties go to the earlier token
        value = torch.maximum(advance, value) + log_attn[:, i]
    moves[:, :, 0] = False  # token 0 has nowhere to move to
    return moves


def _backtrack(moves: torch.Tensor, text_lens, mel_lens) -> torch.Tensor:
    """Walk back from (mel_len-1, text_len-1) of each item; (B,T_mel,T_text) 0/1."""
    n_batch, n_mel, _ = moves.shape
    batch = torch.arange(n_batch, device=moves.device)
    path = torch.zeros(moves.shape, device=moves.device)
    token = (text_lens - 1).clone()  # (B,) current token of each item
    for i in range(n_mel - 1, -1, -1):
        active = i < mel_lens  # (B,) items whose path covers frame i
        path[batch[active], i, token[active]] = 1.0
        token = token - (moves[batch, i, token] & active).long()
    return path


def binarize_attention(
    attn_soft: torch.Tensor, text_lens: torch.Tensor, mel_lens: torch.Tensor
) -> torch.Tensor:
    """A_hard = MAS(log A_soft), (B,1,T_mel,T_text) -> same shape, no gradient."""
    assert attn_soft.ndim == 4 and attn_soft.shape[1] == 1, attn_soft.shape
    with torch.no_grad():
        soft = attn_soft[:, 0]  # (B,T_mel,T_text)
        if soft.dtype not in (torch.float32, torch.float64):
            soft = soft.float()  # half/bf16 (autocast): sum the log scores in float32
        log_attn = torch.log(soft)  # a 0 (padding) becomes -inf
        hard = mas(log_attn, text_lens, mel_lens)
    return hard.to(attn_soft.dtype)[:, None]  # (B,1,T_mel,T_text)


def hard_durations(attn_hard: torch.Tensor) -> torch.Tensor:
    """Frames per token of a hard alignment: (B,1,T_mel,T_text) -> (B,T_text)."""
    assert attn_hard.ndim == 4 and attn_hard.shape[1] == 1, attn_hard.shape
    return attn_hard.sum(2)[:, 0]  # (B,T_text)
