"""MCD and DTW: DTW against brute force over every monotonic path (N, M <= 5), the fast
DTW against the loop version, the DCT and filterbank against textbook float64 formulas
and librosa/scipy, the cepstra against librosa's mel spectrogram + scipy's DCT, and
the properties of MCD (zero on itself, blind to gain and to repeated frames, growing
with noise) on corpus speech."""

import math
import random
from pathlib import Path

import librosa
import numpy as np
import pytest
import scipy.fft
import torch

from minispeech.audio import load_audio
from minispeech.data.manifest import read_manifest
from minispeech.metrics.mcd import (
    MCD_SCALE,
    dct_matrix,
    dtw,
    dtw_reference,
    mcd,
    mcd_from_cepstra,
    mel_cepstrum,
    mel_filterbank,
)


def monotonic_paths(n_rows: int, n_cols: int):
    """Every path from (0, 0) to (N-1, M-1) with steps (1, 0), (0, 1), (1, 1)."""
    if (n_rows, n_cols) == (1, 1):
        yield [(0, 0)]
        return
    for di, dj in ((1, 1), (1, 0), (0, 1)):  # the last step came from (N-1-di, M-1-dj)
        if n_rows - di >= 1 and n_cols - dj >= 1:
            for path in monotonic_paths(n_rows - di, n_cols - dj):
                yield path + [(n_rows - 1, n_cols - 1)]


def test_path_enumeration_counts_delannoy_numbers():
    counts = [len(list(monotonic_paths(n, n))) for n in range(1, 6)]
    assert counts == [1, 3, 13, 63, 321]  # central Delannoy numbers


def test_dtw_equals_brute_force_on_small_matrices():
    rng = np.random.default_rng(0)
    for n_rows in range(1, 6):
        for n_cols in range(1, 6):
            for _ in range(4):
                cost = rng.random((n_rows, n_cols))
                totals = {
                    tuple(p): sum(cost[i, j] for i, j in p)
                    for p in monotonic_paths(n_rows, n_cols)
                }
                best = min(totals, key=totals.get)  # unique: random real costs
                for impl in (dtw, dtw_reference):
                    total, path = impl(cost)
                    assert total == pytest.approx(totals[best], rel=1e-12)
                    assert tuple(path) == best, (impl.__name__, n_rows, n_cols)


def test_fast_dtw_equals_reference_with_ties_and_torch_input():
    rng = np.random.default_rng(1)
    for shape in [(1, 7), (7, 1), (23, 31), (40, 12)]:
        for cost in (rng.random(shape), rng.integers(0, 3, shape).astype(float)):
            assert dtw(cost) == dtw_reference(cost)  # bit-identical, same path
    cost = torch.rand(9, 6)
    assert dtw(cost) == dtw_reference(cost.numpy())
    total, path = dtw(np.zeros((3, 3)))
    assert total == 0.0 and path == [(0, 0), (1, 1), (2, 2)]  # ties: diagonal first


def test_dct_matrix_is_the_orthonormal_dct_ii():
    n_out, n_in = 13, 80
    expected = np.zeros((n_out, n_in))
    for k in range(n_out):  # the textbook formula, float64
        scale = math.sqrt(1.0 / n_in) if k == 0 else math.sqrt(2.0 / n_in)
        for m in range(n_in):
            expected[k, m] = scale * math.cos(math.pi * k * (2 * m + 1) / (2 * n_in))
    basis = dct_matrix(n_out, n_in).numpy()
    np.testing.assert_allclose(basis, expected, rtol=0, atol=1e-14)
    x = np.random.default_rng(2).standard_normal(n_in)
    np.testing.assert_allclose(basis @ x, scipy.fft.dct(x, norm="ortho")[:n_out])
    square = dct_matrix(n_in, n_in)
    torch.testing.assert_close(square @ square.T, torch.eye(n_in, dtype=torch.float64))


@pytest.mark.parametrize(
    "sample_rate,n_fft,n_mels", [(16000, 1024, 80), (22050, 512, 40)]
)
def test_mel_filterbank_equals_librosa_htk(sample_rate, n_fft, n_mels):
    ours = mel_filterbank(sample_rate, n_fft, n_mels).numpy()
    theirs = librosa.filters.mel(
        sr=sample_rate,
        n_fft=n_fft,
        n_mels=n_mels,
        htk=True,
        norm=None,
        dtype=np.float64,
    )
    np.testing.assert_allclose(ours, theirs, atol=1e-12)


@pytest.fixture(scope="module")
def speech():
    """Two TTS test utterances of the bundled corpus (16 kHz) and their rate."""
    corpus = Path(__file__).resolve().parents[2] / "data" / "tinyspeech"
    rows = read_manifest(corpus / "tts_test.jsonl")[:2]
    waves = [load_audio(row["audio_filepath"])[0] for row in rows]
    return waves[0], waves[1], 16000


def test_mel_cepstrum_equals_librosa_mel_and_scipy_dct(speech):
    wave, _, sr = speech
    ours = mel_cepstrum(wave, sr, n_mfcc=20)  # (T, 20)
    mel = librosa.feature.melspectrogram(
        y=wave.double().numpy(),
        sr=sr,
        n_fft=1024,
        hop_length=256,
        n_mels=80,
        htk=True,
        norm=None,
        center=True,
        pad_mode="reflect",
        power=2.0,
    )
    log_mel = np.log(np.maximum(mel, 1e-10))  # (M, T)
    theirs = scipy.fft.dct(log_mel, axis=0, norm="ortho")[:20].T / math.sqrt(2 * 80)
    assert ours.shape == (len(wave) // 256 + 1, 20)
    np.testing.assert_allclose(ours.numpy(), theirs, atol=1e-6)


def test_mcd_is_the_rms_db_difference_of_log_mel_spectra(speech):
    """Parseval: with every coefficient kept, the frame MCD is the RMS over mel bands
    of the difference of the two 10 log10 mel spectra, its mean over bands removed."""
    wave, other, sr = speech
    n_frames = min(len(wave), len(other)) // 256 + 1
    got = mcd(wave, other[: len(wave)], sr, n_mfcc=80, use_dtw=False)
    db = []
    for w in (wave, other[: len(wave)]):
        mel = librosa.feature.melspectrogram(
            y=w.double().numpy(),
            sr=sr,
            n_fft=1024,
            hop_length=256,
            n_mels=80,
            htk=True,
            norm=None,
            pad_mode="reflect",
        )
        db.append(10 * np.log10(np.maximum(mel, 1e-10))[:, :n_frames])
    diff = db[0] - db[1]  # (M, T)
    assert got == pytest.approx(diff.std(axis=0).mean(), rel=1e-9)
    assert MCD_SCALE == pytest.approx(6.141851, rel=1e-6)


def test_identical_waves_zero_and_gain_ignored(speech):
    wave, _, sr = speech
    assert mcd(wave, wave, sr) == 0.0
    assert mcd(wave, wave.numpy(), sr, use_dtw=False) == 0.0
    assert mcd(wave, 0.25 * wave, sr) < 1e-3  # a gain only moves c0


def test_repeated_frames_cost_nothing_with_dtw(speech):
    wave, _, sr = speech
    ceps = mel_cepstrum(wave, sr)  # (T, D)
    index = [t for t in range(len(ceps)) for _ in range(2 if t % 5 == 0 else 1)]
    stretched = ceps[index]  # every 5th frame twice
    assert mcd_from_cepstra(ceps, stretched) == 0.0
    assert mcd_from_cepstra(stretched, ceps) == 0.0
    assert mcd_from_cepstra(ceps, stretched, use_dtw=False) > 5.0
    # the same on the wave: every 8th hop-long block repeated (T grows by 12%)
    blocks = wave[: len(wave) // 256 * 256].view(-1, 256)  # (T, 256)
    index = [t for t in range(len(blocks)) for _ in range(2 if t % 8 == 0 else 1)]
    longer = blocks[index].reshape(-1)
    aligned, frame_by_frame = (
        mcd(wave, longer, sr),
        mcd(wave, longer, sr, use_dtw=False),
    )
    assert aligned < 2.5 and frame_by_frame > 10.0, (aligned, frame_by_frame)


def test_mcd_grows_with_noise_and_is_symmetric(speech):
    wave, other, sr = speech
    noise = torch.randn(len(wave), generator=torch.Generator().manual_seed(3))
    noise *= wave.norm() / noise.norm()  # 0 dB SNR
    values = [mcd(wave, wave + noise * 10 ** (-snr / 20), sr) for snr in (30, 20, 10)]
    assert 0 < values[0] < values[1] < values[2], values
    assert mcd(wave, other, sr) == pytest.approx(mcd(other, wave, sr), rel=1e-12)
    assert mcd(wave, other, sr) > values[0]  # another sentence is further than noise


def test_silence_dropping_and_argument_checks(speech):
    wave, _, sr = speech
    silence = torch.zeros(64 * 256)  # 1.02 s, whole hops: the frames stay on the grid
    padded = torch.cat([silence, wave, silence])
    all_frames = mel_cepstrum(padded, sr)
    loud = mel_cepstrum(padded, sr, silence_db=60)
    assert len(all_frames) - len(loud) >= 2 * 64
    assert mcd(wave, padded, sr, silence_db=60) < 0.1 < 2.0 < mcd(wave, padded, sr)
    with pytest.raises(AssertionError, match="mono"):
        mel_cepstrum(torch.zeros(2, sr), sr)
    with pytest.raises(AssertionError, match=r"cost must be \(N, M\)"):
        dtw(np.zeros(4))
    with pytest.raises(AssertionError, match="cepstra must be"):
        mcd_from_cepstra(torch.zeros(3, 13), torch.zeros(3, 12))


def test_dtw_path_properties_on_random_sizes():
    rng = random.Random(4)
    for _ in range(20):
        n_rows, n_cols = rng.randint(1, 30), rng.randint(1, 30)
        cost = np.random.default_rng(rng.randint(0, 99)).random((n_rows, n_cols))
        total, path = dtw(cost)
        assert path[0] == (0, 0) and path[-1] == (n_rows - 1, n_cols - 1)
        steps = {(b[0] - a[0], b[1] - a[1]) for a, b in zip(path, path[1:])}
        assert steps <= {(1, 0), (0, 1), (1, 1)}
        assert total == pytest.approx(sum(cost[i, j] for i, j in path))
