"""k-means with k-means++ seeding, for the spectral embeddings of speaker clustering.

References:
1) Lloyd 1982, "Least squares quantization in PCM": alternate the assignment step
   (each point to its nearest centre) and the update step (each centre to the mean
   of its points); each step lowers the within-cluster sum of squares (SSE).
2) Arthur & Vassilvitskii 2007, "k-means++: The Advantages of Careful Seeding":
   the first centre is uniform, each next one is drawn with probability D(x)^2 / sum
   D^2, D(x) being the distance to the nearest centre chosen so far.

Differs: "greedy" k-means++ as in scikit-learn and NeMo's `kmeans_plusplus_torch`:
each step draws `n_local_trials` candidates and keeps the one that lowers the
potential sum D^2 the most. The random draws (one randint, then `n_local_trials`
uniforms per step) are those of NeMo, from a private generator seeded with `seed`,
so the same seed gives NeMo's centres without touching torch's global RNG. Like
NeMo, Lloyd stops after `n_iter` rounds or when (sum_c |shift_c|)^2 < `tol`, and an
empty cluster restarts at a random point.
"""

import torch


def squared_distances(x: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """|x_n - c_k|^2 for every pair: (N, D), (K, D) -> (N, K)."""
    return (x[:, None, :] - centres[None, :, :]).pow(2).sum(-1)  # (N, K)


def kmeans_plusplus(
    x: torch.Tensor, k: int, generator: torch.Generator, n_local_trials: int = 30
) -> torch.Tensor:
    """Greedy k-means++ seeding: (N, D) -> centres (K, D), rows of x."""
    n = x.shape[0]
    first = torch.randint(0, n, (1,), generator=generator)
    centres = [x[first[0]]]
    closest = squared_distances(x, x[first])[:, 0]  # (N,) D(x)^2
    for _ in range(1, k):
        # 1) draw candidates with probability D(x)^2 / sum D^2 (inverse CDF)
        u = torch.rand(n_local_trials, generator=generator) * closest.sum()
        candidates = torch.searchsorted(torch.cumsum(closest, 0), u).clamp(max=n - 1)
        # 2) keep the candidate whose addition leaves the smallest potential
        dist = squared_distances(x, x[candidates]).T  # (trials, N)
        dist = torch.minimum(closest[None, :], dist)
        best = torch.argmin(dist.sum(1))
        closest = dist[best]
        centres.append(x[candidates[best]])
    return torch.stack(centres)  # (K, D)


def kmeans(
    x: torch.Tensor,
    k: int,
    seed: int = 0,
    n_iter: int = 15,
    tol: float = 1e-4,
    n_local_trials: int = 30,
) -> torch.Tensor:
    """Lloyd's k-means from k-means++ centres: x (N, D) -> labels (N,) in [0, k)."""
    assert x.ndim == 2 and 1 <= k <= x.shape[0], (x.shape, k)
    x = x.float()
    generator = torch.Generator().manual_seed(seed)
    centres = kmeans_plusplus(x, k, generator, n_local_trials)  # (K, D)
    labels = torch.zeros(x.shape[0], dtype=torch.long)
    for _ in range(n_iter):
        labels = squared_distances(x, centres).argmin(1)  # (N,) assignment step
        old = centres.clone()
        for c in range(k):  # update step
            members = x[labels == c]  # (N_c, D)
            if len(members) == 0:
                members = x[torch.randint(len(x), (1,), generator=generator)]
            centres[c] = members.mean(0)
        if (centres - old).norm(dim=1).sum() ** 2 < tol:
            break
    return labels


def within_cluster_sse(x: torch.Tensor, labels: torch.Tensor) -> float:
    """The k-means objective: sum over clusters of |x_n - mean_c|^2."""
    return sum(
        float((x[labels == c] - x[labels == c].mean(0)).pow(2).sum())
        for c in labels.unique()
    )
