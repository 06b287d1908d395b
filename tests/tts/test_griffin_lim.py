"""Griffin-Lim (minispeech/tts/griffin_lim.py): NeMo's `helpers.griffin_lim` on the
shared reference (shared/nemo_reference/griffin_lim_ref_io.npz: |librosa.stft| of a
wave with n_fft 256, NeMo's output after 0 and 4 iterations from the stored uniform
draws u, phase exp(2j pi u)); the error falls with iterations and falls faster with
momentum on a corpus utterance; batches equal items; the mel inverse."""

import json
import math

import numpy as np
import pytest
import torch

from minispeech.audio.features import MelSpectrogram
from minispeech.audio.io import load_audio
from minispeech.audio.stft import get_window, stft
from minispeech.tts.griffin_lim import (
    griffin_lim,
    griffin_lim_from_mel,
    mel_to_magnitude,
    spectral_convergence,
)

ATOL = 1e-4  # the brief's bound; measured 3e-16 (0 iterations), 9e-15 (4)


@pytest.fixture(scope="module")
def corpus_wave():
    """The first utterance of the TTS voice (16 kHz, about 4 s)."""
    from conftest import CORPUS

    row = json.loads(open(CORPUS / "tts_train.jsonl").readline())
    return load_audio(CORPUS / row["audio_filepath"], sample_rate=16000)[0]


def magnitude_of(wave, n_fft=512):
    window = get_window("hann", n_fft, dtype=wave.dtype)
    return stft(wave, n_fft, n_fft // 4, window=window, pad_mode="constant").abs()


@pytest.mark.parametrize("n_iters", [0, 4])
def test_matches_nemo_griffin_lim(nemo_ref, n_iters):
    ref = np.load(nemo_ref / "griffin_lim_ref_io.npz")
    magnitude = torch.from_numpy(ref["gl/magnitudes"])  # (129, 104) float64
    phase = 2 * math.pi * torch.from_numpy(ref["gl/initial_phase_rand"])
    wave = griffin_lim(magnitude, n_iters, initial_phase=phase)
    expected = ref[f"gl/out_iters{n_iters}"]
    assert wave.dtype == torch.float64 and wave.shape == expected.shape  # hop (T-1)
    assert np.abs(wave.numpy() - expected).max() <= ATOL


def test_iterations_lower_the_spectral_convergence(corpus_wave):
    magnitude = magnitude_of(corpus_wave[:16000].double())  # (257, T)
    phase = 2 * math.pi * torch.rand(magnitude.shape, dtype=torch.float64)
    errors = [
        float(
            spectral_convergence(
                griffin_lim(magnitude, n, initial_phase=phase), magnitude
            )
        )
        for n in (0, 8, 32)
    ]
    assert errors[0] > 0.5 and errors[0] > errors[1] > errors[2], errors


def test_momentum_converges_faster(corpus_wave):
    """Perraudin et al. 2013: fast Griffin-Lim (alpha 0.99) reaches a lower error
    than the original at the same number of iterations."""
    magnitude = magnitude_of(corpus_wave[:16000].double())
    phase = 2 * math.pi * torch.rand(magnitude.shape, dtype=torch.float64)
    for n_iters in (8, 32):
        plain, fast = (
            float(
                spectral_convergence(
                    griffin_lim(magnitude, n_iters, momentum=m, initial_phase=phase),
                    magnitude,
                )
            )
            for m in (0.0, 0.99)
        )
        assert fast < 0.9 * plain, (n_iters, plain, fast)


def test_a_batch_equals_its_items_and_length_is_honoured():
    magnitude = torch.rand(3, 65, 20, dtype=torch.float64)  # (B, F, T)
    phase = 2 * math.pi * torch.rand(magnitude.shape, dtype=torch.float64)
    batch = griffin_lim(magnitude, 5, momentum=0.5, initial_phase=phase, length=700)
    assert batch.shape == (3, 700)  # more than hop (T - 1) = 608 samples
    for b in range(3):
        alone = griffin_lim(magnitude[b], 5, momentum=0.5, initial_phase=phase[b])
        torch.testing.assert_close(batch[b, :608], alone)
    # the last frame reaches n_fft / 2 = 64 samples further; then zeros
    assert (batch[:, 608:672] != 0).all() and (batch[:, 672:] == 0).all()


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="n_fft=100"):
        griffin_lim(torch.rand(65, 10), n_fft=100)
    with pytest.raises(AssertionError, match="initial_phase"):
        griffin_lim(torch.rand(65, 10), initial_phase=torch.rand(65, 11))


def test_mel_to_magnitude_gives_back_the_mel():
    """pinv(fb) @ mel solves fb @ |X| = mel exactly (fb has full row rank) wherever
    the clamp at the floor is not needed."""
    pre = MelSpectrogram(n_fft=512, features=40, log_zero_guard_type="clamp")
    magnitude = torch.rand(2, 257, 30) + 0.5  # (B, F, T)
    mel = pre.fb @ magnitude  # (B, M, T)
    for power, guard in ((1.0, "clamp"), (2.0, "add")):
        mel_log = torch.log(mel + 1e-5) if guard == "add" else torch.log(mel)
        linear = mel_to_magnitude(mel_log, pre.fb, power, guard, 1e-5)  # (B, F, T)
        assert linear.shape == (2, 257, 30) and (linear >= 1e-8 ** (1 / power)).all()
        if (pre.fb.pinverse() @ mel).min() > 0:  # no clamping happened
            torch.testing.assert_close(
                pre.fb @ linear.pow(power), mel, rtol=1e-4, atol=1e-5
            )
    single = mel_to_magnitude(torch.log(mel[0]), pre.fb)  # (M, T) -> (F, T)
    assert single.shape == (257, 30)


def nemo_features(**kwargs):
    """The HiFi-GAN mel settings of the recipes (16 kHz, n_fft 1024, hop 256)."""
    return MelSpectrogram(
        **{
            "sample_rate": 16000,
            "window_size": None,
            "window_stride": None,
            "n_window_size": 1024,
            "n_window_stride": 256,
            "n_fft": 1024,
            "features": 80,
            "highfreq": 8000,
            "normalize": None,
            "preemph": None,
            "dither": 0.0,
            "pad_to": 1,
            "mag_power": 1.0,
            "log_zero_guard_type": "clamp",
            "log_zero_guard_value": 1e-5,
            "pad_value": -11.52,
            **kwargs,
        }
    ).eval()


@pytest.mark.parametrize("exact_pad", [True, False])
def test_griffin_lim_vocoder_reproduces_the_mel(corpus_wave, exact_pad):
    """Copy-synthesis from a corpus mel: T * hop samples, close in mel, and the
    hop / 2 delay for exact_pad frames lines the result up with the source."""
    pre = nemo_features(exact_pad=exact_pad)
    audio = corpus_wave[None, :24000]  # (1, S)
    lens = torch.tensor([24000])
    mel, mel_lens = pre(audio, lens)  # (1, M, T)
    phase = 2 * math.pi * torch.rand(1, 513, mel.shape[-1])
    wave = griffin_lim_from_mel(mel, pre, n_iters=16, initial_phase=phase)
    assert wave.shape == (1, mel.shape[-1] * 256)

    def mel_error(candidate):
        candidate = torch.nn.functional.pad(candidate, (0, 24000 - wave.shape[-1]))
        other, _ = pre(candidate, lens)
        n = int(mel_lens[0])
        return float((other - mel)[..., :n].abs().mean())

    error = mel_error(wave)
    assert error < 0.35, error
    if exact_pad:  # without the delay the frames are half a hop off
        early = torch.nn.functional.pad(wave[:, 128:], (0, 128))
        assert mel_error(early) > error
