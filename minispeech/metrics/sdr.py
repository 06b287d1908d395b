"""Signal-to-distortion ratios in dB: SDR, SI-SDR, SNR, and the SDR training loss.

References: 1) Le Roux, Wisdom, Erdogan, Hershey 2019, "SDR - half-baked or well
done?", ICASSP, arXiv:1811.02508 (SI-SDR). 2) NeMo
`nemo/collections/audio/losses/audio.py`: `calculate_mean`, `scale_invariant_target`,
`calculate_sdr_batch` and `SDRLoss`, whose conventions these functions follow.

For an estimate e and a target t (one example, one channel), with <.> the MEAN over the
valid samples (NeMo's choice; the ratio is the same as with sums) and eps = 1e-8:
    1) remove_mean:      e <- e - <e>,  t <- t - <t>
    2) scale_invariant:  t <- alpha t,  alpha = <e t> / (<t^2> + eps)
       (Le Roux et al.: e_target = alpha s, the projection of e on s, so that the
       residual e - alpha s is orthogonal to s and scaling e leaves SI-SDR unchanged)
    3) SDR = 10 log10( <t^2> / (<(e - t)^2> + 10^(-sdr_max/10) <t^2> + eps) + eps )
       the sdr_max term only when sdr_max is given: a soft ceiling near sdr_max dB.
    SNR is step 3 alone (no mean removal, no scaling).
    sdr_loss = -(mean over the batch of [mean over channels, or sum_c weight_c SDR_c]).
Valid samples: the first input_length[b] samples of example b; the rest is masked out
of every mean, so the result equals the one on the cropped signals. A masked mean is
NeMo's sum(mask x) / (sum(mask) + eps); without input_length every sample is valid.

Silent targets. With t = 0 (or a constant t when the mean is removed) the ratio is
0/0: SDR is undefined. The eps terms make it finite (-80 dB, from the outer eps), so
the training loss never sees NaN and gives such an example a constant value and a zero
gradient. The report metrics (`sdr`, `si_sdr`, `snr`) default to `strict=True`: they
raise a ValueError naming the example (and channel) instead of putting a meaningless
-80 dB into an average. Pass `strict=False` to get NeMo's finite value.

Differences from NeMo: no convolution-invariant SDR and no `mask` argument (lengths
only); `sdr_loss` also accepts reduction "sum" and "none".
"""

from __future__ import annotations

import torch
from torch import Tensor


def _as_bcs(x: Tensor) -> Tensor:
    """(S,) -> (1, 1, S), (B, S) -> (B, 1, S), (B, C, S) unchanged."""
    assert 1 <= x.ndim <= 3, f"expected (S,), (B, S) or (B, C, S), got {tuple(x.shape)}"
    while x.ndim < 3:
        x = x.unsqueeze(-2)  # add C, then B
    return x


def _valid_mask(x: Tensor, input_length) -> Tensor:
    """1.0 on the valid samples of x (B, C, S), 0.0 after input_length[b]."""
    n_batch, _, n_samples = x.shape
    if input_length is None:
        return torch.ones(n_batch, 1, n_samples, dtype=x.dtype, device=x.device)
    lens = torch.as_tensor(input_length, device=x.device).reshape(-1)  # (B,)
    assert lens.numel() == n_batch, f"{lens.numel()} lengths for a batch of {n_batch}"
    positions = torch.arange(n_samples, device=x.device)  # (S,)
    return (positions < lens[:, None]).to(x.dtype)[:, None, :]  # (B, 1, S)


def _masked_mean(x: Tensor, mask: Tensor, eps: float) -> Tensor:
    """Mean over the valid samples: (B, C, S) -> (B, C), NeMo's `calculate_mean`."""
    return (mask * x).sum(-1) / (mask.sum(-1) + eps)


def _check_targets(target: Tensor, mask: Tensor, remove_mean: bool) -> None:
    """Raise when a target (B, C, S) carries no signal on its valid samples."""
    valid = mask.expand_as(target) > 0
    highest = torch.where(valid, target, -torch.inf).amax(-1)  # (B, C)
    lowest = torch.where(valid, target, torch.inf).amin(-1)  # (B, C)
    if remove_mean:  # a constant target is silent once its mean is removed
        silent = ~(highest > lowest)
    else:
        silent = ~((highest > 0) | (lowest < 0))
    if silent.any():
        b, c = (int(i) for i in silent.nonzero()[0])
        kind = "constant" if remove_mean else "all zeros"
        raise ValueError(
            f"target of example {b}, channel {c} is silent ({kind} over its "
            f"{int(valid[b, c].sum())} valid samples): SDR is undefined"
        )


def _sdr_per_channel(
    estimate: Tensor,
    target: Tensor,
    input_length,
    scale_invariant: bool,
    remove_mean: bool,
    sdr_max: float | None,
    eps: float,
    strict: bool,
) -> Tensor:
    """NeMo's `calculate_sdr_batch`: (B, C, S) pair -> SDR in dB (B, C)."""
    assert estimate.shape == target.shape, (tuple(estimate.shape), tuple(target.shape))
    mask = _valid_mask(estimate, input_length)  # (B, 1, S)
    if strict:
        _check_targets(target, mask, remove_mean)
    # 1) remove the mean of the valid samples
    if remove_mean:
        estimate = estimate - _masked_mean(estimate, mask, eps)[..., None]
        target = target - _masked_mean(target, mask, eps)[..., None]
    # 2) SI-SDR: the target scaled by alpha = <e t> / (<t^2> + eps)
    if scale_invariant:
        e_dot_t = _masked_mean(estimate * target, mask, eps)  # (B, C)
        t_pow = _masked_mean(target**2, mask, eps)  # (B, C)
        alpha = e_dot_t / (t_pow + eps)  # (B, C)
        target = mask * alpha[..., None] * target  # (B, C, S)
    # 3) the ratio of target power to distortion power, in dB
    target_pow = _masked_mean(target**2, mask, eps)  # (B, C)
    distortion_pow = _masked_mean((estimate - target) ** 2, mask, eps)  # (B, C)
    if sdr_max is not None:
        distortion_pow = distortion_pow + 10 ** (-sdr_max / 10) * target_pow
    return 10 * torch.log10(target_pow / (distortion_pow + eps) + eps)


def _squeeze_like(values: Tensor, like: Tensor) -> Tensor:
    """(B, C) back to the caller's layout: (B, C), (B,) for (B, S), () for (S,)."""
    if like.ndim == 3:
        return values
    return values[:, 0] if like.ndim == 2 else values[0, 0]


def sdr(
    estimate: Tensor,
    target: Tensor,
    input_length=None,
    scale_invariant: bool = False,
    remove_mean: bool = True,
    sdr_max: float | None = None,
    eps: float = 1e-8,
    strict: bool = True,
) -> Tensor:
    """SDR in dB per example (and channel): (B, C, S) -> (B, C), (B, S) -> (B,),
    (S,) -> (). input_length (B,) counts the valid samples. strict: a silent
    target raises ValueError (see the module docstring) instead of giving -80 dB."""
    values = _sdr_per_channel(
        _as_bcs(estimate),
        _as_bcs(target),
        input_length,
        scale_invariant=scale_invariant,
        remove_mean=remove_mean,
        sdr_max=sdr_max,
        eps=eps,
        strict=strict,
    )
    return _squeeze_like(values, estimate)


def si_sdr(
    estimate: Tensor,
    target: Tensor,
    input_length=None,
    remove_mean: bool = True,
    eps: float = 1e-8,
    strict: bool = True,
) -> Tensor:
    """Scale-invariant SDR (Le Roux et al. 2019) in dB: `sdr(scale_invariant=True)`."""
    return sdr(
        estimate,
        target,
        input_length,
        scale_invariant=True,
        remove_mean=remove_mean,
        eps=eps,
        strict=strict,
    )


def snr(
    estimate: Tensor,
    target: Tensor,
    input_length=None,
    eps: float = 1e-8,
    strict: bool = True,
) -> Tensor:
    """SNR in dB, 10 log10(<t^2> / <(e - t)^2>): no mean removal, no scaling."""
    return sdr(
        estimate,
        target,
        input_length,
        scale_invariant=False,
        remove_mean=False,
        eps=eps,
        strict=strict,
    )


def _channel_weight(weight, n_channels: int, like: Tensor) -> Tensor:
    """NeMo's SDRLoss check: C positive weights that sum to one -> (1, C)."""
    weight = torch.as_tensor(weight, dtype=like.dtype, device=like.device).reshape(
        1, -1
    )
    if weight.shape[1] != n_channels:
        raise ValueError(f"{weight.shape[1]} channel weights for {n_channels} channels")
    if (weight <= 0).any() or abs(float(weight.sum()) - 1.0) > 1e-6:
        raise ValueError(f"channel weights must be positive and sum to 1, got {weight}")
    return weight


def sdr_loss(
    estimate: Tensor,
    target: Tensor,
    input_length=None,
    scale_invariant: bool = True,
    remove_mean: bool = True,
    sdr_max: float | None = None,
    weight=None,
    reduction: str = "mean",
    eps: float = 1e-8,
) -> Tensor:
    """NeMo's SDRLoss: minus the SDR (dB) of (B, C, S) signals, averaged over
    channels (or weighted by `weight`, C values summing to 1), then reduced over the
    batch ("mean", "sum", or "none" for (B,)). Silent targets stay finite (eps)."""
    assert estimate.ndim == 3, f"expected (B, C, S), got {tuple(estimate.shape)}"
    values = _sdr_per_channel(
        estimate,
        target,
        input_length,
        scale_invariant=scale_invariant,
        remove_mean=remove_mean,
        sdr_max=sdr_max,
        eps=eps,
        strict=False,
    )  # (B, C)
    if weight is None:
        per_example = values.mean(1)  # (B,)
    else:
        per_example = (values * _channel_weight(weight, values.shape[1], values)).sum(1)
    if reduction == "mean":
        return -per_example.mean()
    if reduction == "sum":
        return -per_example.sum()
    if reduction == "none":
        return -per_example
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
