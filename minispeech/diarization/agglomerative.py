"""Agglomerative hierarchical clustering (AHC) of speaker embeddings: the baseline.

Average linkage (UPGMA; Sokal & Michener 1958, "A statistical method for evaluating
systematic relationships"): the similarity of two clusters is the mean similarity
over all cross pairs, s(a, b) = sum_{i in a, j in b} s_ij / (|a| |b|). Starting from
one cluster per segment, the most similar pair merges while that similarity is at
least `threshold` (a cosine), or until `num_speakers` clusters remain.

After a merge of a and b, the Lance-Williams update gives the new row without
going back to the segments: s(a+b, c) = (|a| s(a, c) + |b| s(b, c)) / (|a| + |b|).
Each merge costs O(N) and the search O(N^2), so O(N^3) in all (fine for the few
hundred to few thousand segments of a session).
"""

import torch


def cosine_similarity(embs: torch.Tensor) -> torch.Tensor:
    """Plain cosine similarity: (N, D) -> (N, N)."""
    unit = torch.nn.functional.normalize(embs.double(), dim=1)  # (N, D)
    return unit @ unit.T


def average_linkage(
    similarity: torch.Tensor, threshold: float = 0.5, num_speakers: int | None = None
) -> torch.Tensor:
    """AHC on a symmetric similarity (N, N) -> labels (N,), numbered in order of
    first appearance. The merge loop stops at num_speakers clusters when given,
    else when no pair of clusters reaches threshold."""
    n = similarity.shape[0]
    assert similarity.shape == (n, n), similarity.shape
    sim = similarity.double().clone().fill_diagonal_(-torch.inf)  # (N, N) live pairs
    sizes = torch.ones(n, dtype=torch.float64)  # (N,) |cluster| at its first row
    owner = torch.arange(n)  # (N,) the row that stands for each segment's cluster
    for n_clusters in range(n, 1, -1):
        best = int(torch.argmax(sim))  # row-major: the first maximum, a < b
        a, b = divmod(best, n)
        if n_clusters == num_speakers or (
            num_speakers is None and sim[a, b] < threshold
        ):
            break
        # Lance-Williams: the row of a becomes the size-weighted mean of rows a, b
        merged = (sizes[a] * sim[a] + sizes[b] * sim[b]) / (sizes[a] + sizes[b])
        sim[a], sim[:, a] = merged, merged
        sim[b], sim[:, b] = -torch.inf, -torch.inf  # b is gone
        sim[a, a] = -torch.inf
        sizes[a] += sizes[b]
        owner[owner == b] = a
    return torch.tensor(first_appearance(owner))


def first_appearance(ids: torch.Tensor) -> list[int]:
    """Renumber ids 0, 1, 2... by first appearance: [7, 7, 2, 7] -> [0, 0, 1, 0]."""
    seen: dict[int, int] = {}
    return [seen.setdefault(int(i), len(seen)) for i in ids]


def agglomerative(
    embs: torch.Tensor | list[torch.Tensor],
    threshold: float = 0.5,
    num_speakers: int | None = None,
    weights: list[float] | None = None,
) -> torch.Tensor:
    """Average-linkage AHC on cosine similarity: embeddings (N, D), or a list of
    per-scale embeddings mapped to the same N segments (their similarities
    averaged with `weights`, equal by default) -> labels (N,)."""
    scales = [embs] if isinstance(embs, torch.Tensor) else list(embs)
    if weights is None:
        weights = [1.0] * len(scales)
    assert len(weights) == len(scales), (len(weights), len(scales))
    similarity = sum(w * cosine_similarity(e) for w, e in zip(weights, scales))
    return average_linkage(similarity / sum(weights), threshold, num_speakers)
