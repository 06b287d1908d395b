"""HiFi-GAN: the generator and the multi-period / multi-scale discriminators.

Kong, Kim & Bae 2020, "HiFi-GAN: Generative Adversarial Networks for Efficient and
High Fidelity Speech Synthesis" (arXiv:2010.05646).
- Generator (Sec. 2.2, Fig. 1): conv_pre (k 7), then per stage leaky_relu(0.1), a
  transposed conv upsampling by u (kernel k, padding (k - u) / 2) and the multi-
  receptive-field fusion (MRF): the MEAN of |k_r| residual blocks of kernels k_r and
  dilations D_r (ResBlock1: pairs of dilated and plain convs; ResBlock2, V3: single
  dilated convs); a final leaky_relu, conv_post (k 7) and tanh. Output length
  T * prod(u).
- Multi-period discriminator (Sec. 2.3, Fig. 2b): for each period p in 2, 3, 5, 7, 11,
  the wave (B, 1, S) is reflect-padded to a multiple of p and folded into (B, 1, S/p,
  p); 2-D convs with kernel (5, 1) and stride (3, 1) see every p-th sample.
- Multi-scale discriminator (Sec. 2.3, MelGAN's): 3 copies on the raw wave and on
  x2 and x4 average-pooled waves, grouped strided 1-D convs; spectral norm on the
  first, weight norm elsewhere (Sec. 2.3).
Every discriminator returns its score map and the feature map after each layer (for
the feature matching loss). Weight norm (Salimans & Kingma 2016) and spectral
norm (Miyato et al. 2018) are torch's parametrizations; state-dict keys are
`parametrizations.weight.original0/1` (NeMo's older files say `weight_g/weight_v`;
minispeech/nemo/hifigan.py maps them).
Differs from the paper: the discriminator widths and groups are arguments (defaults =
the paper's sizes, about 70 M parameters in all; a CPU recipe uses a few per cent of
that). Initialisation: torch's default conv init, then g = ||v||. The official code
and NeMo draw N(0, 0.01) *after* wrapping in weight norm, which only overwrites a
derived tensor, so their effective init is this one too (NeMo's reference file has
weight_v uniform within +-1/sqrt(fan_in), torch's default); a real N(0, 0.01) init gives
an almost silent output whose log-mel sits at the clamp guard, where the mel loss has
no gradient.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

LRELU_SLOPE = 0.1  # the paper's leaky ReLU slope inside the networks
FINAL_SLOPE = 0.01  # before conv_post: F.leaky_relu's default (official code, NeMo)
MPD_CHANNELS = (32, 128, 512, 1024, 1024)  # paper Fig. 2b
MSD_CHANNELS = (128, 128, 256, 512, 1024, 1024, 1024)  # MelGAN's, paper Sec. 2.3
MSD_GROUPS = (1, 4, 16, 16, 16, 16, 1)
MSD_KERNELS = (15, 41, 41, 41, 41, 41, 5)
MSD_STRIDES = (1, 2, 2, 4, 4, 1, 1)


def dilated_padding(kernel_size: int, dilation: int = 1) -> int:
    """'Same' padding of a dilated conv: (k d - d) / 2."""
    return (kernel_size * dilation - dilation) // 2


def weight_normed(conv: nn.Module) -> nn.Module:
    """`conv` reparametrized as w = g v / ||v|| (Salimans & Kingma 2016, Eq. 2; the
    norm over all but the first weight dimension), g = ||v|| at the start."""
    return weight_norm(conv)


class ResBlock1(nn.Module):
    """x + c2(lrelu(c1_d(lrelu(x)))) for each dilation d (paper Fig. 1, MRF block)."""

    def __init__(self, channels: int, kernel_size: int, dilations=(1, 3, 5)):
        super().__init__()

        def conv(d):
            pad = dilated_padding(kernel_size, d)
            return weight_normed(
                nn.Conv1d(channels, channels, kernel_size, dilation=d, padding=pad)
            )

        self.convs1 = nn.ModuleList(conv(d) for d in dilations)
        self.convs2 = nn.ModuleList(conv(1) for _ in dilations)

    def forward(self, x: Tensor) -> Tensor:
        for conv1, conv2 in zip(self.convs1, self.convs2):
            inner = conv1(F.leaky_relu(x, LRELU_SLOPE))  # (B, C, T)
            x = x + conv2(F.leaky_relu(inner, LRELU_SLOPE))
        return x


class ResBlock2(nn.Module):
    """x + c_d(lrelu(x)) for each dilation d (the paper's V3 generator)."""

    def __init__(self, channels: int, kernel_size: int, dilations=(1, 3)):
        super().__init__()
        self.convs = nn.ModuleList(
            weight_normed(
                nn.Conv1d(
                    channels,
                    channels,
                    kernel_size,
                    dilation=d,
                    padding=dilated_padding(kernel_size, d),
                )
            )
            for d in dilations
        )

    def forward(self, x: Tensor) -> Tensor:
        for conv in self.convs:
            x = x + conv(F.leaky_relu(x, LRELU_SLOPE))  # (B, C, T)
        return x


class HifiGanGenerator(nn.Module):
    """Mel (B, M, T) -> wave (B, 1, T * prod(upsample_rates)) in [-1, 1].

    NeMo's Generator arguments: channels halve at every stage, from
    upsample_initial_channel; stage i has one residual block per entry of
    resblock_kernel_sizes (with the dilations of resblock_dilation_sizes).
    """

    def __init__(
        self,
        resblock: int = 1,
        upsample_rates=(8, 8, 2, 2),
        upsample_kernel_sizes=(16, 16, 4, 4),
        upsample_initial_channel: int = 512,
        resblock_kernel_sizes=(3, 7, 11),
        resblock_dilation_sizes=((1, 3, 5), (1, 3, 5), (1, 3, 5)),
        initial_input_size: int = 80,
    ):
        super().__init__()
        if resblock not in (1, 2):
            raise ValueError(f"resblock must be 1 or 2, got {resblock!r}")
        if len(upsample_rates) != len(upsample_kernel_sizes):
            raise ValueError(
                "upsample_rates and upsample_kernel_sizes differ in length"
            )
        if len(resblock_kernel_sizes) != len(resblock_dilation_sizes):
            raise ValueError(
                "resblock_kernel_sizes and _dilation_sizes differ in length"
            )
        block = ResBlock1 if resblock == 1 else ResBlock2
        channels = upsample_initial_channel
        self.hop = math.prod(upsample_rates)  # samples per mel frame
        self.conv_pre = weight_normed(
            nn.Conv1d(initial_input_size, channels, 7, padding=3)
        )
        self.ups, self.resblocks = nn.ModuleList(), nn.ModuleList()
        for u, k in zip(upsample_rates, upsample_kernel_sizes):
            up = nn.ConvTranspose1d(channels, channels // 2, k, u, padding=(k - u) // 2)
            self.ups.append(weight_normed(up))  # g: one per input channel (dim 0)
            channels //= 2
            self.resblocks.append(
                nn.ModuleList(
                    block(channels, kr, dr)
                    for kr, dr in zip(resblock_kernel_sizes, resblock_dilation_sizes)
                )
            )
        self.conv_post = weight_normed(nn.Conv1d(channels, 1, 7, padding=3))

    def forward(self, x: Tensor) -> Tensor:
        assert x.dim() == 3, f"mel must be (B, M, T), got {tuple(x.shape)}"
        x = self.conv_pre(x)  # (B, M, T) -> (B, C, T)
        for up, blocks in zip(self.ups, self.resblocks):
            x = up(F.leaky_relu(x, LRELU_SLOPE))  # (B, C, T) -> (B, C/2, T u)
            x = sum(block(x) for block in blocks) / len(blocks)  # MRF: the mean
        x = self.conv_post(F.leaky_relu(x, FINAL_SLOPE))  # (B, C', T') -> (B, 1, T')
        return torch.tanh(x)


# ---------------------------------------------------------------- discriminators


def normed(conv: nn.Module, spectral: bool) -> nn.Module:
    return spectral_norm(conv) if spectral else weight_norm(conv)


class DiscriminatorP(nn.Module):
    """One period p: wave (B, 1, S) -> (score (B, N), feature maps)."""

    def __init__(
        self,
        period: int,
        channels=MPD_CHANNELS,
        kernel_size: int = 5,
        stride: int = 3,
        use_spectral_norm: bool = False,
    ):
        super().__init__()
        self.period = period
        pad, sizes = (kernel_size - 1) // 2, (1, *channels)
        self.convs = nn.ModuleList(
            normed(
                nn.Conv2d(
                    c_in,
                    c_out,
                    (kernel_size, 1),
                    (stride if i < len(channels) - 1 else 1, 1),  # last: stride 1
                    padding=(pad, 0),
                ),
                use_spectral_norm,
            )
            for i, (c_in, c_out) in enumerate(zip(sizes[:-1], sizes[1:]))
        )
        self.conv_post = normed(
            nn.Conv2d(channels[-1], 1, (3, 1), padding=(1, 0)), use_spectral_norm
        )

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        batch, _, n = x.shape
        if n % self.period:  # reflect-pad to a whole number of periods
            x = F.pad(x, (0, self.period - n % self.period), mode="reflect")
        x = x.view(batch, 1, -1, self.period)  # (B, 1, S) -> (B, 1, S/p, p)
        features = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)  # (B, C, S', p)
            features.append(x)
        x = self.conv_post(x)  # (B, 1, S', p)
        features.append(x)
        return x.flatten(1), features  # (B, S' p)


class MultiPeriodDiscriminator(nn.Module):
    """One DiscriminatorP per period: wave (B, 1, S) -> ([scores], [[features]])."""

    def __init__(self, periods=(2, 3, 5, 7, 11), channels=MPD_CHANNELS):
        super().__init__()
        self.discriminators = nn.ModuleList(
            DiscriminatorP(p, tuple(channels)) for p in periods
        )

    def forward(self, x: Tensor) -> tuple[list[Tensor], list[list[Tensor]]]:
        outputs = [d(x) for d in self.discriminators]
        return [o[0] for o in outputs], [o[1] for o in outputs]


class DiscriminatorS(nn.Module):
    """One scale: wave (B, 1, S) -> (score (B, S'), feature maps); layer i has
    `channels[i]` outputs in `groups[i]` groups (MSD_KERNELS, MSD_STRIDES)."""

    def __init__(
        self,
        channels=MSD_CHANNELS,
        groups=MSD_GROUPS,
        use_spectral_norm: bool = False,
    ):
        super().__init__()
        if not len(channels) == len(groups) == len(MSD_KERNELS):
            raise ValueError(f"channels and groups need {len(MSD_KERNELS)} entries")
        sizes = (1, *channels)
        layers = zip(sizes[:-1], sizes[1:], groups, MSD_KERNELS, MSD_STRIDES)
        convs = []
        for c_in, c_out, g, k, s in layers:
            if c_in % g or c_out % g:
                raise ValueError(f"groups={g} must divide channels {c_in} -> {c_out}")
            conv = nn.Conv1d(c_in, c_out, k, s, groups=g, padding=(k - 1) // 2)
            convs.append(normed(conv, use_spectral_norm))
        self.convs = nn.ModuleList(convs)
        self.conv_post = normed(
            nn.Conv1d(channels[-1], 1, 3, padding=1), use_spectral_norm
        )

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        features = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)  # (B, C, S')
            features.append(x)
        x = self.conv_post(x)  # (B, 1, S')
        features.append(x)
        return x.flatten(1), features  # (B, S')


class MultiScaleDiscriminator(nn.Module):
    """DiscriminatorS on the wave and on x2, x4 ... average-pooled copies (the first
    with spectral norm): wave (B, 1, S) -> ([scores], [[features]])."""

    def __init__(self, n_scales: int = 3, channels=MSD_CHANNELS, groups=MSD_GROUPS):
        super().__init__()
        self.discriminators = nn.ModuleList(
            DiscriminatorS(tuple(channels), tuple(groups), use_spectral_norm=i == 0)
            for i in range(n_scales)
        )
        self.meanpools = nn.ModuleList(
            nn.AvgPool1d(4, 2, padding=2) for _ in range(n_scales - 1)
        )

    def forward(self, x: Tensor) -> tuple[list[Tensor], list[list[Tensor]]]:
        scores, features = [], []
        for i, discriminator in enumerate(self.discriminators):
            if i > 0:
                x = self.meanpools[i - 1](x)  # (B, 1, S) -> (B, 1, S/2 + 1)
            score, maps = discriminator(x)
            scores.append(score)
            features.append(maps)
        return scores, features
