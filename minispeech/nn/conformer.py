"""Conformer encoder: subsampling, x-scaled relative positions, a stack of Conformer
blocks.

Gulati et al. 2020, "Conformer: Convolution-augmented Transformer for Speech
Recognition", arXiv:2005.08100, Sec. 2 and Fig. 1: SpecAugment -> convolution
subsampling -> linear -> dropout -> N Conformer blocks (conformer_block.py).
FastConformer (Rekesh et al. 2023, arXiv:2305.05084, Sec. 3) is a configuration of the
same encoder: `subsampling="dw_striding"`, `subsampling_factor=8`,
`subsampling_conv_channels=256`, `conv_kernel_size=9`.

Limited context (`att_context_size=[left, right]`, -1 = unlimited) and cache-aware
chunking (`att_context_style="chunked_limited"`) restrict which frames each frame
attends to (Noroozi et al. 2023, "Stateful Conformer with Cache-based Inference",
arXiv:2312.17279). Stochastic depth (Huang et al. 2016, arXiv:1603.09382) drops whole
layers in training with a probability that grows linearly with depth (NeMo's rule:
layers < start_layer are never dropped).

Argument names and defaults follow NeMo's `ConformerEncoder`, so a NeMo `encoder:`
section with these keys builds this module (see nemo_config.py for the keys NeMo has and
this file lacks). Differences from the paper: the output is (B, D, T') (NeMo's layout),
padded frames are masked everywhere, and `xscaling` multiplies the subsampled features
by sqrt(D).
"""

import math
from collections.abc import Callable

import torch
from torch import nn

from minispeech.nn.attention import padding_mask, self_attention_mask
from minispeech.nn.conformer_block import ConformerLayer
from minispeech.nn.positional import PositionalEncoding, RelPositionalEncoding
from minispeech.nn.subsampling import ConvSubsampling


def stochastic_depth_probs(
    n_layers: int, drop_prob: float, mode: str, start_layer: int
):
    """Per-layer drop probabilities: 0 before `start_layer`, then linear or uniform."""
    if not 0.0 <= drop_prob < 1.0:
        raise ValueError(
            f"stochastic_depth_drop_prob must be in [0, 1), got {drop_prob}"
        )
    if not 1 <= start_layer <= n_layers:
        raise ValueError(f"stochastic_depth_start_layer must be in [1, {n_layers}]")
    if mode not in ("linear", "uniform"):
        raise ValueError(
            f"stochastic_depth_mode must be linear or uniform, got {mode!r}"
        )
    # NeMo never drops the first `start_layer` layers
    n_droppable = n_layers - start_layer
    if mode == "linear":  # 1/L * p, 2/L * p, ..., p
        later = [i / n_droppable * drop_prob for i in range(1, n_droppable + 1)]
    else:
        later = [drop_prob] * n_droppable
    return [0.0] * start_layer + later


class ConformerEncoder(nn.Module):
    """feats (B, M, T), feat_lens (B,) -> enc (B, D, T'), enc_lens (B,)."""

    def __init__(
        self,
        feat_in: int,
        n_layers: int,
        d_model: int,
        feat_out: int = -1,
        subsampling: str | None = "striding",
        subsampling_factor: int = 4,
        subsampling_conv_channels: int = -1,
        ff_expansion_factor: int = 4,
        self_attention_model: str = "rel_pos",
        n_heads: int = 4,
        att_context_size: list[int] | None = None,
        att_context_style: str = "regular",
        xscaling: bool = True,
        untie_biases: bool = True,
        pos_emb_max_len: int = 5000,
        conv_kernel_size: int = 31,
        conv_norm_type: str = "batch_norm",
        conv_context_size: list[int] | str | None = None,
        use_bias: bool = True,
        dropout: float = 0.1,
        dropout_pre_encoder: float = 0.1,
        dropout_emb: float = 0.1,
        dropout_att: float = 0.0,
        stochastic_depth_drop_prob: float = 0.0,
        stochastic_depth_mode: str = "linear",
        stochastic_depth_start_layer: int = 1,
        use_pytorch_sdpa: bool = False,
    ):
        super().__init__()
        self.feat_in, self.d_model = feat_in, d_model
        self.att_context_size = _context_size(att_context_size)
        self.att_context_style = att_context_style
        self.self_attention_model = self_attention_model
        channels = (
            d_model if subsampling_conv_channels == -1 else subsampling_conv_channels
        )
        if subsampling and subsampling_factor > 1:
            self.pre_encode = ConvSubsampling(
                feat_in, d_model, subsampling, subsampling_factor, channels
            )
        else:  # no subsampling: a per-frame projection M -> D
            self.pre_encode = nn.Linear(feat_in, d_model)
        xscale = math.sqrt(d_model) if xscaling else None
        self.pos_enc = _positional_encoding(
            self_attention_model,
            (d_model, pos_emb_max_len, xscale, dropout_pre_encoder, dropout_emb),
        )
        pos_bias_u = pos_bias_v = None
        if not untie_biases and self_attention_model == "rel_pos":  # one u, v for all
            pos_bias_u = nn.Parameter(torch.zeros(n_heads, d_model // n_heads))
            pos_bias_v = nn.Parameter(torch.zeros(n_heads, d_model // n_heads))
        layer_args = dict(
            d_model=d_model,
            d_ff=d_model * ff_expansion_factor,
            n_heads=n_heads,
            self_attention_model=self_attention_model,
            conv_kernel_size=conv_kernel_size,
            conv_norm_type=conv_norm_type,
            conv_context_size=_conv_context(conv_context_size, conv_kernel_size),
            dropout=dropout,
            dropout_att=dropout_att,
            use_bias=use_bias,
            impl="sdpa" if use_pytorch_sdpa else "reference",
            pos_bias_u=pos_bias_u,
            pos_bias_v=pos_bias_v,
        )
        self.layers = nn.ModuleList(
            ConformerLayer(**layer_args) for _ in range(n_layers)
        )
        self.out_proj = None
        if feat_out > 0 and feat_out != d_model:
            self.out_proj = nn.Linear(d_model, feat_out)
        self.layer_drop_probs = stochastic_depth_probs(
            n_layers,
            stochastic_depth_drop_prob,
            stochastic_depth_mode,
            stochastic_depth_start_layer,
        )
        # (layer index, x (B, T', D)) -> x, called after each layer but the last when
        # set: intermediate CTC reads layer outputs (as NeMo's `interctc` registry)
        # and may condition the next layer on its predictions
        self.intermediate: Callable[[int, torch.Tensor], torch.Tensor] | None = None

    def extra_repr(self) -> str:
        return (
            f"att_context_size={self.att_context_size}, "
            f"att_context_style={self.att_context_style}, "
            f"layer_drop_probs={self.layer_drop_probs}"
        )

    def output_length(self, feat_lens: torch.Tensor) -> torch.Tensor:
        """Encoder frames T' for feature frames T, (B,) -> (B,)."""
        if isinstance(self.pre_encode, ConvSubsampling):
            return self.pre_encode.output_length(feat_lens)
        return feat_lens

    def forward(
        self, feats: torch.Tensor, feat_lens: torch.Tensor, return_hidden: bool = False
    ):
        """feats (B, M, T), feat_lens (B,) -> enc (B, D, T'), enc_lens (B,).

        With `return_hidden`, also the hidden states as a list of N + 1 tensors (B, D,
        T'): [0] the input of the first layer (subsampled, position-encoded), [i] the
        output of layer i (Hugging Face's `output_hidden_states` order). Lower layers
        keep what the task's loss later discards (the voice, for a CTC encoder)."""
        assert feats.dim() == 3 and feats.size(1) == self.feat_in, (
            f"expected features (B, {self.feat_in}, T), got {tuple(feats.shape)}"
        )
        x = feats.transpose(1, 2)  # (B, T, M)
        if isinstance(self.pre_encode, ConvSubsampling):
            x, lens = self.pre_encode(x, feat_lens)  # (B, T', D)
        else:
            x, lens = self.pre_encode(x), feat_lens
        pos_emb = None
        if self.self_attention_model == "rel_pos":
            x, pos_emb = self.pos_enc(x)  # (B, T', D), (1, 2T'-1, D)
        else:
            x = self.pos_enc(x)  # (B, T', D)
        t = x.size(1)
        att_mask = pad_mask = None  # nothing to mask: every frame valid, full context
        if self.att_context_size != (-1, -1) or bool((lens < t).any()):
            att_mask = self_attention_mask(
                lens, t, self.att_context_size, self.att_context_style
            )  # (B, T', T')
            pad_mask = padding_mask(lens, t)  # (B, T')
        last = len(self.layers) - 1
        hidden = [x] if return_hidden else None
        for i, (drop_prob, layer) in enumerate(zip(self.layer_drop_probs, self.layers)):
            x = self._run_layer(layer, drop_prob, x, att_mask, pos_emb, pad_mask)
            if hidden is not None:
                hidden.append(x)
            if self.intermediate is not None and i < last:
                x = self.intermediate(i, x)  # (B, T', D)
        if self.out_proj is not None:
            x = self.out_proj(x)
        if hidden is not None:
            return x.transpose(1, 2), lens, [h.transpose(1, 2) for h in hidden]
        return x.transpose(1, 2), lens  # (B, D, T')

    def _run_layer(self, layer, drop_prob, x, att_mask, pos_emb, pad_mask):
        """One layer, with stochastic depth in training (rescaled as in NeMo)."""
        y = layer(x, att_mask, pos_emb, pad_mask)
        if not self.training or drop_prob == 0.0:
            return y
        if torch.rand(()) < drop_prob:
            return x + 0.0 * y  # dropped: keep every weight in the graph for DDP
        return x + (y - x) / (1.0 - drop_prob)  # kept: rescale the residual branch


def _positional_encoding(self_attention_model: str, args: tuple) -> nn.Module:
    """Relative sinusoids for rel_pos (returned to the layers), absolute for abs_pos."""
    if self_attention_model == "rel_pos":
        return RelPositionalEncoding(*args)
    if self_attention_model == "abs_pos":
        return PositionalEncoding(*args)
    raise ValueError(
        "self_attention_model must be 'rel_pos' or 'abs_pos', "
        f"got {self_attention_model!r}"
    )


def _context_size(att_context_size) -> tuple[int, int]:
    """[left, right] (-1 = unlimited); None means unlimited on both sides."""
    if att_context_size is None:
        return (-1, -1)
    if len(att_context_size) != 2 or not all(
        isinstance(c, int) for c in att_context_size
    ):
        raise ValueError(
            f"att_context_size must be [left, right], got {att_context_size!r}"
        )
    return tuple(att_context_size)


def _conv_context(conv_context_size, kernel_size: int) -> tuple[int, int]:
    """Frames left/right of the depthwise kernel: None centred, 'causal' all left."""
    if conv_context_size is None:
        return ((kernel_size - 1) // 2, (kernel_size - 1) // 2)
    if conv_context_size == "causal":
        return (kernel_size - 1, 0)
    return tuple(conv_context_size)
