"""Scores over many utterances at once: every pair of a set as a verification trial,
and leave-one-out closed-set identification. Both take the vectors a SpeakerModel
scores by cosine (`scoring_embeddings`, or the network's embeddings) with their
speaker names.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def pair_trials(embeddings, speakers) -> tuple[Tensor, Tensor]:
    """Every pair i < j of N embeddings (N, E): scores (N(N-1)/2,) = (cos + 1) / 2
    and targets (1 = same speaker)."""
    if len(embeddings) < 2:
        return torch.zeros(0), torch.zeros(0, dtype=torch.long)
    embs = torch.nn.functional.normalize(torch.as_tensor(embeddings).double(), dim=1)
    cos = embs @ embs.T  # (N, N)
    i, j = torch.triu_indices(len(embs), len(embs), offset=1)  # pairs i < j
    ids = {name: k for k, name in enumerate(sorted(set(speakers)))}
    spk = torch.tensor([ids[name] for name in speakers])  # (N,)
    return (cos[i, j] + 1) / 2, (spk[i] == spk[j]).long()


def leave_one_out_identification(embeddings, speakers) -> float:
    """Closed-set identification accuracy over N embeddings (N, E): each utterance
    is scored against every speaker's enrolment (the mean L2-normalised embedding
    of that speaker's other utterances, as `enroll` makes it) and counts as right
    when its own speaker scores highest. Utterances whose speaker has no other
    utterance are skipped; NaN when none is left or fewer than two speakers."""
    names = sorted(set(speakers))
    if len(names) < 2:
        return math.nan
    embs = torch.nn.functional.normalize(torch.as_tensor(embeddings).double(), dim=1)
    spk = torch.tensor([names.index(name) for name in speakers])  # (N,)
    onehot = torch.nn.functional.one_hot(spk, len(names)).double()  # (N, K)
    sums, counts = onehot.T @ embs, onehot.sum(0)  # (K, E), (K,)
    # 1) every speaker's mean over all utterances; for the utterance's own
    #    speaker, the mean without it: (sum - e_i) / (count - 1)
    means = (sums / counts[:, None]).expand(len(embs), -1, -1).clone()  # (N, K, E)
    own = counts[spk] - 1  # (N,)
    keep = own > 0
    rows = torch.arange(len(embs))
    means[rows[keep], spk[keep]] = (sums[spk[keep]] - embs[keep]) / own[keep, None]
    # 2) cosine to each enrolment (the score (cos + 1) / 2 keeps the order)
    means = torch.nn.functional.normalize(means, dim=2)
    cos = torch.einsum("ne,nke->nk", embs, means)  # (N, K)
    if not bool(keep.any()):
        return math.nan
    return float((cos.argmax(1) == spk)[keep].double().mean())
