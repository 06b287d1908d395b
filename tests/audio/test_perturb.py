"""Speed perturbation, phase-vocoder time stretch, pitch shift, noise,
and the augmentor."""

import math

import numpy as np
import pytest
import torch

from minispeech.audio import (
    AudioAugmentor,
    add_noise,
    pitch_shift,
    resample,
    speed_perturb,
    time_stretch,
)

SR = 16000


def tone(freq, seconds=1.0):
    t = torch.arange(int(SR * seconds), dtype=torch.float64) / SR
    return torch.sin(2 * math.pi * freq * t).float()


def peak_hz(wave):
    """Frequency of the strongest FFT bin, refined by parabolic interpolation."""
    spec = torch.fft.rfft(
        wave.double() * torch.hann_window(wave.numel(), dtype=torch.float64)
    )
    mag = spec.abs().log()
    k = int(mag.argmax())
    a, b, c = mag[k - 1], mag[k], mag[k + 1]
    return (k + 0.5 * float(a - c) / float(a - 2 * b + c)) * SR / wave.numel()


@pytest.mark.parametrize("factor", [0.9, 1.1, 1.25])
def test_speed_perturb_scales_frequency_and_length(factor):
    out = speed_perturb(tone(440.0), factor)
    assert abs(out.numel() - SR / factor) <= 1
    assert peak_hz(out[500:-500]) == pytest.approx(440.0 * factor, rel=2e-3)
    # it is the resampler with the rational ratio sr * factor : sr
    num, den = {0.9: (9, 10), 1.1: (11, 10), 1.25: (5, 4)}[factor]
    assert torch.equal(out, resample(tone(440.0), num, den))


def test_time_stretch_at_rate_one_reconstructs_the_input():
    wave = torch.randn(8000)
    out = time_stretch(wave, 1.0)
    assert out.shape == wave.shape
    # the last hop is not covered by an interpolated frame
    assert torch.allclose(out[:-512], wave[:-512], atol=1e-4)


@pytest.mark.parametrize("rate", [0.8, 1.25])
def test_time_stretch_keeps_pitch_and_changes_length(rate):
    out = time_stretch(tone(440.0), rate)
    assert out.numel() == round(SR / rate)
    assert peak_hz(out[1000:-1000]) == pytest.approx(440.0, rel=2e-3)


@pytest.mark.parametrize("semitones", [-3.0, 2.0])
def test_pitch_shift_moves_pitch_and_keeps_length(semitones):
    out = pitch_shift(tone(300.0), semitones)
    assert out.numel() == SR
    assert peak_hz(out[1000:-1000]) == pytest.approx(
        300.0 * 2 ** (semitones / 12), rel=5e-3
    )


@pytest.mark.parametrize("kind", ["white", "pink"])
def test_add_noise_reaches_the_snr(kind):
    clean = tone(200.0) * 0.3
    noisy = add_noise(clean, 10.0, kind, np.random.default_rng(0))
    noise = (noisy - clean).double()
    snr = 10 * math.log10(float((clean.double() ** 2).sum() / (noise**2).sum()))
    assert snr == pytest.approx(10.0, abs=0.1)


def test_augmentor_is_reproducible_and_prob_zero_is_identity():
    aug = AudioAugmentor(
        speed=[0.9, 1.1], pitch=[-2, 2], noise_snr_db=[10, 20], prob=1.0
    )
    wave = tone(300.0)
    torch.manual_seed(3)
    first = aug(wave)
    torch.manual_seed(3)
    assert torch.equal(aug(wave), first)
    assert not torch.equal(first[:1000], wave[:1000])
    assert torch.equal(AudioAugmentor(speed=[0.9, 1.1], prob=0.0)(wave), wave)


def test_augmentor_rejects_bad_bounds():
    with pytest.raises(ValueError, match="speed"):
        AudioAugmentor(speed=[1.1, 0.9])


def test_echo_is_the_feedback_comb_filter():
    """y[t] = x[t] + g y[t - d], computed sample by sample, equals the truncated sum."""
    from minispeech.audio import add_echo

    x = torch.randn(400, dtype=torch.float64)
    delay, gain = 37, 0.5
    y = x.clone()
    for t in range(delay, x.numel()):
        y[t] = x[t] + gain * y[t - delay]
    ours = add_echo(x, delay, gain, n_echoes=20)
    assert torch.allclose(ours, y, atol=1e-9)
    with pytest.raises(ValueError, match="gain"):
        add_echo(x, delay, 1.0)


def test_augmentor_echo_needs_both_bounds():
    with pytest.raises(ValueError, match="echo"):
        AudioAugmentor(echo_delay_ms=[20, 60])


def test_babble_noise_comes_from_the_dataset_at_the_snr(tmp_path):
    from minispeech.audio import save_audio
    from minispeech.data.datasets import AudioTextDataset

    rows = []
    for k in range(4):
        path = tmp_path / f"u{k}.wav"
        save_audio(path, tone(200.0 * (k + 1), seconds=0.5), 16000)
        rows.append({"audio_filepath": str(path), "duration": 0.5, "text": "a"})
    augmentor = AudioAugmentor(
        noise_snr_db=[5.0, 5.0], noise_kinds=["babble"], prob=1.0, babble_speakers=2
    )
    with pytest.raises(ValueError, match="babble_source"):
        augmentor(tone(440.0))
    dataset = AudioTextDataset(rows, sample_rate=16000, augmentor=augmentor)
    assert augmentor.babble_source == dataset.random_waves
    clean = dataset._load(0).double()  # (S,)
    torch.manual_seed(0)
    noisy = dataset[0]["audio"].double()
    snr = 10 * math.log10(clean.pow(2).sum() / (noisy - clean).pow(2).sum())
    assert snr == pytest.approx(5.0, abs=1e-3)
    torch.manual_seed(0)
    assert torch.equal(dataset[0]["audio"], noisy.float())  # drawn from torch's RNG


def test_augmentor_rejects_an_unknown_noise_kind():
    with pytest.raises(ValueError, match="brown"):
        AudioAugmentor(noise_snr_db=[0, 10], noise_kinds=["white", "brown"])
