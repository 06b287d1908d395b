"""TitaNet: 1D depthwise-separable conv blocks with squeeze-excitation (NeMo's
ConvASREncoder as the titanet-*.yaml configs build it).

Koluguri, Park & Ginsburg 2022, "TitaNet: Neural Model for speaker representation
with 1D Depth-wise separable convolutions and global context", arXiv:2110.04410.
Sec. 2, Fig. 1: a prolog block, B mega blocks and an epilog block. Each mega block
repeats R sub-blocks of
    depthwise conv (kernel K, one filter per channel) -> pointwise 1x1 conv -> BN
    -> ReLU -> dropout,
the last sub-block without ReLU/dropout but followed by squeeze-excitation (Hu et al.
2018, arXiv:1709.01507, Eq. 2-4: s = sigmoid(W2 relu(W1 mean_t(x))), y = s * x) with
the mean over the valid frames only; then a residual 1x1 conv + BN is added and
ReLU + dropout close the block:
    y = relu(SE(BN(pw(dw(...x...)))) + BN(conv1x1(x)))
Masks: every conv sees its input zeroed past each item's length (NeMo's
`conv_mask: true`), so padding never leaks into the valid frames; the output past
the length is not zero (NeMo's isn't either). Stride 1 throughout: T' = T.
Differs from NeMo: only stride 1, `residual_mode: add`, batch norm and no dense
residuals (the importer refuses the rest by name). State-dict keys are NeMo's
(`encoder.{i}.mconv.{j}.conv.weight`, `encoder.{i}.res.0.{0,1}`), so TitaNet weights
import by identity. BatchNorm eps is 1e-3, as NeMo's JasperBlock.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from minispeech.nn.dropout import Dropout

ACTIVATIONS = {
    "relu": nn.ReLU,
    "selu": nn.SELU,
    "swish": nn.SiLU,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
}


def valid_frames(lens: Tensor, n_frames: int) -> Tensor:
    """(B,) lengths -> (B, 1, T) bool, True on the frames t < length."""
    frames = torch.arange(n_frames, device=lens.device)  # (T,)
    return (frames[None, :] < lens[:, None])[:, None, :]  # (B, 1, T)


class MaskedConv1d(nn.Module):
    """Conv1d with 'same' padding whose input is zeroed past each length first."""

    def __init__(self, c_in, c_out, kernel_size, dilation=1, groups=1, mask=True):
        super().__init__()
        padding = (kernel_size // 2) * dilation  # 'same' for odd kernels, stride 1
        self.conv = nn.Conv1d(
            c_in,
            c_out,
            kernel_size,
            dilation=dilation,
            padding=padding,
            groups=groups,
            bias=False,
        )
        self.mask = mask

    def forward(self, x: Tensor, lens: Tensor) -> Tensor:
        if self.mask:
            x = x * valid_frames(lens, x.shape[-1])  # (B, C, T)
        return self.conv(x)  # (B, C_out, T)


class SqueezeExcite(nn.Module):
    """Hu et al. Eq. 2-4 over the valid frames: x * sigmoid(fc(mean_t x))."""

    def __init__(self, channels: int, reduction_ratio: int = 8, activation="relu"):
        super().__init__()
        hidden = channels // reduction_ratio
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden, bias=False),
            ACTIVATIONS[activation](),
            nn.Linear(hidden, channels, bias=False),
        )

    def forward(self, x: Tensor, lens: Tensor) -> Tensor:
        x = x * valid_frames(lens, x.shape[-1])  # (B, C, T), padding zeroed
        z = x.sum(-1) / lens[:, None].to(x.dtype)  # (B, C) mean over valid frames
        s = self.fc(z).sigmoid()  # (B, C)
        return x * s[:, :, None]  # (B, C, T)


def conv_bn(c_in, c_out, kernel_size, dilation, separable, mask) -> list:
    """[depthwise, pointwise, BN] (separable) or [conv, BN]: NeMo's _get_conv_bn."""
    if separable:
        depthwise = MaskedConv1d(c_in, c_in, kernel_size, dilation, c_in, mask)
        convs = [depthwise, MaskedConv1d(c_in, c_out, 1, mask=mask)]
    else:
        convs = [MaskedConv1d(c_in, c_out, kernel_size, dilation, mask=mask)]
    return convs + [nn.BatchNorm1d(c_out, eps=1e-3, momentum=0.1)]


class JasperBlock(nn.Module):
    """One TitaNet block: `repeat` conv sub-blocks, optional SE and residual."""

    def __init__(
        self,
        c_in: int,
        filters: int,
        repeat: int = 1,
        kernel_size: int = 3,
        dilation: int = 1,
        dropout: float = 0.0,
        residual: bool = True,
        separable: bool = False,
        se: bool = False,
        se_reduction_ratio: int = 8,
        activation: str = "relu",
        conv_mask: bool = True,
    ):
        super().__init__()
        layers, width = [], c_in
        for r in range(repeat):
            layers += conv_bn(
                width, filters, kernel_size, dilation, separable, conv_mask
            )
            if r < repeat - 1:  # the last sub-block's activation comes after the sum
                layers += [ACTIVATIONS[activation](), Dropout(dropout)]
            width = filters
        if se:
            layers.append(SqueezeExcite(filters, se_reduction_ratio, activation))
        self.mconv = nn.ModuleList(layers)
        self.res = None
        if residual:  # NeMo's list of residual panes; one pane without dense mode
            pane = conv_bn(c_in, filters, 1, 1, False, conv_mask)
            self.res = nn.ModuleList([nn.ModuleList(pane)])
        self.mout = nn.Sequential(ACTIVATIONS[activation](), Dropout(dropout))

    @staticmethod
    def _run(layers, x: Tensor, lens: Tensor) -> Tensor:
        for layer in layers:
            masked = isinstance(layer, (MaskedConv1d, SqueezeExcite))
            x = layer(x, lens) if masked else layer(x)
        return x

    def forward(self, x: Tensor, lens: Tensor) -> Tensor:
        """x (B, C_in, T), lens (B,) -> (B, filters, T)."""
        out = self._run(self.mconv, x, lens)  # (B, filters, T)
        if self.res is not None:
            out = out + self._run(self.res[0], x, lens)  # (B, filters, T)
        return self.mout(out)


class TitaNetEncoder(nn.Module):
    """feats (B, M, T), lens -> (enc (B, D, T), lens): a stack of JasperBlocks.

    `jasper` is NeMo's list of block sections (filters, repeat, kernel [K],
    dilation [d], dropout, residual, separable, se, se_reduction_ratio); `stride` must
    be [1] and `se_context_size` -1 where given (full-utterance SE).
    """

    def __init__(
        self,
        feat_in: int,
        jasper: list,
        activation: str = "relu",
        conv_mask: bool = True,
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"activation {activation!r}: use one of {', '.join(ACTIVATIONS)}"
            )
        blocks, width = [], feat_in
        for k, cfg in enumerate(jasper):
            kwargs = block_kwargs(cfg, k)
            blocks.append(
                JasperBlock(width, **kwargs, activation=activation, conv_mask=conv_mask)
            )
            width = int(cfg["filters"])
        self.encoder = nn.ModuleList(blocks)
        self.d_model = width

    def forward(self, feats: Tensor, feat_lens: Tensor) -> tuple[Tensor, Tensor]:
        assert feats.dim() == 3, f"feats must be (B, M, T), got {tuple(feats.shape)}"
        x = feats
        for block in self.encoder:
            x = block(x, feat_lens)  # (B, D, T)
        return x, feat_lens


BLOCK_KEYS = (
    "filters",
    "repeat",
    "kernel",
    "dilation",
    "dropout",
    "residual",
    "separable",
    "se",
    "se_reduction_ratio",
)
# keys a block may carry only at these values (NeMo options minispeech lacks)
BLOCK_FIXED = {
    "stride": [1],
    "se_context_size": -1,
    "groups": 1,
    "heads": -1,
    "residual_mode": "add",
    "residual_dense": False,
    "kernel_size_factor": 1.0,
    "stride_last": False,
    "se_interpolation_mode": "nearest",
    "quantize": False,
}


def block_kwargs(cfg: dict, k: int) -> dict:
    """One `jasper` block section -> JasperBlock keyword arguments (checked); an
    omitted key takes NeMo's default (ConvASREncoder: no SE, not separable)."""
    problems = [
        f"{key} (unknown key)"
        for key in cfg
        if key not in BLOCK_KEYS and key not in BLOCK_FIXED
    ]
    problems += [
        f"{key}={cfg[key]!r} (only {fixed!r})"
        for key, fixed in BLOCK_FIXED.items()
        if key in cfg and _listify(cfg[key]) != _listify(fixed)
    ]
    problems += [
        f"{key} (required, missing)" for key in ("filters", "kernel") if key not in cfg
    ]
    if problems:
        raise ValueError(f"encoder.jasper[{k}]: unsupported: " + "; ".join(problems))
    out = {key: cfg[key] for key in BLOCK_KEYS if key in cfg}
    out["kernel_size"] = int(_listify(out.pop("kernel"))[0])
    out["dilation"] = int(_listify(out.pop("dilation", [1]))[0])
    return out


def _listify(value):
    return list(value) if isinstance(value, (list, tuple)) else [value]
