"""Pooling over time and the embedding head: NeMo's StatsPoolLayer (`tap`,
`xvector`: in nn/stats_pool.py, shared with the SpeechLM adapter),
AttentivePoolLayer and SpeakerDecoder.

- `attention`: channel- and context-dependent attentive statistics pooling,
  Desplanques et al. 2020 (ECAPA-TDNN, arXiv:2005.07143) Sec. 3.1, Eq. 1-4:
      e_t = V tanh(TDNN([x_t; mu; sigma])) + k    (TDNN: 1x1 conv, ReLU, BN; V: 1x1)
      alpha_t = softmax_t(e_t)   (padding frames get -inf)
      mu~ = sum_t alpha_t x_t,  sigma~ = sqrt(max(sum_t alpha_t (x_t - mu~)^2, 1e-10))
  with the global context mu, sigma the *biased* (divide by N) statistics.

SpeakerDecoder (the TitaNet decoder, arXiv:2110.04410): pooling, then embedding
layers, then a final linear layer over the speakers. With `attention` pooling an
embedding layer is BatchNorm -> 1x1 conv; with `xvector`/`tap` it is Linear ->
BatchNorm (no affine) -> ReLU. The embedding is the output of the first `emb_id = 2`
modules of the LAST layer (the conv output; before the ReLU), as NeMo's. `angular`:
the final layer has no bias and sees the L2-normalised last-layer output, so a
logit is W_c . x/|x| (W_c is NOT normalised: NeMo's normalisation line is a no-op).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from minispeech.nn.stats_pool import StatsPoolLayer  # noqa: F401 (speaker API)
from minispeech.speaker.ecapa import TDNNModule
from minispeech.speaker.titanet import valid_frames

POOL_MODES = ("xvector", "tap", "attention")


def weighted_stats(x: Tensor, weights: Tensor, eps: float = 1e-10):
    """x (B, C, T), weights (B, C or 1, T) summing to 1 over T -> mean, std (B, C)."""
    mean = (weights * x).sum(-1)  # (B, C)
    var = (weights * (x - mean[:, :, None]).pow(2)).sum(-1)  # (B, C)
    return mean, var.clamp_min(eps).sqrt()


class AttentivePoolLayer(nn.Module):
    """x (B, C, T), lens -> (B, 2C, 1): attentive statistics (module doc, 1-7)."""

    def __init__(self, inp_filters: int, attention_channels: int = 128):
        super().__init__()
        self.feat_in = 2 * inp_filters
        self.attention_layer = nn.Sequential(
            TDNNModule(3 * inp_filters, attention_channels, 1),
            nn.Tanh(),
            nn.Conv1d(attention_channels, inp_filters, 1),
        )

    def forward(self, x: Tensor, lens: Tensor) -> Tensor:
        n_frames = x.shape[-1]
        valid = valid_frames(lens, n_frames)  # (B, 1, T)
        # 1) global context: biased mean and std over the valid frames
        uniform = valid / lens[:, None, None].to(x.dtype)  # (B, 1, T), sums to 1
        mean, std = weighted_stats(x, uniform)  # (B, C) each
        # 2) [x; mu; sigma] -> 3) TDNN -> 4) tanh, conv: one score per channel/frame
        context = [mean[:, :, None].expand_as(x), std[:, :, None].expand_as(x)]
        e = self.attention_layer(torch.cat([x, *context], dim=1))  # (B, C, T)
        # 5) softmax over the valid frames
        alpha = e.masked_fill(~valid, float("-inf")).softmax(dim=-1)  # (B, C, T)
        # 6) attention-weighted mean and std; 7) [mu~; sigma~]
        mu, sigma = weighted_stats(x, alpha)  # (B, C) each
        return torch.cat([mu, sigma], dim=1)[:, :, None]  # (B, 2C, 1)


class SpeakerDecoder(nn.Module):
    """enc (B, C, T), lens -> (logits (B, n_classes), embs (B, E)): NeMo's keys."""

    emb_id = 2  # the embedding is the output of the last layer's first 2 modules

    def __init__(
        self,
        feat_in: int,
        num_classes: int,
        emb_sizes: int | list = 256,
        pool_mode: str = "xvector",
        angular: bool = False,
        attention_channels: int = 128,
    ):
        super().__init__()
        if pool_mode not in POOL_MODES:
            raise ValueError(f"pool_mode {pool_mode!r}: use one of {POOL_MODES}")
        self.pool_mode, self.angular = pool_mode, angular
        if pool_mode == "attention":
            self._pooling = AttentivePoolLayer(feat_in, attention_channels)
        else:
            self._pooling = StatsPoolLayer(feat_in, pool_mode)
        sizes = [emb_sizes] if isinstance(emb_sizes, int) else list(emb_sizes)
        widths = [self._pooling.feat_in] + [int(s) for s in sizes]
        self.emb_layers = nn.ModuleList(
            self.embedding_layer(a, b) for a, b in zip(widths[:-1], widths[1:])
        )
        self.final = nn.Linear(widths[-1], num_classes, bias=not angular)

    def embedding_layer(self, c_in: int, c_out: int) -> nn.Sequential:
        if self.pool_mode == "attention":  # on (B, 2C, 1)
            return nn.Sequential(nn.BatchNorm1d(c_in), nn.Conv1d(c_in, c_out, 1))
        return nn.Sequential(  # on (B, 2C) or (B, C)
            nn.Linear(c_in, c_out), nn.BatchNorm1d(c_out, affine=False), nn.ReLU()
        )

    def forward(self, enc: Tensor, enc_lens: Tensor) -> tuple[Tensor, Tensor]:
        assert enc.dim() == 3, f"enc must be (B, C, T), got {tuple(enc.shape)}"
        x = self._pooling(enc, enc_lens)  # (B, 2C, 1) or (B, 2C) or (B, C)
        for layer in self.emb_layers:
            emb = layer[: self.emb_id](x)  # (B, E[, 1])
            x = layer(x)  # (B, E[, 1])
        x, emb = x.reshape(len(x), -1), emb.reshape(len(emb), -1)  # (B, E)
        if self.angular:
            x = nn.functional.normalize(x, p=2, dim=1)  # cosines against W's rows
        return self.final(x), emb  # (B, n_classes), (B, E)
