"""CTC compression: one vector per recognized label instead of one per frame.

Gaido et al. 2021, "CTC-based Compression for Direct Speech Translation" (EACL,
arXiv:2102.01578, Sec. 3): a CTC head labels each encoder frame with its most
probable token; consecutive frames with the same label form one run, and each run is
replaced by the average of its frames,
    h'_j = (1 / |R_j|) sum_{t in R_j} h_t,    R_j = the j-th run of argmax labels.
Wu et al. 2023 ("On decoder-only architecture for speech-to-text and large language
model integration", arXiv:2307.03917, Sec. 3.2) feed an LM that way and also drop the
runs labelled blank ("drop_blank"): what is left is about one vector per character or
word piece, so the LM reads a sequence shaped like text and far shorter than the audio.
Two runs with the same label and a blank between them stay two vectors (the "l" "l"
of "hello"). An item whose every frame is blank keeps one vector, the mean of all its
frames, so no sequence is empty.
"""

from __future__ import annotations

import torch

MODES = ("none", "merge", "drop_blank")


def ctc_compress(
    x: torch.Tensor, labels: torch.Tensor, lens: torch.Tensor, blank: int, mode: str
):
    """x (B, T, D), labels (B, T) argmax ids, lens (B,) -> (B, J, D) run means, (B,)
    run counts J_b; `mode` "merge" keeps blank runs, "drop_blank" removes them."""
    if mode not in MODES[1:]:
        raise ValueError(f"ctc_compress: one of {MODES}, not {mode!r}")
    n_batch, n_frames, dim = x.shape
    valid = torch.arange(n_frames, device=x.device) < lens.unsqueeze(1)  # (B, T)
    starts = torch.ones_like(valid)
    starts[:, 1:] = labels[:, 1:] != labels[:, :-1]  # (B, T) first frame of a run
    keep = valid & (labels != blank) if mode == "drop_blank" else valid  # (B, T)
    empty = ~keep.any(1, keepdim=True)  # (B, 1) every frame blank
    keep = torch.where(empty, valid, keep)  # such an item: one run of all its frames
    starts = torch.where(empty, torch.zeros_like(starts), starts & keep)
    starts[:, 0] |= empty[:, 0] & valid[:, 0]
    run = (starts.cumsum(1) - 1).clamp_min(0)  # (B, T) index of the frame's run
    counts = starts.sum(1)  # (B,)
    n_runs = max(int(counts.max()), 1)
    index = torch.where(keep, run, n_runs)  # dropped frames go to a spare slot
    sums = x.new_zeros(n_batch, n_runs + 1, dim)  # (B, J + 1, D)
    sums.scatter_add_(1, index.unsqueeze(-1).expand(-1, -1, dim), x)
    sizes = x.new_zeros(n_batch, n_runs + 1)
    sizes.scatter_add_(1, index, keep.to(x.dtype))  # (B, J + 1)
    means = sums[:, :n_runs] / sizes[:, :n_runs].clamp_min(1).unsqueeze(-1)
    return means, counts  # (B, J, D), (B,)
