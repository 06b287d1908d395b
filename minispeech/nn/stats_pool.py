"""Statistics pooling over the valid frames of a padded batch (NeMo's StatsPoolLayer).

- `tap`: temporal average pooling, mu = (1/N) sum_t x_t over the N valid frames.
- `xvector`: statistics pooling, Snyder et al. 2018, "X-vectors: Robust DNN
  Embeddings for Speaker Recognition" (ICASSP): [mu, sigma] with the
  unbiased sigma = sqrt(max(sum_t (x_t - mu)^2 / (N - 1), 1e-10)).
Differs from NeMo: `xvector` with a one-frame utterance divides by max(N - 1, 1)
(NeMo divides by 0). Shared by the speaker heads and the SpeechLM adapter's summary.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class StatsPoolLayer(nn.Module):
    """x (B, C, T), lens -> (B, 2C) [mean, unbiased std] (`xvector`) or (B, C)."""

    def __init__(self, feat_in: int, pool_mode: str = "xvector"):
        super().__init__()
        if pool_mode not in ("xvector", "tap"):
            raise ValueError(f"pool_mode {pool_mode!r}: use 'xvector' or 'tap'")
        self.pool_mode = pool_mode
        self.feat_in = 2 * feat_in if pool_mode == "xvector" else feat_in

    def forward(self, x: Tensor, lens: Tensor) -> Tensor:
        valid = torch.arange(x.shape[-1], device=x.device) < lens[:, None]  # (B, T)
        valid = valid.unsqueeze(1)  # (B, 1, T)
        n = lens[:, None].to(x.dtype)  # (B, 1)
        x = x * valid
        mean = x.sum(-1) / n  # (B, C)
        if self.pool_mode == "tap":
            return mean
        centred = (x - mean[:, :, None]) * valid  # (B, C, T)
        var = centred.pow(2).sum(-1) / (n - 1).clamp_min(1)  # (B, C), N - 1
        return torch.cat([mean, var.clamp_min(1e-10).sqrt()], dim=-1)  # (B, 2C)
