"""Adapted frames read as LM tokens: a CTC loss against the recording's transcript.

CTC (Graves et al. 2006, ICML) over the LM's vocabulary plus a blank, with the LM's
own tied embedding matrix E (V, D) as the output layer and a learned blank vector b:
    log p_t = log_softmax([E f_t ; b . f_t])    (V + 1,) for each frame f_t (D,)
    loss = -ln sum over alignments of the transcript tokens (ctc_loss, mean per token)
It asks the adapter for frames that are the words' own embeddings in order, which the
LM learned to copy in its text stage (as CTC-trained connectors of speech LLMs do).
"""

from __future__ import annotations

import torch
from torch import Tensor

from minispeech.nn.ctc import ctc_loss


def frames_as_tokens_ctc(
    frames: Tensor, lens: Tensor, token_ids, embedding: Tensor, blank: Tensor
) -> Tensor:
    """frames (B, T, D), lens (B,), token_ids (a list per item; items with none are
    left out), embedding (V, D), blank (D,) -> the mean CTC loss (0 with no words)."""
    items = [b for b, ids in enumerate(token_ids) if ids]
    if not items:
        return frames.new_zeros(())
    index = torch.tensor(items, device=frames.device)
    weight = torch.cat([embedding, blank[None]])  # (V + 1, D), blank last
    log_probs = (frames[index] @ weight.T).float().log_softmax(-1)  # (B', T, V + 1)
    targets = [torch.tensor(token_ids[b]) for b in items]
    return ctc_loss(
        log_probs,
        torch.nn.utils.rnn.pad_sequence(targets, batch_first=True).to(frames.device),
        lens[index].to(frames.device),
        torch.tensor([len(t) for t in targets], device=frames.device),
        blank=weight.size(0) - 1,
        zero_infinity=True,  # a frame sequence too short for its words
    )
