"""The mask estimators' input features against textbook formulas in float64 on each
utterance alone (the normalised log power, the log power over a minimum-statistics
noise floor), their invariance to the input's level, a steady tone becoming a flat
line; the RNN's choice of features."""

import numpy as np
import pytest
import torch

from minispeech.enhancement.estimators import (
    MaskEstimatorRNN,
    log_power_over_floor,
    normalized_log_power,
)


def reference(spec: np.ndarray, n: int, per_frequency: bool = True) -> np.ndarray:
    """spec (C, F, T) complex, n valid frames -> (F, T): log power z-scored per row
    (per_frequency) or over all its valid values."""
    power = (np.abs(spec[:, :, :n]) ** 2).mean(0)  # RMS over channels, squared
    logpow = np.log(power + 1e-10)
    axis = 1 if per_frequency else None
    mean = logpow.mean(axis, keepdims=True)
    std = np.sqrt(logpow.var(axis, keepdims=True) + 1e-5)
    out = np.zeros(spec.shape[1:])
    out[:, :n] = (logpow - mean) / std
    return out


@pytest.mark.parametrize("per_frequency", [True, False])
def test_normalized_log_power_matches_the_formula_per_utterance(per_frequency):
    g = torch.Generator().manual_seed(0)
    spec = torch.complex(
        torch.randn(3, 2, 9, 20, generator=g), torch.randn(3, 2, 9, 20, generator=g)
    )
    lens = torch.tensor([20, 13, 1])
    got = normalized_log_power(spec.to(torch.complex128), lens, per_frequency)
    for b, n in enumerate(lens.tolist()):  # got: (B, F, T)
        want = reference(spec[b].numpy().astype(np.complex128), n, per_frequency)
        np.testing.assert_allclose(got[b].numpy(), want, atol=1e-10)
    assert got[1, :, 13:].abs().max() == 0  # padding stays 0


def test_normalized_log_power_ignores_the_level_and_flattens_a_steady_noise():
    g = torch.Generator().manual_seed(1)
    spec = torch.complex(
        torch.randn(1, 1, 9, 40, generator=g), torch.randn(1, 1, 9, 40, generator=g)
    )
    lens = torch.tensor([40])
    for per_frequency in (True, False):
        torch.testing.assert_close(
            normalized_log_power(spec * 30.0, lens, per_frequency),
            normalized_log_power(spec, lens, per_frequency),
            atol=1e-4,
            rtol=0,
        )
    spec[0, 0, 4] = 5.0 + 0j  # one bin holds a constant tone
    assert normalized_log_power(spec, lens)[0, 4].abs().max() < 1e-3


def test_the_rnn_stacks_its_feature_sets_and_names_a_wrong_one():
    both = MaskEstimatorRNN(
        num_subbands=9,
        num_features=8,
        num_layers=1,
        input_features=["magnitude", "normalized_log_power"],
    )
    assert both.input_projection.in_features == 18
    spec = torch.randn(2, 1, 9, 12, dtype=torch.cfloat)
    masks, _ = both(spec, torch.tensor([12, 7]))
    assert masks.shape == (2, 1, 9, 12) and masks[1, :, :, 7:].abs().max() == 0
    with pytest.raises(ValueError, match="input_features"):
        MaskEstimatorRNN(num_subbands=9, input_features="log_mel")


def floor_reference(spec: np.ndarray, n: int, smooth: int = 5) -> np.ndarray:
    """spec (C, F, T), n valid frames -> (F, T): log power minus, per row, the
    minimum over frames of the mean power of the valid frames within smooth // 2."""
    power = (np.abs(spec[:, :, :n]) ** 2).mean(0)  # (F, n)
    half = smooth // 2
    smoothed = np.stack(
        [power[:, max(0, t - half) : t + half + 1].mean(1) for t in range(n)], 1
    )
    out = np.zeros(spec.shape[1:])
    floor = smoothed.min(1, keepdims=True)
    out[:, :n] = np.log(power + 1e-10) - np.log(floor + 1e-10)
    return out


def test_log_power_over_floor_matches_the_loop_and_ignores_the_level():
    g = torch.Generator().manual_seed(2)
    spec = torch.complex(
        torch.randn(3, 2, 9, 20, generator=g), torch.randn(3, 2, 9, 20, generator=g)
    )
    lens = torch.tensor([20, 13, 2])
    got = log_power_over_floor(spec.to(torch.complex128), lens)  # (B, F, T)
    for b, n in enumerate(lens.tolist()):
        want = floor_reference(spec[b].numpy().astype(np.complex128), n)
        np.testing.assert_allclose(got[b].numpy(), want, atol=1e-9)
    torch.testing.assert_close(
        log_power_over_floor(spec * 30.0, lens), log_power_over_floor(spec, lens)
    )
    spec[0, :, 4] = 5.0 + 0j  # a steady tone sits on its own floor: 0
    assert log_power_over_floor(spec, lens)[0, 4].abs().max() < 1e-6
