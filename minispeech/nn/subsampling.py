"""Convolutional subsampling in time (and frequency) before the encoder layers.

`striding`: Dong et al. 2018, "Speech-Transformer", ICASSP (no arXiv id): log2(factor)
stacked Conv2d(kernel 3, stride 2, padding 1) + ReLU on the (T, M) feature image, as the
Conformer (Gulati et al. 2020, arXiv:2005.08100, Fig. 1 "Convolution Subsampling") uses
with factor 4. `dw_striding`: Rekesh et al. 2023, "Fast Conformer", arXiv:2305.05084,
Sec. 3.1: the first stage is a full Conv2d, the later ones are depthwise-separable
(depthwise 3x3 stride 2 then pointwise 1x1), with `conv_channels` (256 in the paper)
channels; factor 8 there.

Each stride-2 stage maps a length L to floor((L + 2*1 - 3) / 2) + 1 = floor((L - 1) / 2)
+ 1, in time and in frequency; the C x M' image is flattened and projected to D by
`out`.

Differences from the papers: as in NeMo, a padded batch gives the same valid frames as
one item alone: frames past each item's length are zeroed in the input and in every
convolution's output, in place (NeMo zeroes every convolution's input instead: the
same values, one copy more per convolution). Layer indices in `conv` (ReLUs
included) match NeMo's `pre_encode.conv.<i>` names.

Speed: the convolutions run in the channels-last memory layout (B, T, M, C in memory;
weights too), which oneDNN's CPU kernels prefer: on 2 CPU threads this stage's forward
plus backward takes 0.27 s instead of 0.33 s in the Conformer-CTC small shape, 0.05
instead of 0.08 s in the main job's. Only the layout changes, not a value
(`benchmarks/subsampling.py`; a test compares with the default layout). The in-place
masks and ReLUs save another 11% (striding) to 18% (dw_striding) of this stage.
"""

import math

import torch
from torch import nn

SUBSAMPLINGS = ("striding", "dw_striding")


def subsampled_length(lens: torch.Tensor, n_stages: int) -> torch.Tensor:
    """Length after n stride-2 stages (kernel 3, padding 1): L -> (L - 1) // 2 + 1."""
    for _ in range(n_stages):
        lens = torch.div(lens - 1, 2, rounding_mode="floor") + 1
    return lens


def _conv(
    c_in: int, c_out: int, kernel: int, stride: int, groups: int = 1
) -> nn.Conv2d:
    return nn.Conv2d(
        c_in, c_out, kernel, stride=stride, padding=kernel // 2, groups=groups
    )


class ConvSubsampling(nn.Module):
    """(B, T, M) features -> (B, T', D), T' = T / factor (rounded as above)."""

    def __init__(
        self,
        feat_in: int,
        feat_out: int,
        subsampling: str = "striding",
        subsampling_factor: int = 4,
        conv_channels: int = 256,
    ):
        super().__init__()
        n_stages = int(math.log2(subsampling_factor))
        if subsampling not in SUBSAMPLINGS:
            raise ValueError(
                f"subsampling must be one of {SUBSAMPLINGS}, got {subsampling!r}"
            )
        if subsampling_factor < 2 or 2**n_stages != subsampling_factor:
            raise ValueError(
                "subsampling_factor must be a power of 2 >= 2, "
                f"got {subsampling_factor}"
            )
        self.n_stages = n_stages
        layers = [_conv(1, conv_channels, 3, 2), nn.ReLU(inplace=True)]
        for _ in range(n_stages - 1):
            if subsampling == "striding":
                layers += [
                    _conv(conv_channels, conv_channels, 3, 2),
                    nn.ReLU(inplace=True),
                ]
            else:  # depthwise 3x3 stride 2, then pointwise 1x1
                layers += [
                    _conv(conv_channels, conv_channels, 3, 2, groups=conv_channels)
                ]
                layers += [
                    _conv(conv_channels, conv_channels, 1, 1),
                    nn.ReLU(inplace=True),
                ]
        self.conv = nn.Sequential(*layers)
        self.set_memory_format(torch.channels_last)
        freq_out = int(subsampled_length(torch.tensor(feat_in), n_stages))  # M'
        self.out = nn.Linear(conv_channels * freq_out, feat_out)

    def set_memory_format(self, memory_format: torch.memory_format) -> None:
        """The layout of the convolutions' weights and activations (values are the
        same in every layout). It persists through .to(device) and load_state_dict."""
        self.memory_format = memory_format
        self.conv.to(memory_format=memory_format)

    def output_length(self, lens: torch.Tensor) -> torch.Tensor:
        """Valid output frames for input lengths (B,) -> (B,)."""
        return subsampled_length(lens, self.n_stages)

    def forward(
        self, x: torch.Tensor, lens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, M), lens (B,) -> (B, T', D), lens (B,)."""
        assert x.dim() == 3, f"expected (B, T, M) features, got {tuple(x.shape)}"
        x = x.unsqueeze(1)  # (B, 1, T, M): one input channel
        # no padding anywhere when every item has all T frames (batch 1 at inference):
        # then every mask below is all ones, and skipping them changes nothing
        padded = bool((lens < x.size(2)).any())
        if padded:
            x = x * _valid_frames(x, lens)  # a new tensor: the caller's stays as it is
        x = x.contiguous(memory_format=self.memory_format)
        for layer in self.conv:
            x = layer(x)  # a stride-2 conv: (B, C, T, M) -> (B, C, T/2, M/2)
            if isinstance(layer, nn.Conv2d):
                if layer.stride[0] == 2:
                    lens = subsampled_length(lens, 1)
                # padding must not leak into valid frames: zero the conv's output
                # past each length, in place (the conv keeps its input, not its
                # output, for backward); ReLU keeps the zeros
                if padded:
                    x = x.mul_(_valid_frames(x, lens))
        b, c, t, f = x.shape
        x = x.transpose(1, 2).reshape(b, t, c * f)  # (B, T', C*M'), C-major
        return self.out(x), lens  # (B, T', D)


def _valid_frames(x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """(B, 1, T, 1) of x's dtype: 1 at frames t < lens[b] of x (B, C, T, M), else 0."""
    valid = torch.arange(x.size(2), device=x.device) < lens.unsqueeze(1)  # (B, T)
    return valid[:, None, :, None].to(x.dtype)
