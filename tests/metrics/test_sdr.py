"""SDR, SI-SDR, SNR and the SDR loss against a float64 loop reference written from the
definitions (sums over the valid samples, no eps), NeMo's own values
(shared/nemo_reference/sdr_loss_ref_io.npz: SDRLoss and calculate_sdr_batch of NeMo
3.0.0 on B=3, C=2, S=1000 signals, made by make_refs_tasks.py `sdr_run`), hand-worked
cases and the invariances of Le Roux et al. 2019."""

import math

import numpy as np
import pytest
import torch

from minispeech.metrics.sdr import sdr, sdr_loss, si_sdr, snr


def reference_sdr(e, t, scale_invariant, remove_mean, sdr_max=None) -> float:
    """One example, one channel, already cropped to its valid samples; plain loops."""
    e, t = [float(v) for v in e], [float(v) for v in t]
    n = len(t)
    if remove_mean:
        e_mean, t_mean = sum(e) / n, sum(t) / n
        e = [v - e_mean for v in e]
        t = [v - t_mean for v in t]
    if scale_invariant:  # alpha = <e, t> / <t, t>
        alpha = sum(a * b for a, b in zip(e, t)) / sum(b * b for b in t)
        t = [alpha * b for b in t]
    signal = sum(b * b for b in t)
    distortion = sum((a - b) ** 2 for a, b in zip(e, t))
    if sdr_max is not None:
        distortion += 10 ** (-sdr_max / 10) * signal
    return 10 * math.log10(signal / distortion)


def reference_batch(e, t, lens, **kw) -> np.ndarray:
    """(B, C, S) -> (B, C) with reference_sdr on each cropped pair."""
    n_batch, n_channels, _ = e.shape
    out = np.zeros((n_batch, n_channels))
    for b in range(n_batch):
        for c in range(n_channels):
            n = int(lens[b])
            out[b, c] = reference_sdr(e[b, c, :n], t[b, c, :n], **kw)
    return out


def random_pair(n_batch=3, n_channels=2, n_samples=400, dtype=torch.float64):
    target = torch.randn(n_batch, n_channels, n_samples, dtype=dtype) + 0.2
    estimate = 0.8 * target + 0.4 * torch.randn_like(target) - 0.1
    return estimate, target


SETTINGS = [
    dict(scale_invariant=si, remove_mean=rm, sdr_max=mx)
    for si in (True, False)
    for rm in (True, False)
    for mx in (None, 25.0)
]


@pytest.mark.parametrize("kw", SETTINGS, ids=str)
def test_matches_loop_reference(kw):
    estimate, target = random_pair()
    lens = torch.tensor([400, 257, 31])
    expected = reference_batch(estimate.numpy(), target.numpy(), lens, **kw)
    exact = sdr(estimate, target, lens, eps=0.0, **kw)  # (B, C)
    assert exact.shape == (3, 2)
    np.testing.assert_allclose(exact.numpy(), expected, rtol=0, atol=1e-9)
    # NeMo's eps = 1e-8 on the means moves the dB value by far less than 1e-5
    with_eps = sdr(estimate, target, lens, **kw)
    np.testing.assert_allclose(with_eps.numpy(), expected, rtol=0, atol=1e-5)


def test_hand_worked():
    target = torch.tensor([1.0, 1.0, -1.0, -1.0], dtype=torch.float64)
    noise = 0.1 * torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=torch.float64)  # ⊥ target
    # power 1 against 0.01: 20 dB for all three (zero mean, orthogonal noise)
    for metric in (sdr, si_sdr, snr):
        assert float(metric(target + noise, target, eps=0.0)) == pytest.approx(20.0)
    # 1.1 t: SNR sees an error 0.1 t (20 dB); SI-SDR sees none, and eps caps it at
    # 10 log10(<(1.1 t)^2> / eps) = 10 log10(1.21e8)
    assert float(snr(1.1 * target, target, eps=0.0)) == pytest.approx(20.0)
    expected = 10 * math.log10(1.21e8)
    assert float(si_sdr(1.1 * target, target)) == pytest.approx(expected, abs=1e-6)
    # sdr_max: a perfect estimate scores sdr_max, 10 log10(1 / 10^-2) = 20 dB
    assert float(sdr(target, target, sdr_max=20.0)) == pytest.approx(20.0, abs=1e-5)


def test_shapes_follow_the_input():
    estimate, target = random_pair(n_batch=2, n_channels=3, n_samples=50)
    per_channel = sdr(estimate, target)  # (B, C)
    assert per_channel.shape == (2, 3)
    assert sdr(estimate[:, 1], target[:, 1]).shape == (2,)
    torch.testing.assert_close(sdr(estimate[:, 1], target[:, 1]), per_channel[:, 1])
    assert sdr(estimate[1, 2], target[1, 2]).shape == ()
    torch.testing.assert_close(sdr(estimate[1, 2], target[1, 2]), per_channel[1, 2])
    with pytest.raises(AssertionError, match="4"):
        sdr(estimate, target[:, :, :4])


def test_si_sdr_ignores_the_scale_of_the_estimate():
    estimate, target = random_pair()
    base = si_sdr(estimate, target, eps=0.0)
    for gain in (1e-3, 0.5, 7.0, 300.0):
        torch.testing.assert_close(si_sdr(gain * estimate, target, eps=0.0), base)
        assert (sdr(gain * estimate, target) - sdr(estimate, target)).abs().min() > 0.1
    # eps = 1e-8 is added to mean powers: negligible unless the estimate is very
    # quiet (at gain 1e-3 the distortion power is ~1e-7 and SI-SDR moves ~0.3 dB)
    with_eps = si_sdr(estimate, target)
    for gain in (0.5, 7.0, 300.0):
        scaled = si_sdr(gain * estimate, target)
        torch.testing.assert_close(scaled, with_eps, rtol=0, atol=1e-5)
    # remove_mean: an offset on the estimate leaves SI-SDR as it was; SNR changes
    torch.testing.assert_close(si_sdr(estimate + 3.0, target, eps=0.0), base)
    assert (snr(estimate + 3.0, target) - snr(estimate, target)).abs().min() > 0.1


def test_masking_equals_cropping():
    estimate, target = random_pair()
    lens = torch.tensor([400, 123, 7])
    # garbage after the valid samples must not matter
    estimate[1, :, 123:], target[2, :, 7:] = 1e3, -50.0
    for kw in SETTINGS:
        batch = sdr(estimate, target, lens, **kw)  # (B, C)
        for b, n in enumerate(lens.tolist()):
            cropped = sdr(estimate[b : b + 1, :, :n], target[b : b + 1, :, :n], **kw)
            torch.testing.assert_close(batch[b], cropped[0], rtol=0, atol=1e-9)


def test_silent_target_raises_in_reports_and_stays_finite_in_the_loss():
    estimate, target = random_pair()
    silent = target.clone()
    silent[1, 0] = 0.0
    for metric in (sdr, si_sdr, snr):
        with pytest.raises(ValueError, match="example 1, channel 0 is silent"):
            metric(estimate, silent)
    constant = target.clone()
    constant[1, 0] = 0.25  # silent once the mean is removed; a signal for SNR
    with pytest.raises(ValueError, match="example 1, channel 0 is silent .constant"):
        si_sdr(estimate, constant)
    assert torch.isfinite(snr(estimate, constant)).all()
    with pytest.raises(ValueError, match="example 2, channel 0 .* 0 valid samples"):
        sdr(estimate, target, torch.tensor([400, 400, 0]))
    # strict=False gives NeMo's finite value: 10 log10(0 / (d + eps) + eps) = -80 dB
    lenient = si_sdr(estimate, silent, strict=False)
    assert float(lenient[1, 0]) == pytest.approx(-80.0)
    assert torch.isfinite(lenient).all()


def test_loss_gradients_are_finite():
    estimate, target = random_pair(dtype=torch.float32)
    target[0, 1] = 0.0  # a silent target must not poison the batch
    lens = torch.tensor([400, 200, 0])  # nor an empty example
    for kw in SETTINGS:
        leaf = estimate.clone().requires_grad_(True)
        loss = sdr_loss(leaf, target, lens, **kw)
        loss.backward()
        assert torch.isfinite(loss)
        assert torch.isfinite(leaf.grad).all()
        assert leaf.grad[1, :, 200:].abs().max() == 0  # padding gets no gradient


def test_loss_is_minus_the_mean_sdr():
    estimate, target = random_pair()
    lens = torch.tensor([400, 300, 200])
    per_channel = si_sdr(estimate, target, lens)  # (B, C)
    loss = sdr_loss(estimate, target, lens)
    torch.testing.assert_close(loss, -per_channel.mean())
    none = sdr_loss(estimate, target, lens, reduction="none")
    torch.testing.assert_close(none, -per_channel.mean(1))
    torch.testing.assert_close(
        sdr_loss(estimate, target, lens, reduction="sum"), -per_channel.mean(1).sum()
    )
    weighted = sdr_loss(estimate, target, lens, weight=[0.2, 0.8])
    torch.testing.assert_close(
        weighted, -(per_channel @ torch.tensor([0.2, 0.8]).double()).mean()
    )
    with pytest.raises(ValueError, match="sum to 1"):
        sdr_loss(estimate, target, weight=[0.5, 0.6])
    with pytest.raises(ValueError, match="3 channel weights for 2"):
        sdr_loss(estimate, target, weight=[0.2, 0.3, 0.5])
    with pytest.raises(ValueError, match="reduction"):
        sdr_loss(estimate, target, reduction="max")


# ---------------------------------------------------------------- NeMo 3.0.0
def nemo_arrays(nemo_ref):
    return dict(np.load(nemo_ref / "sdr_loss_ref_io.npz"))


NEMO_TAGS = [
    f"si{si}_rm{rm}_len{ln}" for si in (1, 0) for rm in (1, 0) for ln in (1, 0)
]


@pytest.mark.parametrize("tag", NEMO_TAGS)
def test_matches_nemo(nemo_ref, tag):
    ref = nemo_arrays(nemo_ref)
    estimate, target = (
        torch.tensor(ref["sdr/estimate"]),
        torch.tensor(ref["sdr/target"]),
    )
    lens = torch.tensor(ref["sdr/input_length"]) if tag.endswith("1") else None
    kw = dict(scale_invariant=tag[2] == "1", remove_mean=tag[6] == "1")
    per_channel = sdr(estimate, target, lens, **kw).double().numpy()  # (B, C)
    expected = ref[f"sdr/per_channel_{tag}"].astype(np.float64)
    np.testing.assert_allclose(per_channel, expected, rtol=0, atol=1e-5)
    loss = float(sdr_loss(estimate, target, lens, **kw))
    assert loss == pytest.approx(float(ref[f"sdr/loss_{tag}"]), abs=1e-5)


def test_matches_nemo_sdr_max_and_weights(nemo_ref):
    ref = nemo_arrays(nemo_ref)
    estimate, target = (
        torch.tensor(ref["sdr/estimate"]),
        torch.tensor(ref["sdr/target"]),
    )
    lens = torch.tensor(ref["sdr/input_length"])
    capped = sdr_loss(estimate, target, lens, scale_invariant=False, sdr_max=20.0)
    assert float(capped) == pytest.approx(
        float(ref["sdr/loss_sdrmax20_len1"]), abs=1e-5
    )
    weighted = sdr_loss(estimate, target, lens, weight=[0.25, 0.75])
    expected = float(ref["sdr/loss_weighted_si1_len1"])
    assert float(weighted) == pytest.approx(expected, abs=1e-5)
