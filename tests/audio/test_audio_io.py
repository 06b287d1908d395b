"""load_audio / save_audio / audio_info: round trips, partial reads, errors.

Every fixture file is written here into tmp_path with soundfile (or as raw bytes
for the corrupt ones), so the expected samples are known exactly.
"""

import math
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch

from minispeech.audio import (
    AudioError,
    AudioInfo,
    audio_info,
    load_audio,
    resample,
    save_audio,
)

SR = 16000


def noise(n_channels, n, scale=0.3):
    """Deterministic (C, S) noise in [-1, 1]."""
    rng = np.random.default_rng(n_channels * 1000 + n)
    return np.clip(rng.standard_normal((n_channels, n)) * scale, -1, 1).astype(
        np.float32
    )


def write(path, wave_cs, sample_rate=SR, subtype=None):
    """Write a (C, S) array with soundfile directly (independent of save_audio)."""
    sf.write(str(path), wave_cs.T, sample_rate, subtype=subtype)
    return path


# ---------------------------------------------------------------- round trips
@pytest.mark.parametrize("ext", [".wav", ".flac"])
@pytest.mark.parametrize("n_channels", [1, 2])
def test_pcm16_round_trip_within_one_step(tmp_path, ext, n_channels):
    wave = noise(n_channels, 4000)
    path = tmp_path / f"x{ext}"
    save_audio(path, torch.from_numpy(wave if n_channels > 1 else wave[0]), SR)
    assert sf.info(str(path)).subtype == "PCM_16"
    got, sr = load_audio(path, mono=False)
    assert sr == SR and got.dtype == torch.float32 and got.shape == (n_channels, 4000)
    assert np.abs(got.numpy() - wave).max() <= 1 / 32768


def test_float_wav_round_trip_is_exact(tmp_path):
    wave = noise(2, 1000)
    save_audio(tmp_path / "x.wav", wave, 8000, subtype="FLOAT")
    got, sr = load_audio(tmp_path / "x.wav", mono=False)
    assert sr == 8000 and np.array_equal(got.numpy(), wave)


@pytest.mark.parametrize(
    "subtype,step",
    [("PCM_U8", 1 / 128), ("PCM_24", 2**-23), ("PCM_32", 2**-31), ("DOUBLE", 0)],
)
def test_any_subtype_loads_as_float32_in_range(tmp_path, subtype, step):
    wave = noise(1, 2000, scale=0.5)
    wave[0, :2] = [-1.0, 0.999]
    path = write(tmp_path / "x.wav", wave, subtype=subtype)
    got, _ = load_audio(path)
    assert got.dtype == torch.float32 and got.shape == (2000,)
    assert got.abs().max() <= 1.0
    assert np.abs(got.numpy() - wave[0]).max() <= step + 1e-7


@pytest.mark.parametrize("ext,min_snr_db", [(".ogg", 20.0), (".opus", 15.0)])
def test_lossy_ogg_round_trip(tmp_path, ext, min_snr_db):
    # A lossy codec: only the length, the rate and a rough SNR can be checked.
    t = np.arange(SR) / SR
    wave = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    save_audio(tmp_path / f"x{ext}", wave, SR)
    got, sr = load_audio(tmp_path / f"x{ext}")
    assert sr == SR and got.shape == (SR,)
    snr = 10 * np.log10((wave**2).sum() / ((got.numpy() - wave) ** 2).sum())
    assert snr > min_snr_db


def test_audio_info_reads_the_header(tmp_path):
    path = write(tmp_path / "x.flac", noise(3, 12345), sample_rate=22050)
    info = audio_info(path)
    assert info == AudioInfo(22050, 12345, 3, 12345 / 22050)


# ------------------------------------------------------------- partial reads
@pytest.mark.parametrize("ext", [".wav", ".flac"])
def test_offset_and_duration_equal_a_slice_of_the_full_read(tmp_path, ext):
    wave = noise(2, 3 * SR)
    path = write(tmp_path / f"x{ext}", wave)
    full, _ = load_audio(path, mono=False)
    for offset, duration in [
        (0.0, 0.5),
        (0.25, 1.0),
        (1.3, None),
        (2.9, 1.0),
        (0.0, None),
    ]:
        part, _ = load_audio(path, offset=offset, duration=duration, mono=False)
        start = round(offset * SR)
        stop = 3 * SR if duration is None else min(3 * SR, start + round(duration * SR))
        assert torch.equal(part, full[:, start:stop]), (offset, duration)


def test_partial_read_seeks_and_decodes_only_the_frames_asked(tmp_path, monkeypatch):
    path = write(tmp_path / "long.flac", noise(1, 60 * SR, scale=0.1))  # 60 s
    calls = []
    real_seek, real_read = sf.SoundFile.seek, sf.SoundFile.read

    def seek(self, frames, whence=sf.SEEK_SET):
        if whence == sf.SEEK_SET:  # soundfile's own tell() is a SEEK_CUR by 0
            calls.append(("seek", frames))
        return real_seek(self, frames, whence)

    def read(self, frames=-1, *args, **kwargs):
        calls.append(("read", frames))
        return real_read(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "seek", seek)
    monkeypatch.setattr(sf.SoundFile, "read", read)
    part, _ = load_audio(path, offset=42.0, duration=0.1)
    # One absolute seek to 42 s, then one read of 0.1 s (soundfile re-syncs after).
    assert calls[:2] == [("seek", 42 * SR), ("read", 1600)]
    assert [call for call in calls if call[0] == "read"] == [("read", 1600)]
    monkeypatch.undo()
    with sf.SoundFile(str(path)) as f:
        f.seek(42 * SR)
        assert np.array_equal(part.numpy(), f.read(1600, dtype="float32"))


def test_duration_past_the_end_is_shortened(tmp_path):
    path = write(tmp_path / "x.wav", noise(1, SR))
    part, _ = load_audio(path, offset=0.75, duration=10.0)
    assert part.shape == (SR // 4,)


def test_mono_is_the_mean_of_the_channels(tmp_path):
    path = write(tmp_path / "x.wav", noise(3, 2000), subtype="FLOAT")
    both, _ = load_audio(path, mono=False)  # (3, S)
    mono, _ = load_audio(path)  # (S,)
    assert mono.shape == (2000,)
    torch.testing.assert_close(mono, both.mean(dim=0))
    one, _ = load_audio(write(tmp_path / "m.wav", noise(1, 100)), mono=False)
    assert one.shape == (1, 100)


def test_resample_on_load(tmp_path):
    path = write(
        tmp_path / "x.wav", noise(2, 22050), sample_rate=22050, subtype="FLOAT"
    )
    native, sr = load_audio(path, mono=False)
    assert sr == 22050
    got, sr = load_audio(path, sample_rate=16000, mono=False)
    assert sr == 16000 and got.shape == (2, 16000)
    torch.testing.assert_close(got, resample(native, 22050, 16000))
    same, sr = load_audio(path, sample_rate=22050, mono=False)
    assert sr == 22050 and torch.equal(same, native)


# -------------------------------------------------------------------- errors
def error_for(call, *args, **kwargs) -> str:
    with pytest.raises(AudioError) as info:
        call(*args, **kwargs)
    return str(info.value)


def test_missing_file_and_directory(tmp_path):
    for call in (load_audio, audio_info):
        message = error_for(call, tmp_path / "nope.wav")
        assert str(tmp_path / "nope.wav") in message and "no such file" in message
        assert "not a file" in error_for(call, tmp_path)


@pytest.mark.parametrize("case", ["text", "short_header", "random_bytes"])
def test_unreadable_bytes(tmp_path, case):
    path = tmp_path / "bad.wav"
    if case == "text":
        path.write_text("this is not audio, just some text\n" * 10)
    elif case == "short_header":
        write(tmp_path / "good.wav", noise(1, 1000))
        path.write_bytes((tmp_path / "good.wav").read_bytes()[:30])
    else:
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    for call in (load_audio, audio_info):
        message = error_for(call, path)
        assert str(path) in message and "not a readable audio file" in message


def test_truncated_flac_data(tmp_path):
    write(tmp_path / "good.flac", noise(1, 3 * SR))
    data = (tmp_path / "good.flac").read_bytes()
    path = tmp_path / "cut.flac"
    path.write_bytes(data[: len(data) // 2])
    assert audio_info(path).num_frames == 3 * SR  # the header still promises 3 s
    message = error_for(load_audio, path)
    assert str(path) in message
    first, _ = load_audio(path, duration=0.5)  # the intact part still reads
    assert first.shape == (SR // 2,)


def test_empty_audio(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(str(path), np.zeros(0, np.float32), SR)
    for call in (load_audio, audio_info):
        message = error_for(call, path)
        assert str(path) in message and "empty audio" in message


def test_offset_past_the_end_and_bad_numbers(tmp_path):
    path = write(tmp_path / "x.wav", noise(1, SR))
    for offset in (1.0, 5.0):
        assert "past the end" in error_for(load_audio, path, offset=offset)
    assert "offset" in error_for(load_audio, path, offset=-0.1)
    assert "duration" in error_for(load_audio, path, duration=-1.0)
    assert "duration" in error_for(load_audio, path, duration=0.0)
    assert "less than one frame" in error_for(load_audio, path, duration=1e-6)
    assert "sample_rate" in error_for(load_audio, path, sample_rate=0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_in_a_float_file(tmp_path, bad):
    wave = noise(2, 1000)
    wave[1, 700] = bad
    path = write(tmp_path / "x.wav", wave, subtype="FLOAT")
    message = error_for(load_audio, path)
    assert str(path) in message and "NaN or inf" in message and "frame 700" in message
    clean, _ = load_audio(path, duration=600 / SR)  # the frames before it are fine
    assert torch.isfinite(clean).all()


def test_save_refuses_bad_input(tmp_path):
    wave = noise(1, 100)[0]
    message = error_for(save_audio, tmp_path / "x.mp4", wave, SR)
    assert (
        "x.mp4" in message
        and "unknown audio extension" in message
        and ".flac" in message
    )
    assert "(C, S)" in error_for(save_audio, tmp_path / "x.wav", noise(1, 100).T, SR)
    assert "NaN" in error_for(save_audio, tmp_path / "x.wav", wave * np.nan, SR)
    assert "non-empty" in error_for(save_audio, tmp_path / "x.wav", wave[:0], SR)
    assert "floating" in error_for(
        save_audio, tmp_path / "x.wav", np.zeros(9, np.int16), SR
    )
    assert "sample_rate" in error_for(save_audio, tmp_path / "x.wav", wave, -1)
    missing_dir = tmp_path / "no" / "x.wav"
    assert str(missing_dir) in error_for(save_audio, missing_dir, wave, SR)


def test_save_clips_out_of_range_pcm_with_a_warning(tmp_path):
    wave = np.array([0.5, 1.5, -2.0, -0.25], np.float32)
    with pytest.warns(UserWarning, match="2 samples outside"):
        save_audio(tmp_path / "x.flac", wave, SR)
    got, _ = load_audio(tmp_path / "x.flac")
    assert np.abs(got.numpy() - [0.5, 1.0, -1.0, -0.25]).max() <= 1 / 32768
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # float files keep the values: no warning
        save_audio(tmp_path / "f.wav", wave, SR, subtype="FLOAT")
    assert np.array_equal(load_audio(tmp_path / "f.wav")[0].numpy(), wave)
    assert math.isclose(audio_info(tmp_path / "f.wav").duration, 4 / SR)
