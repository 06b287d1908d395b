"""YIN against the textbook loops of de Cheveigné & Kawahara 2002 (Eq. 6 and 8 in
float64), synthetic tones of known F0, librosa.yin on a tone, and the corpus' espeak-ng
speakers, whose base pitch settings (-p) are known (data/tinyspeech/README.md)."""

import math

import librosa
import numpy as np
import pytest
import torch

from minispeech.audio import load_audio
from minispeech.audio.pitch import (
    cumulative_mean_normalized_difference,
    difference_function,
    frame_signal,
    lag_range,
    median_filter_voiced,
    pitch_statistics,
    yin,
)
from minispeech.data.manifest import read_manifest


def reference_difference(frame: list[float], window: int, n_lags: int) -> list[float]:
    """Eq. 6 as written: d(tau) = sum_{j=1}^{W} (x_j - x_{j+tau})^2, two loops."""
    return [
        sum((frame[j] - frame[j + tau]) ** 2 for j in range(window))
        for tau in range(n_lags)
    ]


def reference_cmnd(d: list[float]) -> list[float]:
    """Eq. 8 as written: d'(0) = 1, d'(tau) = d(tau) / ((1/tau) sum_{j<=tau} d(j))."""
    out, running = [1.0], 0.0
    for tau in range(1, len(d)):
        running += d[tau]
        out.append(d[tau] * tau / running)
    return out


def tone(kind: str, f0: float, sample_rate: int, seconds: float = 1.0) -> torch.Tensor:
    """A sine, a sawtooth (every harmonic, aliased) or a pulse train band-limited to
    4 kHz (equal harmonics) at f0, float64. Not to Nyquist: a full-band pulse whose
    period is not a whole number of samples has a dip narrower than one lag, which
    YIN's integer lags miss (min d' = 0.16-0.20 at 150 Hz, 16 kHz)."""
    t = torch.arange(int(seconds * sample_rate), dtype=torch.float64) / sample_rate
    if kind == "sine":
        return torch.sin(2 * math.pi * f0 * t)
    if kind == "sawtooth":
        return 2 * ((f0 * t) % 1.0) - 1
    harmonics = torch.arange(1, int(4000 / f0) + 1, dtype=torch.float64)  # < 4 kHz
    pulses = torch.cos(2 * math.pi * f0 * harmonics[:, None] * t).sum(0)  # (S,)
    return pulses / harmonics.numel()


def test_difference_and_cmnd_equal_textbook_loops():
    gen = torch.Generator().manual_seed(0)
    frames = torch.randn(3, 64, generator=gen, dtype=torch.float64)  # (T, N)
    frames[1] = torch.sin(torch.arange(64) * 2 * math.pi / 9.3) + 0.1 * frames[1]
    frames[2] = 0.0  # silence: Eq. 8 is 0/0, defined as 1
    window, n_lags = 30, 34
    d = difference_function(frames, window, n_lags)  # (T, L)
    cmnd = cumulative_mean_normalized_difference(d)
    for t in range(2):
        d_ref = reference_difference(frames[t].tolist(), window, n_lags)
        assert d[t].tolist() == pytest.approx(d_ref, rel=1e-9, abs=1e-9)
        assert cmnd[t].tolist() == pytest.approx(reference_cmnd(d_ref), rel=1e-9)
    assert cmnd[2].tolist() == [1.0] * n_lags


def test_fast_difference_equals_direct_sum_on_speech(corpus_dir):
    row = read_manifest(corpus_dir / "tts_test.jsonl")[0]
    wave, sr = load_audio(row["audio_filepath"])
    tau_min, tau_max, window = lag_range(sr, 65.0, 400.0, 1024)
    frames = frame_signal(wave.double(), 1024, 256)[20:60:8]  # (5, 1024)
    d = difference_function(frames, window, tau_max + 2)
    for t, frame in enumerate(frames.numpy()):
        direct = [
            np.sum((frame[:window] - frame[tau : tau + window]) ** 2)
            for tau in range(tau_max + 2)
        ]  # Eq. 6, no FFT
        np.testing.assert_allclose(d[t].numpy(), direct, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("sample_rate", [16000, 22050])
@pytest.mark.parametrize("kind", ["sine", "sawtooth", "pulses"])
def test_tones_within_one_percent(kind, sample_rate):
    for f0 in (100.0, 150.0, 220.0, 300.0):
        track = yin(tone(kind, f0, sample_rate), sample_rate)
        voiced = track[track > 0]
        assert voiced.numel() >= 0.9 * track.numel(), (kind, f0, voiced.numel())
        assert (voiced / f0 - 1).abs().max() < 0.01, (kind, f0, voiced)


@pytest.mark.parametrize("n_samples", [4000, 4095, 4096, 4097, 7777])
@pytest.mark.parametrize("hop_length", [160, 256])
def test_frame_count_lines_up_with_stft(n_samples, hop_length):
    wave = torch.randn(n_samples)
    spec = torch.stft(
        wave, 1024, hop_length, window=torch.hann_window(1024), return_complex=True
    )
    assert yin(wave, 16000, hop_length=hop_length).shape == (spec.shape[-1],)
    assert spec.shape[-1] == n_samples // hop_length + 1
    uncentred = yin(wave, 16000, hop_length=hop_length, center=False)
    assert uncentred.shape == (1 + (n_samples - 1024) // hop_length,)


def test_silence_and_white_noise_unvoiced():
    assert (yin(torch.zeros(16000), 16000) == 0).all()
    noise = torch.randn(4 * 16000)
    assert (yin(noise, 16000) > 0).float().mean() < 0.05
    assert (yin(1e-4 * noise, 16000) > 0).float().mean() < 0.05  # scale-free


@pytest.mark.parametrize("f0", [110.0, 187.0, 290.0])
def test_close_to_librosa_yin_on_a_tone(f0):
    """librosa 0.11 differs by design: its d(tau) sums over the whole frame minus the
    lag (a window that shrinks as tau grows, the paper's Eq. 2 form; `win_length` is
    deprecated and ignored) and it interpolates d' rather than d, which the paper
    (step 5) says biases the period. So: the same track within 1%, ours closer."""
    sr = 22050
    wave = tone("sine", f0, sr)
    ours = yin(wave, sr, fmin=65.0, fmax=400.0, frame_length=1024, hop_length=256)
    theirs = librosa.yin(
        wave.numpy(),
        fmin=65.0,
        fmax=400.0,
        sr=sr,
        frame_length=1024,
        hop_length=256,
        trough_threshold=0.1,
        center=True,
        pad_mode="constant",
    )
    assert ours.shape == theirs.shape
    inner = slice(4, -4)  # the edge frames see the zero padding differently
    np.testing.assert_allclose(ours[inner].numpy(), theirs[inner], rtol=0.01)
    ours_error = np.abs(ours[inner].numpy() / f0 - 1).max()
    assert ours_error < 1e-4 < np.abs(theirs[inner] / f0 - 1).max(), ours_error


def test_numpy_input_and_argument_checks():
    wave = tone("sine", 200.0, 16000).numpy()
    assert yin(wave, 16000).dtype == torch.float32
    with pytest.raises(AssertionError, match="mono"):
        yin(torch.zeros(2, 16000), 16000)
    with pytest.raises(AssertionError, match="frame_length=400 too short"):
        yin(wave, 16000, frame_length=400)


def test_median_filter_and_pitch_statistics():
    f0 = torch.tensor([0.0, 100, 200, 100, 101, 0, 0, 99, 100])
    smooth = median_filter_voiced(f0, 3)
    assert smooth.tolist() == [0.0, 100, 100, 101, 100, 0, 0, 99, 99]
    assert median_filter_voiced(f0, 1) is f0
    mean, std = pitch_statistics([f0, torch.tensor([0.0, 120.0])])
    voiced = np.array([100, 200, 100, 101, 99, 100, 120.0])
    assert (mean, std) == pytest.approx((voiced.mean(), voiced.std()))
    with pytest.raises(ValueError, match="no voiced frame"):
        pitch_statistics([torch.zeros(5)])


# far split: one variant each at an extreme low and high base pitch (-p)
FAR_PAIRS = {  # variant: (speaker at -p <= 15, speaker at -p >= 85)
    "aunty": ("f049", "f050"),
    "steph3": ("f051", "f052"),
    "m5": ("m091", "m092"),
    "gustave": ("m093", "m094"),
    "Jacky": ("m095", "m096"),
}


def speech_tracks(corpus_dir, speaker: str, n_files: int = 3) -> list[torch.Tensor]:
    """F0 tracks of a speaker's first clean far utterances, cut to the words."""
    rows = read_manifest(corpus_dir / "far.jsonl")
    rows = [r for r in rows if r["speaker"] == speaker and r["noise"] == "clean"]
    tracks = []
    for row in rows[:n_files]:
        wave, sr = load_audio(row["audio_filepath"])
        first, last = row["words"][0][1], row["words"][-1][2]
        track = yin(wave, sr)  # (T,), frame t centred at t * 256 / sr seconds
        tracks.append(track[round(first * sr / 256) : round(last * sr / 256) + 1])
    return tracks


def test_corpus_speakers_order_as_their_pitch_settings(corpus_dir):
    shares = []
    for variant, (low, high) in FAR_PAIRS.items():
        medians = []
        for speaker in (low, high):
            track = torch.cat(speech_tracks(corpus_dir, speaker))
            shares.append((track > 0).float().mean().item())
            assert shares[-1] > 0.1, (speaker, shares[-1])
            medians.append(track[track > 0].median().item())
        assert medians[1] > 1.4 * medians[0], (variant, medians)
        assert 60 < medians[0] < 140 and 140 < medians[1] < 350, (variant, medians)
    assert np.mean(shares) > 0.4, shares
    mean, std = pitch_statistics(speech_tracks(corpus_dir, "f050"))
    assert 280 < mean < 340 and 0 < std < 40, (mean, std)  # aunty at -p 88
