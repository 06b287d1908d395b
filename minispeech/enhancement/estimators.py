"""Mask estimators: a noisy complex spectrogram in, a real time-frequency mask out.

A mask M(f, t) in [0, 1] scales the noisy STFT X(f, t); the enhanced estimate is
M * X with the noisy phase. Trained end to end through the iSTFT with an SDR loss,
the mask learns the phase-sensitive target of Erdogan et al. 2015, "Phase-sensitive
and recognition-boosted speech separation using deep recurrent neural networks"
(ICASSP), Eq. 9, clipped to [0, 1] by the sigmoid.

MaskEstimatorRNN is NeMo's (nemo/collections/audio/modules/masking.py), after
Yoshioka et al. 2018, "Multi-microphone neural speech separation for far-field
multi-talker speech recognition" (ICASSP), with NeMo's module names so its weights
load by key:
    |X| (RMS over channels, no log)  (B, F, T)
        [input_features (ours): "normalized_log_power", the per-frequency
         normalised log power that MaskEstimatorConformer reads, "log_power"
         normalised over the whole utterance, "log_power_over_floor" (an
         a-posteriori SNR), or several stacked]
    -> input_projection Linear(F -> D)                           x   (B, T, D)
    -> (B)LSTM or GRU over the valid frames (packed sequences)   h   (B, T, kD)
    -> norm(fc(h)) + x      LayerNorm(Linear(kD -> D)), skip from the projection
    -> output_projections[m] Linear(D -> F) -> sigmoid, one per output mask m
    frames past the length -> 0.
Differs from NeMo: RNN hidden width = D always (NeMo's `fc` assumes it), one input
channel feature set (no inter-channel phase differences).

MaskEstimatorConformer (ours, CPU-friendly and stronger per second of training): the
log power spectrum, normalised per frequency over the utterance's valid frames,
Linear(F -> D), a Conformer stack without subsampling (Gulati et al. 2020,
arXiv:2005.08100; minispeech/nn/conformer.py), Linear(D -> F), sigmoid. NeMo uses
Conformer blocks the same way in MaskEstimatorFlexChannels (Jukic et al. 2023,
"Flexible multichannel speech enhancement for noise-robust frontend").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minispeech.nn.attention import padding_mask
from minispeech.nn.conformer import ConformerEncoder

MAG_REDUCTIONS = ("rms", "abs_mean", "mean_abs")
RNN_TYPES = {"lstm": nn.LSTM, "gru": nn.GRU}
INPUT_FEATURES = (
    "magnitude",
    "normalized_log_power",
    "log_power",
    "log_power_over_floor",
)


def magnitude(spec: Tensor, reduction: str = "rms") -> Tensor:
    """complex spec (B, C, F, T) -> one magnitude per bin (B, F, T), NeMo's
    SpectrogramToMultichannelFeatures reductions over the C channels."""
    if reduction == "rms":  # sqrt(mean_c |X_c|^2)
        return spec.abs().pow(2).mean(1).sqrt()
    if reduction == "abs_mean":  # |mean_c X_c|
        return spec.mean(1).abs()
    if reduction == "mean_abs":  # mean_c |X_c|
        return spec.abs().mean(1)
    raise ValueError(
        f"mag_reduction must be one of {MAG_REDUCTIONS}, got {reduction!r}"
    )


def normalized_log_power(
    spec: Tensor,
    spec_lens: Tensor,
    per_frequency: bool = True,
    reduction: str = "rms",
    eps: float = 1e-10,
) -> Tensor:
    """log |X|^2 with zero mean and unit variance over the valid frames of each
    utterance (padding stays 0): (B, C, F, T) -> (B, F, T). Per frequency (each row
    its own statistics), a stationary noise (a hum, a fan) becomes a flat line near 0
    whatever its level or spectral shape; over the whole utterance (one mean and
    variance), the spectral shape stays and only the recording level is removed."""
    valid = padding_mask(spec_lens, spec.size(-1))[:, None, :]  # (B, 1, T)
    dims = (-1,) if per_frequency else (-2, -1)
    n = spec_lens.clamp(min=1)[:, None, None].to(spec.real.dtype)  # (B, 1, 1)
    if not per_frequency:
        n = n * spec.size(-2)  # F values per frame
    logpow = torch.log(magnitude(spec, reduction).pow(2) + eps) * valid  # (B, F, T)
    mean = logpow.sum(dims, keepdim=True) / n  # (B, F, 1) or (B, 1, 1)
    var = ((logpow - mean) * valid).pow(2).sum(dims, keepdim=True) / n
    return (logpow - mean) / (var + 1e-5).sqrt() * valid  # (B, F, T)


def log_power_over_floor(
    spec: Tensor,
    spec_lens: Tensor,
    smooth: int = 5,
    reduction: str = "rms",
    eps: float = 1e-10,
) -> Tensor:
    """log |X|^2 minus each frequency's noise floor: (B, C, F, T) -> (B, F, T), 0
    past the length. The floor is the minimum over the utterance's valid frames of
    the power averaged over `smooth` neighbouring valid frames, as in minimum
    statistics (Martin 2001) without its bias correction: the log of an a-posteriori
    SNR (natural log: 4.34 dB per unit), the quantity a Wiener gain is a function
    of, and the same for any stationary noise whatever its spectrum or level."""
    t = spec.size(-1)
    valid = padding_mask(spec_lens, t)[:, None, :].to(spec.real.dtype)  # (B, 1, T)
    power = magnitude(spec, reduction).pow(2) * valid  # (B, F, T)
    pool = dict(kernel_size=smooth, stride=1, padding=smooth // 2)
    # the mean over valid neighbours only: a padded batch gives each item's values
    smoothed = F.avg_pool1d(power, **pool) / F.avg_pool1d(valid, **pool).clamp(min=1e-6)
    floor = smoothed.masked_fill(valid == 0, float("inf")).amin(-1, keepdim=True)
    return (torch.log(power + eps) - torch.log(floor + eps)) * valid  # (B, F, T)


class MaskEstimatorRNN(nn.Module):
    """spec (B, C, F, T) complex, spec_lens (B,) -> masks (B, num_outputs, F, T)."""

    def __init__(
        self,
        num_outputs: int = 1,
        num_subbands: int = 257,
        num_features: int = 256,
        num_layers: int = 3,
        bidirectional: bool = True,
        rnn_type: str = "lstm",
        dropout: float = 0.0,
        mag_reduction: str = "rms",
        input_features: str | list[str] = "magnitude",
    ):
        super().__init__()
        if isinstance(input_features, str):
            input_features = [input_features]
        if not input_features or any(f not in INPUT_FEATURES for f in input_features):
            raise ValueError(
                f"input_features must be one or more of {INPUT_FEATURES}, "
                f"got {input_features!r}"
            )
        if rnn_type not in RNN_TYPES:
            raise ValueError(f"rnn_type must be one of {list(RNN_TYPES)}: {rnn_type!r}")
        if mag_reduction not in MAG_REDUCTIONS:
            raise ValueError(f"mag_reduction must be one of {MAG_REDUCTIONS}")
        self.num_subbands, self.mag_reduction = num_subbands, mag_reduction
        self.input_features = tuple(input_features)
        d = num_features  # D
        # several feature sets are stacked along frequency: (B, len * F, T)
        self.input_projection = nn.Linear(len(self.input_features) * num_subbands, d)
        self.rnn = RNN_TYPES[rnn_type](
            input_size=d,
            hidden_size=d,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout,  # between RNN layers, as torch applies it
            bidirectional=bidirectional,
        )
        self.fc = nn.Linear(2 * d if bidirectional else d, d)
        self.norm = nn.LayerNorm(d)
        self.output_projections = nn.ModuleList(
            nn.Linear(d, num_subbands) for _ in range(num_outputs)
        )

    def feature(self, name: str, spec: Tensor, spec_lens: Tensor) -> Tensor:
        """One input feature set: complex spec (B, C, F, T) -> (B, F, T)."""
        if name == "magnitude":
            return magnitude(spec, self.mag_reduction)
        if name == "log_power_over_floor":
            return log_power_over_floor(spec, spec_lens, reduction=self.mag_reduction)
        per_frequency = name == "normalized_log_power"
        return normalized_log_power(
            spec, spec_lens, per_frequency=per_frequency, reduction=self.mag_reduction
        )

    def forward(self, spec: Tensor, spec_lens: Tensor) -> tuple[Tensor, Tensor]:
        assert spec.dim() == 4 and spec.size(2) == self.num_subbands, (
            f"spec must be (B, C, {self.num_subbands}, T), got {tuple(spec.shape)}"
        )
        t = spec.size(-1)
        feats = torch.cat(
            [self.feature(name, spec, spec_lens) for name in self.input_features],
            dim=1,
        )  # (B, len(input_features) * F, T)
        x = self.input_projection(feats.transpose(1, 2))  # (B, T, D)
        # 1) the RNN sees only the valid frames: packed, then padded back to T
        packed = nn.utils.rnn.pack_padded_sequence(
            x, spec_lens.cpu(), batch_first=True, enforce_sorted=False
        )
        h, _ = self.rnn(packed)
        h, _ = nn.utils.rnn.pad_packed_sequence(h, batch_first=True, total_length=t)
        # 2) layer norm of the projected RNN output, plus the skip from the input
        y = self.norm(self.fc(h)) + x  # (B, T, kD) -> (B, T, D)
        # 3) one sigmoid mask per output; zero past the length
        masks = torch.stack(
            [
                torch.sigmoid(proj(y)).transpose(1, 2)
                for proj in self.output_projections
            ],
            dim=1,
        )  # (B, num_outputs, F, T)
        valid = padding_mask(spec_lens, t)  # (B, T)
        return masks * valid[:, None, None, :], spec_lens


class MaskEstimatorConformer(nn.Module):
    """spec (B, C, F, T) complex, spec_lens (B,) -> masks (B, num_outputs, F, T)."""

    def __init__(
        self,
        num_outputs: int = 1,
        num_subbands: int = 257,
        d_model: int = 128,
        n_layers: int = 4,
        n_heads: int = 4,
        ff_expansion_factor: int = 4,
        conv_kernel_size: int = 15,
        conv_norm_type: str = "layer_norm",
        dropout: float = 0.1,
    ):
        super().__init__()
        self.num_subbands, self.num_outputs = num_subbands, num_outputs
        self.conformer = ConformerEncoder(
            feat_in=num_subbands,
            n_layers=n_layers,
            d_model=d_model,
            feat_out=num_subbands * num_outputs,
            subsampling=None,  # one mask per STFT frame: no subsampling
            ff_expansion_factor=ff_expansion_factor,
            n_heads=n_heads,
            conv_kernel_size=conv_kernel_size,
            conv_norm_type=conv_norm_type,
            dropout=dropout,
            dropout_pre_encoder=dropout,
            dropout_emb=dropout,
        )

    def forward(self, spec: Tensor, spec_lens: Tensor) -> tuple[Tensor, Tensor]:
        assert spec.dim() == 4 and spec.size(2) == self.num_subbands, (
            f"spec must be (B, C, {self.num_subbands}, T), got {tuple(spec.shape)}"
        )
        b, t = spec.size(0), spec.size(-1)
        feats = normalized_log_power(spec, spec_lens)  # (B, F, T)
        logits, _ = self.conformer(feats, spec_lens)  # (B, num_outputs * F, T)
        masks = torch.sigmoid(logits).view(b, self.num_outputs, -1, t)  # (B, M, F, T)
        valid = padding_mask(spec_lens, t)  # (B, T)
        return masks * valid[:, None, None, :], spec_lens


class MaskReferenceChannel(nn.Module):
    """NeMo's mask processor: each of M masks (B, M, F, T), clamped to
    [10^(mask_min_db/20), 10^(mask_max_db/20)], times the reference channel of the
    noisy spec (B, C, F, T) -> (B, M, F, T). No parameters."""

    def __init__(
        self, ref_channel: int = 0, mask_min_db: float = -200, mask_max_db: float = 0
    ):
        super().__init__()
        self.ref_channel = ref_channel
        self.mask_min = 10 ** (mask_min_db / 20)  # dB -> magnitude (NeMo's db2mag)
        self.mask_max = 10 ** (mask_max_db / 20)

    def forward(self, spec: Tensor, mask: Tensor) -> Tensor:
        mask = mask.clamp(min=self.mask_min, max=self.mask_max)  # (B, M, F, T)
        ref = spec[:, self.ref_channel : self.ref_channel + 1]  # (B, 1, F, T)
        return mask * ref  # (B, M, F, T)
