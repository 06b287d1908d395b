"""Soft tokens: the ASR model's CTC posteriors read as the LM's own token embeddings.

LegoSLM (Ma et al. 2025, "LegoSLM: Connecting LLM with Speech Encoder using CTC
Posteriors", arXiv:2505.11352, Sec. 2): when the speech encoder's CTC head and the LM
share one vocabulary, each frame becomes the expected embedding of the token it hears,
    e_t = sum_k p_t(k) E_k,        p_t = softmax(z_t / tau)    over the pieces,
a "pseudo-audio embedding" that the LM reads like text from its first step; the
temperature tau moves it between the encoder's hard decisions (tau -> 0: the greedy
transcript's own embeddings) and its doubts. Here the frames are first compressed to
one per recognized piece (ctc_compress.py, blank runs dropped), and the blank's share
of each run is removed by renormalizing over the pieces:
    q_j(k) = p_j(k) / sum_{k' != blank} p_j(k'),    e_j = sum_{k != blank} q_j(k) E_k.
"""

from __future__ import annotations

import torch
from torch import Tensor


def soft_token_embeddings(posteriors: Tensor, blank: int, embedding: Tensor) -> Tensor:
    """posteriors (B, J, V + 1) over the ASR pieces and the blank (rows sum to 1),
    embedding (V', D) with V' >= V whose first V rows are those pieces' embeddings
    -> the expected piece embeddings (B, J, D)."""
    n_pieces = posteriors.size(-1) - 1
    assert 0 <= blank <= n_pieces, f"blank {blank} outside 0..{n_pieces}"
    assert embedding.size(0) >= n_pieces, "the LM has fewer tokens than the pieces"
    keep = torch.arange(n_pieces + 1, device=posteriors.device) != blank  # (V + 1,)
    pieces = posteriors[..., keep]  # (B, J, V)
    weights = pieces / pieces.sum(-1, keepdim=True).clamp_min(1e-8)  # (B, J, V)
    return weights.to(embedding.dtype) @ embedding[:n_pieces]  # (B, J, D)
