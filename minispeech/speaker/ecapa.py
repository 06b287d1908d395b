"""ECAPA-TDNN encoder as NeMo's ECAPAEncoder builds it (ecapa_tdnn.yaml).

Desplanques, Thienpondt & Demuynck 2020, "ECAPA-TDNN: Emphasized Channel Attention,
Propagation and Aggregation in TDNN Based Speaker Verification", arXiv:2005.07143.
Sec. 3 / Fig. 2: a TDNN layer (conv, ReLU, BN), then SE-Res2 blocks
    h = x + SE(TDNN_1x1(BN(relu(conv_k(TDNN_1x1(x))))))
with squeeze-excitation over the utterance (Sec. 3.2, Eq. 5-6; the mean over the
valid frames),
then multi-layer feature aggregation (Sec. 3.3): the SE blocks' outputs are
concatenated over channels and mixed by one more TDNN layer.
Differs from the paper, as NeMo's ECAPAEncoder does ("modified ECAPA without Res2Net",
Dawalatabad et al. 2021, arXiv:2104.01466): the middle conv is one grouped conv with
`scale` groups instead of the Res2Net hierarchy of split convs, and the SE bottleneck
is 128 channels with a BatchNorm after its ReLU. State-dict keys are NeMo's
(`layers.0.conv_layer`, `layers.{i}.group_tdnn_block.{0,1,3,4}`,
`layers.{i}.se_layer.se_layer.{0,2,3}`, `feature_agg`), inferred from NeMo's source.
`mask_padding=True` (minispeech's default) zeroes the frames past each length before
every conv wider than one frame, so a batch gives each item's single-utterance
result; NeMo does not (its padded frames leak into the last valid frames), and the
importer sets False to reproduce NeMo.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from minispeech.speaker.titanet import valid_frames


class TDNNModule(nn.Module):
    """Conv1d ('same' padding) -> ReLU -> BatchNorm, NeMo's TDNNModule."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int = 1, dilation: int = 1):
        super().__init__()
        padding = (kernel_size // 2) * dilation
        self.conv_layer = nn.Conv1d(
            c_in, c_out, kernel_size, dilation=dilation, padding=padding
        )
        self.activation = nn.ReLU()
        self.bn = nn.BatchNorm1d(c_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.activation(self.conv_layer(x)))  # (B, C_out, T)


class MaskedSEModule(nn.Module):
    """Eq. 5-6: x * sigmoid(W2 BN(relu(W1 mean_t x))), mean over the valid frames."""

    def __init__(self, channels: int, se_channels: int = 128):
        super().__init__()
        self.se_layer = nn.Sequential(
            nn.Conv1d(channels, se_channels, 1),
            nn.ReLU(),
            nn.BatchNorm1d(se_channels),
            nn.Conv1d(se_channels, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor, lens: Tensor) -> Tensor:
        valid = valid_frames(lens, x.shape[-1])  # (B, 1, T)
        z = (x * valid).sum(-1, keepdim=True) / valid.sum(-1, keepdim=True)  # (B, C, 1)
        return self.se_layer(z) * x  # (B, C, T)


class TDNNSEModule(nn.Module):
    """One SE block: 1x1 TDNN, grouped k-conv, ReLU, BN, 1x1 TDNN, SE, + input."""

    def __init__(
        self, c_in, c_out, group_scale=8, se_channels=128, kernel_size=1, dilation=1
    ):
        super().__init__()
        padding = (kernel_size // 2) * dilation
        group_conv = nn.Conv1d(
            c_out,
            c_out,
            kernel_size,
            dilation=dilation,
            padding=padding,
            groups=group_scale,
        )
        self.group_tdnn_block = nn.Sequential(
            TDNNModule(c_in, c_out, 1),
            group_conv,
            nn.ReLU(),
            nn.BatchNorm1d(c_out),
            TDNNModule(c_out, c_out, 1),
        )
        self.se_layer = MaskedSEModule(c_out, se_channels)

    def forward(self, x: Tensor, lens: Tensor, mask_padding: bool) -> Tensor:
        h = self.group_tdnn_block[0](x)  # (B, C, T)
        if mask_padding:
            h = h * valid_frames(lens, h.shape[-1])
        h = self.group_tdnn_block[1:](h)  # (B, C, T)
        return self.se_layer(h, lens) + x


class ECAPAEncoder(nn.Module):
    """feats (B, M, T), lens -> (enc (B, filters[-1], T), lens).

    filters[0] is the first TDNN's width, filters[1:-1] the SE blocks' (equal to
    filters[0]: the residual needs it), filters[-1] the aggregation layer's output
    (its input is the concatenation of the SE blocks' outputs).
    """

    def __init__(
        self,
        feat_in: int,
        filters: list,
        kernel_sizes: list,
        dilations: list,
        scale: int = 8,
        mask_padding: bool = True,
    ):
        super().__init__()
        if not len(filters) == len(kernel_sizes) == len(dilations) >= 3:
            raise ValueError(
                "ECAPAEncoder: filters, kernel_sizes and dilations need one equal "
                f"length >= 3, got {len(filters)}, {len(kernel_sizes)}, "
                f"{len(dilations)}"
            )
        self.layers = nn.ModuleList(
            [TDNNModule(feat_in, filters[0], kernel_sizes[0], dilations[0])]
        )
        for i in range(len(filters) - 2):
            block = TDNNSEModule(
                filters[i],
                filters[i + 1],
                scale,
                128,
                kernel_sizes[i + 1],
                dilations[i + 1],
            )
            self.layers.append(block)
        if len(set(filters[:-1])) != 1 or sum(filters[1:-1]) != filters[-1]:
            raise ValueError(  # residuals need equal widths; the aggregation
                "ECAPAEncoder: filters[:-1] must be equal and filters[-1] their "
                f"sum over the SE blocks (e.g. [512, 512, 512, 1024]), got {filters}"
            )
        self.feature_agg = TDNNModule(
            filters[-1], filters[-1], kernel_sizes[-1], dilations[-1]
        )
        self.mask_padding = mask_padding
        self.d_model = filters[-1]

    def forward(self, feats: Tensor, feat_lens: Tensor) -> tuple[Tensor, Tensor]:
        assert feats.dim() == 3, f"feats must be (B, M, T), got {tuple(feats.shape)}"
        x = feats
        if self.mask_padding:
            x = x * valid_frames(feat_lens, x.shape[-1])
        x = self.layers[0](x)  # (B, C, T)
        outputs = []
        for layer in self.layers[1:]:
            x = layer(x, feat_lens, self.mask_padding)  # (B, C, T)
            outputs.append(x)
        x = torch.cat(outputs, dim=1)  # (B, C * n_blocks, T)
        if self.mask_padding:
            x = x * valid_frames(feat_lens, x.shape[-1])
        return self.feature_agg(x), feat_lens  # (B, filters[-1], T)
