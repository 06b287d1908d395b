"""Mel scales and mel_filterbank: librosa.filters.mel, plus the formulas themselves."""

import itertools
import warnings

import librosa
import numpy as np
import pytest
import torch

from minispeech.audio.mel import hz_to_mel, mel_filterbank, mel_points, mel_to_hz

GRID = list(
    itertools.product(
        [8000, 16000, 22050],  # sample_rate
        [256, 400, 512, 1024],  # n_fft
        [20, 40, 80, 128],  # n_mels
        [(0.0, None), (20.0, None), (300.0, 4000.0)],  # f_min, f_max
        [False, True],  # htk
        ["slaney", None],  # norm
    )
)


def test_filterbank_equals_librosa_over_a_grid():
    worst = 0.0
    for sr, n_fft, n_mels, (f_min, f_max), htk, norm in GRID:
        ours = mel_filterbank(sr, n_fft, n_mels, f_min, f_max, htk=htk, norm=norm)
        with warnings.catch_warnings():  # librosa warns about empty filters; so be it
            warnings.simplefilter("ignore")
            ref = librosa.filters.mel(
                sr=sr,
                n_fft=n_fft,
                n_mels=n_mels,
                fmin=f_min,
                fmax=f_max,
                htk=htk,
                norm=norm,
            )
        assert ours.shape == ref.shape == (n_mels, n_fft // 2 + 1)
        assert ours.dtype == torch.float32
        np.testing.assert_array_equal(ours.numpy() == 0, ref == 0)
        nz = ref != 0
        rel = np.abs(ours.numpy()[nz] - ref[nz]) / np.abs(ref[nz])
        worst = max(worst, rel.max())
    assert worst <= 1e-6, worst


def test_mel_scales_known_values_and_round_trip():
    freqs = torch.tensor([0.0, 100.0, 999.0, 1000.0, 1001.0, 4000.0, 8000.0, 22050.0])
    for htk in (False, True):
        back = mel_to_hz(hz_to_mel(freqs, htk), htk)
        torch.testing.assert_close(back, freqs.double(), rtol=1e-12, atol=1e-9)
        ref = librosa.hz_to_mel(freqs.numpy().astype(np.float64), htk=htk)
        np.testing.assert_allclose(hz_to_mel(freqs, htk).numpy(), ref, rtol=1e-12)
    # Slaney: linear 3 mels per 200 Hz below 1 kHz (so 1 kHz = 15 mels), then
    # 27 mels per factor 6.4: 6.4 kHz = 15 + 27 = 42 mels
    slaney = hz_to_mel(torch.tensor([200.0, 1000.0, 6400.0]))
    torch.testing.assert_close(
        slaney, torch.tensor([3.0, 15.0, 42.0], dtype=torch.float64)
    )
    # HTK: 2595 log10(1 + f / 700); at f = 700 that is 2595 log10(2)
    htk = hz_to_mel(torch.tensor([700.0]), htk=True)
    torch.testing.assert_close(
        htk, torch.tensor([2595 * np.log10(2.0)], dtype=torch.float64)
    )


@pytest.mark.parametrize("htk", [False, True])
def test_triangles_peak_at_the_mel_centres(htk):
    # a fine grid (about 1 Hz per bin) shows each triangle's apex and edges sharply
    sr, n_fft, n_mels = 16000, 16384, 40
    fb = mel_filterbank(sr, n_fft, n_mels, 50.0, 7000.0, htk=htk, norm=None).double()
    freqs = torch.linspace(0, sr / 2, n_fft // 2 + 1, dtype=torch.float64)
    corners = mel_points(n_mels, 50.0, 7000.0, htk)  # (M + 2,)
    bin_hz = sr / n_fft
    for m in range(n_mels):
        lo, centre, hi = corners[m], corners[m + 1], corners[m + 2]
        peak = freqs[fb[m].argmax()]
        assert abs(peak - centre) <= bin_hz
        assert fb[m].max() > 1 - 2 * bin_hz / (centre - lo).item()  # apex height ~ 1
        support = freqs[fb[m] > 0]
        assert support.min() >= lo and support.max() <= hi
        assert support.min() - lo <= bin_hz and hi - support.max() <= bin_hz
    # the corners are evenly spaced on the mel scale
    steps = torch.diff(hz_to_mel(corners, htk))
    torch.testing.assert_close(steps, steps[0].expand_as(steps))


def test_slaney_normalization_gives_unit_area():
    # Slaney norm: weights * 2 / (f_hi - f_lo), i.e. each triangle integrates to 1 in Hz
    sr, n_fft, n_mels = 16000, 16384, 40
    raw = mel_filterbank(sr, n_fft, n_mels, norm=None).double()
    fb = mel_filterbank(sr, n_fft, n_mels, norm="slaney").double()
    corners = mel_points(n_mels, 0.0, sr / 2)
    width = (corners[2:] - corners[:-2])[:, None]  # (M, 1)
    torch.testing.assert_close(fb, raw * 2 / width, rtol=1e-6, atol=0)
    area = fb.sum(dim=1) * sr / n_fft  # Riemann sum over bins of width sr / n_fft Hz
    torch.testing.assert_close(
        area, torch.ones(n_mels, dtype=torch.float64), rtol=5e-3, atol=0
    )


def test_filterbank_rejects_bad_arguments():
    with pytest.raises(ValueError, match="f_max"):
        mel_filterbank(16000, 512, 40, f_max=9000.0)
    with pytest.raises(ValueError, match="norm"):
        mel_filterbank(16000, 512, 40, norm=1.0)
