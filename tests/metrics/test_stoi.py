"""STOI and extended STOI against the `pystoi` package (0.4.1, the port of the authors'
MATLAB code) on bundled tinyspeech utterances with white and pink noise at several
SNRs and simple processed versions; each step against pystoi's helpers; Eqs. (3)-(5)
against explicit loops; edge cases."""

import math

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import CORPUS, corpus_rows

from minispeech.metrics.stoi import (
    estoi_from_segments,
    remove_silent_frames,
    resample,
    stoi,
    stoi_from_segments,
    third_octave_bands,
)

pystoi = pytest.importorskip("pystoi")
from pystoi import utils as pystoi_utils  # noqa: E402

ATOL = 1e-6  # the task asks for 1e-3; the port agrees to ~1e-15


@pytest.fixture(scope="module")
def utterances():
    """Two 16 kHz test utterances, two speakers (Ogg Opus, read by soundfile)."""
    rows, speakers, waves = corpus_rows(CORPUS, "test"), set(), []
    for row in rows:
        if row["speaker"] not in speakers and len(waves) < 2:
            speakers.add(row["speaker"])
            wave, sr = sf.read(row["audio_filepath"], dtype="float64")
            assert sr == 16000 and wave.ndim == 1
            waves.append(wave)
    return waves


def noise(kind: str, n: int, rng) -> np.ndarray:
    """White noise, or pink noise: white noise shaped by 1/sqrt(f) in the spectrum."""
    white = rng.standard_normal(n)
    if kind == "white":
        return white
    spectrum = np.fft.rfft(white)
    spectrum[1:] /= np.sqrt(np.arange(1, len(spectrum)))
    spectrum[0] = 0.0
    return np.fft.irfft(spectrum, n)


def mix(clean: np.ndarray, noise_wave: np.ndarray, snr_db: float) -> np.ndarray:
    gain = math.sqrt(np.sum(clean**2) / np.sum(noise_wave**2) / 10 ** (snr_db / 10))
    return clean + gain * noise_wave


def oracle_mask(clean: np.ndarray, noisy: np.ndarray) -> np.ndarray:
    """A processed signal: the noisy STFT times the ideal ratio mask, resynthesised."""
    stft = dict(
        n_fft=512, hop_length=128, window=torch.hann_window(512, dtype=torch.float64)
    )
    s = torch.stft(torch.from_numpy(clean), return_complex=True, **stft)
    y = torch.stft(torch.from_numpy(noisy), return_complex=True, **stft)
    mask = s.abs() ** 2 / (s.abs() ** 2 + (y - s).abs() ** 2 + 1e-12)
    return torch.istft(mask * y, length=len(noisy), **stft).numpy()


def test_resample_matches_pystoi():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(4001)
    for orig_sr in (16000, 8000, 22050, 20000):
        ours = resample(x, orig_sr, 10000)
        theirs = pystoi_utils.resample_oct(x, 10000, orig_sr)
        assert ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)


def test_bands_and_silence_removal_match_pystoi():
    for sr, n_fft in ((10000, 512), (16000, 1024)):
        theirs, _ = pystoi_utils.thirdoct(sr, n_fft, 15, 150)
        np.testing.assert_array_equal(third_octave_bands(sr, n_fft, 15, 150), theirs)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(6000) * np.repeat(10.0 ** -rng.integers(0, 4, 6), 1000)
    y = x + 0.1 * rng.standard_normal(6000)
    ours = remove_silent_frames(x, y, 40, 256, 128)
    theirs = pystoi_utils.remove_silent_frames(x, y, 40, 256, 128)
    assert len(ours[0]) < len(x)  # something was removed
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def loop_stoi(x_seg, y_seg, beta=-15.0) -> float:
    """Taal et al. 2011 Eqs. (3)-(5) one region at a time."""
    n_segments, n_bands, _ = x_seg.shape
    total = 0.0
    for m in range(n_segments):
        for j in range(n_bands):
            x, y = x_seg[m, j], y_seg[m, j]
            alpha = np.sqrt(np.sum(x**2) / np.sum(y**2))  # Eq. (3) normalisation
            y_clip = np.minimum(alpha * y, (1 + 10 ** (-beta / 20)) * x)  # Eq. (3)
            xc, yc = x - x.mean(), y_clip - y_clip.mean()
            total += np.dot(xc, yc) / np.sqrt(np.dot(xc, xc) * np.dot(yc, yc))  # (4)
    return total / (n_segments * n_bands)  # Eq. (5)


def loop_estoi(x_seg, y_seg) -> float:
    """Jensen & Taal 2016: normalise rows then columns, mean column inner product."""

    def normalise(seg):
        seg = seg - seg.mean(axis=1, keepdims=True)
        seg = seg / np.linalg.norm(seg, axis=1, keepdims=True)  # each band over time
        seg = seg - seg.mean(axis=0, keepdims=True)
        return seg / np.linalg.norm(seg, axis=0, keepdims=True)  # each frame over bands

    n_segments, _, n_frames = x_seg.shape
    total = 0.0
    for m in range(n_segments):
        xn, yn = normalise(x_seg[m]), normalise(y_seg[m])
        total += sum(np.dot(xn[:, n], yn[:, n]) for n in range(n_frames))
    return total / (n_segments * n_frames)


def test_segment_scores_match_loops():
    rng = np.random.default_rng(2)
    x_seg = rng.random((5, 15, 30)) + 0.1  # band magnitudes are positive
    y_seg = x_seg * rng.random((5, 15, 30)) * 3  # some get clipped
    y_seg[0, 0] *= 50
    assert stoi_from_segments(x_seg, y_seg) == pytest.approx(
        loop_stoi(x_seg, y_seg), abs=1e-12
    )
    assert estoi_from_segments(x_seg, y_seg) == pytest.approx(
        loop_estoi(x_seg, y_seg), abs=1e-12
    )


@pytest.mark.parametrize("kind", ["white", "pink"])
@pytest.mark.parametrize("extended", [False, True])
def test_noisy_speech_matches_pystoi(utterances, kind, extended):
    rng = np.random.default_rng(3)
    scores = []
    for clean in utterances:
        for snr_db in (-5.0, 0.0, 10.0):
            noisy = mix(clean, noise(kind, len(clean), rng), snr_db)
            ours = stoi(clean, noisy, 16000, extended=extended)
            assert ours == pytest.approx(
                pystoi.stoi(clean, noisy, 16000, extended), abs=ATOL
            )
            scores.append(ours)
    # intelligibility rises with the SNR, for each utterance
    assert scores[0] < scores[1] < scores[2] and scores[3] < scores[4] < scores[5]


def test_processed_speech_matches_pystoi(utterances):
    rng = np.random.default_rng(4)
    clean = utterances[0]
    noisy = mix(clean, noise("white", len(clean), rng), 0.0)
    processed = {
        "oracle mask": oracle_mask(clean, noisy),
        "moving average": np.convolve(noisy, np.ones(4) / 4, mode="same"),
        "hard clipped": np.clip(noisy, -0.05, 0.05),
    }
    for name, wave in processed.items():
        for extended in (False, True):
            ours = stoi(clean, wave, 16000, extended=extended)
            theirs = pystoi.stoi(clean, wave, 16000, extended)
            assert ours == pytest.approx(theirs, abs=ATOL), (name, extended)
    assert stoi(clean, processed["oracle mask"], 16000) > stoi(clean, noisy, 16000)
    # silence scores 0. pystoi agrees for STOI; for extended STOI it normalises the
    # EPS-sized random noise it adds and returns a small random number instead
    silence = np.zeros_like(clean)
    assert stoi(clean, silence, 16000) == pystoi.stoi(clean, silence, 16000) == 0.0
    assert stoi(clean, silence, 16000, extended=True) == 0.0


def test_other_sample_rates_match_pystoi(utterances):
    rng = np.random.default_rng(5)
    clean16 = utterances[1]
    for sr in (10000, 8000):
        clean = pystoi_utils.resample_oct(clean16, sr, 16000)
        noisy = mix(clean, noise("pink", len(clean), rng), 5.0)
        for extended in (False, True):
            ours = stoi(clean, noisy, sr, extended=extended)
            assert ours == pytest.approx(
                pystoi.stoi(clean, noisy, sr, extended), abs=ATOL
            )


def test_identity_tensors_and_gain(utterances):
    clean = utterances[0]
    assert stoi(clean, clean, 16000) == pytest.approx(1.0, abs=1e-9)
    assert stoi(clean, 0.2 * clean, 16000, extended=True) == pytest.approx(
        1.0, abs=1e-9
    )
    noisy = mix(clean, noise("white", len(clean), np.random.default_rng(6)), 0.0)
    as_numpy = stoi(clean, noisy, 16000)
    as_tensor = stoi(torch.from_numpy(clean), torch.from_numpy(noisy), 16000)
    assert as_tensor == as_numpy
    as_float32 = stoi(
        torch.from_numpy(clean).float(), torch.from_numpy(noisy).float(), 16000
    )
    assert as_float32 == pytest.approx(as_numpy, abs=1e-5)


def test_too_short_or_mismatched_inputs_raise(utterances):
    clean = utterances[0]
    with pytest.raises(ValueError, match="30 STFT frames"):
        stoi(clean[:4000], clean[:4000], 16000)  # 0.25 s: pystoi warns, returns 1e-5
    with pytest.raises(ValueError, match="more than 256 samples"):
        stoi(clean[:300], clean[:300], 16000)
    with pytest.raises(ValueError, match="same"):
        stoi(clean, clean[:-1], 16000)
    with pytest.raises(ValueError, match="same"):
        stoi(np.stack([clean, clean]), np.stack([clean, clean]), 16000)
