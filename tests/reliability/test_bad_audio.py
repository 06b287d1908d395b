"""Bad audio: every unreadable file or impossible request is one AudioError line that
starts with the file's path; reading never writes, and a failed save leaves the file
that was there before untouched (libsndfile itself would truncate it first).
"""

import re

import numpy as np
import pytest
import soundfile as sf

from minispeech.audio.io import AudioError, audio_info, load_audio, save_audio
from minispeech.errors import MinispeechError

SR = 16000


def noise(n: int, n_channels: int = 1) -> np.ndarray:
    """(S, C) float32 noise, as soundfile writes it."""
    rng = np.random.default_rng(n)
    return (0.1 * rng.standard_normal((n, n_channels))).astype(np.float32)


def snapshot(folder) -> dict:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- files to read


def missing(d):
    return d / "nope.wav"


def a_folder(d):
    (d / "sub.wav").mkdir()
    return d / "sub.wav"


def text_file(d):
    (d / "notes.wav").write_text("this is not audio, just text\n" * 10)
    return d / "notes.wav"


def random_bytes(d):
    (d / "noise.flac").write_bytes(np.random.default_rng(0).bytes(4096))
    return d / "noise.flac"


def zero_bytes(d):
    (d / "zero.wav").write_bytes(b"")
    return d / "zero.wav"


def header_only(d):
    sf.write(d / "good.wav", noise(1000), SR)
    (d / "head.wav").write_bytes((d / "good.wav").read_bytes()[:30])
    return d / "head.wav"


def truncated_flac(d):
    sf.write(d / "good.flac", noise(3 * SR), SR, subtype="PCM_16")
    (d / "cut.flac").write_bytes((d / "good.flac").read_bytes()[:20000])
    return d / "cut.flac"


def no_frames(d):
    sf.write(d / "empty.wav", np.zeros((0, 1), np.float32), SR)
    return d / "empty.wav"


def float_with(value):
    def make(d):
        wave = noise(1000, 2)
        wave[700, 1] = value
        sf.write(d / "float.wav", wave, SR, subtype="FLOAT")
        return d / "float.wav"

    return make


def one_second(d):
    sf.write(d / "one.wav", noise(SR), SR, subtype="PCM_16")
    return d / "one.wav"


# (make the file, function, keyword arguments, regex after "path: ")
READS = [
    pytest.param(missing, load_audio, {}, "no such file$", id="missing"),
    pytest.param(missing, audio_info, {}, "no such file$", id="missing-info"),
    pytest.param(a_folder, load_audio, {}, "not a file$", id="folder"),
    pytest.param(text_file, load_audio, {}, "not a readable audio file", id="text"),
    pytest.param(text_file, audio_info, {}, "not a readable audio", id="text-info"),
    pytest.param(random_bytes, load_audio, {}, "not a readable audio", id="bytes"),
    pytest.param(zero_bytes, load_audio, {}, "not a readable audio", id="zero-byte"),
    pytest.param(header_only, load_audio, {}, "not a readable audio", id="header"),
    pytest.param(
        truncated_flac,
        load_audio,
        {},
        "(corrupt or truncated|not a readable audio file .*lost sync)",
        id="truncated-flac",
    ),
    pytest.param(no_frames, load_audio, {}, r"empty audio \(0 frames\)", id="empty"),
    pytest.param(no_frames, audio_info, {}, "empty audio", id="empty-info"),
    pytest.param(
        float_with(np.nan), load_audio, {}, "NaN or inf sample at frame 700$", id="nan"
    ),
    pytest.param(
        float_with(-np.inf), load_audio, {}, "NaN or inf sample at frame 700", id="inf"
    ),
    pytest.param(
        one_second,
        load_audio,
        {"offset": 1.5},
        r"offset 1.500 s \(frame 24000\) is past the end of the file \(16000 frames",
        id="offset-past-end",
    ),
    pytest.param(
        one_second, load_audio, {"offset": -0.1}, "offset must be", id="neg-offset"
    ),
    pytest.param(
        one_second, load_audio, {"duration": 0.0}, "duration must be", id="zero-dur"
    ),
    pytest.param(
        one_second,
        load_audio,
        {"duration": 1e-6},
        "duration 1e-06 s is less than one frame$",
        id="sub-frame-duration",
    ),
    pytest.param(
        one_second,
        load_audio,
        {"sample_rate": 0},
        "sample_rate must be a positive integer, got 0",
        id="rate-zero",
    ),
    pytest.param(
        one_second,
        load_audio,
        {"sample_rate": 16000.5},
        "sample_rate must be a positive integer, got 16000.5",
        id="rate-fraction",
    ),
]


@pytest.mark.parametrize("make, call, kwargs, expected", READS)
def test_bad_audio_read_is_one_line_naming_the_file(
    tmp_path, make, call, kwargs, expected
):
    path = make(tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(AudioError) as error:
        call(path, **kwargs)
    message = str(error.value)
    assert "\n" not in message, message
    assert re.match(f"{re.escape(str(path))}: {expected}", message), message
    assert isinstance(error.value, MinispeechError)
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------- saves that fail

GOOD_WAVE = noise(SR).T  # (1, S)


# (file name, wave, sample rate, subtype, regex after "path: ")
SAVES = [
    pytest.param("x.mp3", GOOD_WAVE, SR, None, "unknown audio extension '.mp3'"),
    pytest.param("x.wav", GOOD_WAVE, 0, None, "sample_rate must be a positive"),
    pytest.param("x.opus", GOOD_WAVE, 44100, None, "cannot write OGG/OPUS at 44100"),
    pytest.param("x.ogg", GOOD_WAVE, SR, "PCM_16", "cannot write OGG/PCM_16"),
    pytest.param("x.wav", np.full((1, 100), np.nan, np.float32), SR, None, "NaN"),
    pytest.param("x.wav", np.zeros((1, 0), np.float32), SR, None, "non-empty"),
    pytest.param("x.wav", np.zeros((100, 2), np.float32), SR, None, "pass .C, S."),
    pytest.param("x.wav", np.zeros(100, np.int16), SR, None, "floating point"),
]


@pytest.mark.parametrize("name, wave, rate, subtype, expected", SAVES)
def test_failed_save_keeps_the_old_file(tmp_path, name, wave, rate, subtype, expected):
    path = tmp_path / name
    if path.suffix != ".mp3":
        save_audio(path, GOOD_WAVE, 16000)  # a good file is already there
    before = snapshot(tmp_path)
    with pytest.raises(AudioError) as error:
        save_audio(path, wave, rate, subtype=subtype)
    message = str(error.value)
    assert "\n" not in message, message
    assert re.match(f"{re.escape(str(path))}: .*{expected}", message), message
    assert snapshot(tmp_path) == before  # old bytes kept, no partial file left
