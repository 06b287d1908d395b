"""Speaker clustering for offline diarization: NME-SC spectral clustering (and AHC).

References:
1) Park, Han, Kumar & Narayanan 2019, "Auto-Tuning Spectral Clustering for Speaker
   Diarization Using Normalized Maximum Eigengap" (NME-SC), IEEE SPL 27,
   arXiv:2003.02405. In the paper's symbols: the cosine affinity A; the
   p-neighbour binarization A_p (the p largest entries of each row set to 1, the
   rest to 0); the symmetric graph Abar = (A_p + A_p^T) / 2; the unnormalized
   Laplacian L = D - Abar with D_ii = sum_j Abar_ij; the eigengaps e_i =
   lambda_i+1 - lambda_i of the ascending eigenvalues of L; the normalized maximum
   eigengap g_p = max_i e_i / (lambda_N + eps); the ratio r(p) = p / g_p; p_hat =
   argmin_p r(p); the speaker count k = argmax_i e_i at p_hat. Spectral clustering
   runs k-means (kmeans.py) on the eigenvectors of the k smallest eigenvalues.
2) NeMo 3.0.0's offline clustering diarizer (nemo/collections/asr/parts/utils/
   offline_clustering.py), whose choices are kept: eps 3.5e-4 added to each norm,
   diagonal 1, A min-max scaled to [0, 1]; at most `sparse_search_volume` p values
   up to max(floor(0.15 N), 2); r(p) as (p / N) / g_p; the eigengap searched among
   the first `max_num_speakers` gaps; multi-scale A = sum_s w_s A_s.
Average-linkage AHC, the simple baseline, is in agglomerative.py.

Differs from NeMo by default; `NEMO_SETTINGS` restores each point.
- float32 embeddings (NeMo rounds them to float16 first: `half_precision`). The
  two affinities differ by up to 1.5e-4.
- No random anchor embeddings for short sessions (NeMo's getEnhancedSpeakerCount
  when N <= enhanced_count_thres=40: 16 speakers for 3 on a 30-segment session).
  NME-SC itself counts them, with three changes that matter when N is small:
  `min_p=3`: p = 1 keeps no edge and p = 2 a nearest-neighbour forest, which
  breaks a speaker into pieces that the eigengap counts as speakers; the search
  runs over [min_p, max(floor(0.15 N), min_p + 1)] (NeMo: min_p = 1).
  `fix_disconnected=False`: p_hat is the paper's argmin r(p). NeMo replaces a
  disconnected graph at p_hat (`getMinimumConnection`), which well-separated
  speakers give, so there it ends on the largest p (all four NeMo test cases).
  `min_cluster_size=3`: while a cluster of the k-means has fewer segments, k - 1.
"""

import math

import torch

from minispeech.diarization.agglomerative import agglomerative
from minispeech.diarization.kmeans import kmeans

NEMO_EPS = 3.5e-4  # added to each embedding norm in NeMo's cos_similarity
# cluster_embeddings(embs, **NEMO_SETTINGS) is NeMo's SpeakerClustering.forward_infer
NEMO_SETTINGS = dict(
    half_precision=True,
    min_p=1,
    fix_disconnected=True,
    min_cluster_size=1,
    enhanced_count_thres=40,
)


# --- 1. affinity ------------------------------------------------------------------
def cosine_affinity(
    embs: torch.Tensor, eps: float = NEMO_EPS, half_precision: bool = False
) -> torch.Tensor:
    """A: cosine similarity (eps added to each norm, diagonal 1), min-max scaled to
    [0, 1] over the whole matrix (NeMo's getCosAffinityMatrix). (N, D) -> (N, N).

    half_precision rounds the embeddings to float16 first, as NeMo's multi-scale
    path (getMultiScaleCosAffinityMatrix) does; the arithmetic stays float32."""
    assert embs.ndim == 2 and embs.shape[0] > 1, f"need (N>1, D), got {embs.shape}"
    embs = embs.half().float() if half_precision else embs.float()
    unit = embs / (embs.norm(dim=1, keepdim=True) + eps)  # (N, D)
    sim = (unit @ unit.T).fill_diagonal_(1.0)  # (N, N)
    return (sim - sim.min()) / (sim.max() - sim.min())


def multiscale_affinity(
    affinities: list[torch.Tensor], weights: list[float] | None = None
) -> torch.Tensor:
    """sum_s w_s A_s over scales already mapped to the base segments (S of (N, N)).

    Equal weights 1/S by default. NeMo's configs use [1, 1, 1, 1, 1], which only
    multiplies A by S; p-neighbour binarization does not see that factor."""
    if weights is None:
        weights = [1.0 / len(affinities)] * len(affinities)
    assert len(weights) == len(affinities), (len(weights), len(affinities))
    return sum(w * a for w, a in zip(weights, affinities))  # (N, N)


# --- 2. graph, Laplacian, eigengap --------------------------------------------------
def knn_graph(affinity: torch.Tensor, p: int) -> torch.Tensor:
    """Abar = (A_p + A_p^T) / 2; column i of A_p holds 1 at the p largest entries of
    row i of A, itself included (NeMo's getAffinityGraphMat). (N, N) -> (N, N)."""
    n = affinity.shape[0]
    neighbours = torch.argsort(affinity, dim=1, descending=True)[:, :p]  # (N, p)
    binary = torch.zeros(n, n)
    binary[neighbours.T, torch.arange(n)] = 1.0  # at [neighbour, i], as NeMo
    return 0.5 * (binary + binary.T)  # entries in {0, 0.5, 1}


def laplacian(graph: torch.Tensor) -> torch.Tensor:
    """L = D - W, W the graph without self loops, D_ii = sum_j |W_ij|: (N, N)."""
    weights = graph.clone().fill_diagonal_(0.0)
    return torch.diag(weights.abs().sum(1)) - weights


def is_connected(graph: torch.Tensor) -> bool:
    """True when every node is reachable from node 0 (breadth-first, a layer a step)."""
    edges = graph > 0  # (N, N)
    reached = torch.zeros(graph.shape[0], dtype=torch.bool)
    reached[0] = True
    while True:
        grown = reached | edges[reached].any(0)  # add the neighbours of the set
        if bool((grown == reached).all()):
            return bool(reached.all())
        reached = grown


def eigengap_count(graph: torch.Tensor, max_num_speakers: int) -> tuple[int, float]:
    """(k, g_p): k = 1 + argmax_i e_i over the first max_num_speakers gaps (k
    near-zero eigenvalues, then the jump) and g_p = e_k / (lambda_N + 1e-10)."""
    lambdas = torch.linalg.eigvalsh(laplacian(graph).float())  # (N,) ascending
    gaps = lambdas[1:] - lambdas[:-1]  # (N-1,) e_i
    k = int(torch.argmax(gaps[:max_num_speakers]))
    return k + 1, float(gaps[k]) / (float(lambdas[-1]) + 1e-10)


# --- 3. NME analysis: p_hat and the speaker count ----------------------------------
def p_values(
    n: int,
    max_rp_threshold: float = 0.15,
    sparse_search_volume: int = 30,
    min_p: int = 3,
) -> list[int]:
    """The p searched: at most `sparse_search_volume` values spread evenly over
    [min_p, max(floor(max_rp_threshold * N), min_p + 1)] (NeMo's getPvalueList has
    min_p = 1: at least two values, 1 and 2)."""
    p_max = max(int(math.floor(n * max_rp_threshold)), min_p + 1)
    steps = min(p_max - min_p + 1, max(sparse_search_volume, 2))
    return torch.linspace(min_p, p_max, steps).int().tolist()  # truncated, as NeMo


def minimum_connection(affinity: torch.Tensor, candidates: list[int]) -> int:
    """NeMo's getMinimumConnection: walk the p list and stop once the graph of the
    previous p (p=1 for the first) is connected, else take the last p. Since it
    tests the previous p, it returns one step past the first connected p."""
    previous = knn_graph(affinity, 1)
    for p in candidates:
        connected = is_connected(previous)
        previous = knn_graph(affinity, p)
        if connected:
            return p
    return candidates[-1]


def nmesc(
    affinity: torch.Tensor,
    max_num_speakers: int = 8,
    max_rp_threshold: float = 0.15,
    sparse_search_volume: int = 30,
    nme_mat_size: int = 512,
    min_p: int = 3,
    fix_disconnected: bool = False,
) -> tuple[int, int]:
    """NME analysis of A (N, N) -> (speaker count k, p_hat).

    1) subsample A with a stride of N // nme_mat_size (NeMo's cost cap),
    2) for each candidate p: Abar_p, its count k_p and r(p) = (p / N) / g_p,
    3) p_hat = argmin r(p), replaced as NeMo when its graph is disconnected and
       fix_disconnected; the count is k_p_hat."""
    assert affinity.ndim == 2 and affinity.shape[0] == affinity.shape[1], affinity.shape
    stride = max(1, affinity.shape[0] // nme_mat_size)
    sub = affinity[::stride, ::stride]  # (N', N')
    n = sub.shape[0]
    candidates = p_values(n, max_rp_threshold, sparse_search_volume, min_p)
    counts, ratios = {}, []
    for p in candidates:
        counts[p], g_p = eigengap_count(knn_graph(sub, p), max_num_speakers)
        ratios.append((p / n) / (g_p + 1e-10))
    p_hat = candidates[ratios.index(min(ratios))]
    if fix_disconnected and not is_connected(knn_graph(sub, p_hat)):
        p_hat = minimum_connection(sub, candidates)
    return counts[p_hat], stride * p_hat


# --- 4. spectral clustering ---------------------------------------------------------
def spectral_embedding(graph: torch.Tensor, k: int) -> torch.Tensor:
    """Eigenvectors of L for its k smallest eigenvalues: (N, N) -> (N, k)."""
    _, vectors = torch.linalg.eigh(laplacian(graph).float())  # ascending eigenvalues
    return vectors[:, :k]  # (N, k)


def spectral_clustering(
    affinity: torch.Tensor,
    num_speakers: int | None = None,
    max_num_speakers: int = 8,
    seed: int = 0,
    max_rp_threshold: float = 0.15,
    sparse_search_volume: int = 30,
    min_p: int = 3,
    fix_disconnected: bool = False,
    min_cluster_size: int = 3,
    min_samples_for_nmesc: int = 6,
) -> torch.Tensor:
    """NME-SC: A (N, N) -> speaker labels (N,) in [0, k).

    An oracle `num_speakers` fixes k; NME analysis still picks p, with the eigengap
    searched among the first num_speakers gaps (as NeMo). As NeMo, a session of at
    most `min_samples_for_nmesc` segments takes the largest p of the search for the
    count and clusters A itself rather than a graph."""
    n = affinity.shape[0]
    if n == 1:
        return torch.zeros(1, dtype=torch.long)
    max_k = num_speakers or max_num_speakers
    if n > min_samples_for_nmesc:
        k, p = nmesc(
            affinity,
            max_k,
            max_rp_threshold,
            sparse_search_volume,
            min_p=min_p,
            fix_disconnected=fix_disconnected,
        )
        graph = knn_graph(affinity, p)
    else:
        p = p_values(n, max_rp_threshold, sparse_search_volume, min_p)[-1]
        k, graph = eigengap_count(knn_graph(affinity, p), max_k)[0], affinity
    if num_speakers:
        return kmeans(spectral_embedding(graph, num_speakers), num_speakers, seed)
    embedding = spectral_embedding(graph, k)  # (N, k)
    while True:  # k - 1 while a cluster has fewer than min_cluster_size segments
        labels = kmeans(embedding[:, :k], k, seed)
        if k == 1 or torch.bincount(labels, minlength=k).min() >= min_cluster_size:
            return labels
        k -= 1


# --- 5. NeMo's anchor count for short sessions (off by default) --------------------
def anchor_speaker_count(
    embs: torch.Tensor,
    random_test_count: int = 5,
    anchor_spk_n: int = 3,
    anchor_sample_n: int = 10,
    sigma: float = 50.0,
) -> int:
    """NeMo's getEnhancedSpeakerCount: add `anchor_spk_n` made-up speakers of
    `anchor_sample_n` embeddings each (a random centre + sigma * noise scaled by the
    per-dimension std of embs), count with NME-SC (NeMo's settings), subtract the
    anchors; the most frequent count over `random_test_count` seeds (torch RNG)."""
    n, d = embs.shape  # (N, D)
    std = embs.std(0)  # (D,)
    counts = []
    for seed in range(random_test_count):
        generator = torch.Generator().manual_seed(seed)
        anchors = []
        for _ in range(anchor_spk_n):
            centre = torch.randn(1, d, generator=generator)  # (1, D)
            noise = torch.randn(anchor_sample_n, d, generator=generator)  # (n_a, D)
            noise = noise / noise.abs().max(1, keepdim=True).values * std
            anchors.append(centre + sigma * noise)
        augmented = torch.cat(anchors + [embs])  # (anchor_spk_n * n_a + N, D)
        k, _ = nmesc(
            cosine_affinity(augmented),
            max_num_speakers=n,
            sparse_search_volume=10,
            nme_mat_size=300,
            min_p=1,
            fix_disconnected=True,
        )
        counts.append(k)
    return max(int(torch.mode(torch.tensor(counts)).values) - anchor_spk_n, 1)


# --- 6. the entry point -------------------------------------------------------------
def cluster_embeddings(
    embs: torch.Tensor | list[torch.Tensor],
    num_speakers: int | None = None,
    max_num_speakers: int = 8,
    weights: list[float] | None = None,
    method: str = "nmesc",
    threshold: float = 0.5,
    seed: int = 0,
    half_precision: bool = False,
    min_p: int = 3,
    fix_disconnected: bool = False,
    min_cluster_size: int = 3,
    enhanced_count_thres: int = 0,
    max_rp_threshold: float = 0.15,
) -> torch.Tensor:
    """Speaker labels (N,) for segment embeddings (N, D), or for a list of per-scale
    embeddings each (N, D_s) already mapped to the N base-scale segments.

    method "nmesc": multi-scale affinity sum_s w_s A_s, then NME-SC. "ahc": average
    linkage on the weighted mean cosine similarity, merging while it is >= threshold
    (or down to num_speakers). max_rp_threshold: the p search of NME-SC goes up to
    that fraction of N. enhanced_count_thres: NeMo's rule, the anchor count
    when N <= max(enhanced_count_thres, 6) and no oracle; 0 turns it off. That count
    then fixes k like an oracle, so the p search looks at the first k gaps where
    NeMo looks at max_num_speakers (the same p on spk3_n30)."""
    scales = [embs] if isinstance(embs, torch.Tensor) else list(embs)
    n = scales[-1].shape[0]
    assert all(e.ndim == 2 and e.shape[0] == n for e in scales), [
        tuple(e.shape) for e in scales
    ]
    if n == 1:
        return torch.zeros(1, dtype=torch.long)
    if method == "ahc":
        return agglomerative(scales, threshold, num_speakers, weights)
    assert method == "nmesc", f"method must be 'nmesc' or 'ahc', got {method!r}"
    affinities = [cosine_affinity(e, half_precision=half_precision) for e in scales]
    affinity = multiscale_affinity(affinities, weights)  # (N, N)
    short = n <= max(enhanced_count_thres, 6)
    if enhanced_count_thres > 0 and short and num_speakers is None:
        num_speakers = anchor_speaker_count(scales[-1])
    return spectral_clustering(
        affinity,
        num_speakers,
        max_num_speakers,
        seed,
        max_rp_threshold=max_rp_threshold,
        min_p=min_p,
        fix_disconnected=fix_disconnected,
        min_cluster_size=min_cluster_size,
    )
