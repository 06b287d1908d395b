"""Manifests: every kind of bad line reported with its line number, round trips,
duration filtering, and the header check behind `minispeech manifest check`."""

import json
import math

import numpy as np
import pytest

from minispeech.audio.io import save_audio
from minispeech.data.manifest import (
    ManifestError,
    check_manifest,
    filter_by_duration,
    read_manifest,
    write_manifest,
)


def tone(path, seconds: float, sample_rate: int = 16000):
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    save_audio(path, wave, sample_rate)
    return path


@pytest.fixture
def audio_dir(tmp_path):
    folder = tmp_path / "audio"
    folder.mkdir()
    tone(folder / "a.wav", 1.0)
    tone(folder / "b.flac", 0.5)
    return folder


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def row(**fields):
    base = {"audio_filepath": "audio/a.wav", "duration": 1.0, "text": "hello"}
    return json.dumps({**base, **fields})


def test_read_good_manifest_resolves_relative_paths(tmp_path, audio_dir):
    lines = [
        row(speaker=3),
        "",  # blank lines are skipped
        json.dumps({"audio_filepath": str(audio_dir / "b.flac"), "duration": 0.5}),
        row(offset=0.25, duration=0.5, lang="en"),
    ]
    rows = read_manifest(write_lines(tmp_path / "m.jsonl", lines))
    paths = [str(audio_dir / name) for name in ("a.wav", "b.flac", "a.wav")]
    assert [r["audio_filepath"] for r in rows] == paths
    assert rows[0]["speaker"] == 3 and rows[2]["lang"] == "en"
    assert rows[2]["offset"] == 0.25


# (line, expected "field: problem" text) for every kind of bad line.
BAD_LINES = [
    ('{"audio_filepath": "audio/a.wav", "duration": 1.0', "json: invalid JSON"),
    ('["audio/a.wav", 1.0]', "json: not a JSON object (got list)"),
    (json.dumps({"duration": 1.0, "text": "hi"}), "audio_filepath: missing"),
    (row(duration=None), "duration: null"),
    (row(duration="1.0"), 'duration: must be a number, got "1.0"'),
    (row(duration=True), "duration: must be a number, got true"),
    (row(audio_filepath=7), "audio_filepath: must be a string, got 7"),
    (row(duration=0), "duration: must be positive, got 0"),
    (row(duration=-2.5), "duration: must be positive, got -2.5"),
    (row(duration=math.nan), "duration: must be finite, got nan"),
    (row(duration=-math.inf), "duration: must be finite, got -inf"),
    (row(audio_filepath="audio/missing.wav"), "audio_filepath: audio file not found"),
    (row(audio_filepath="audio"), "audio_filepath: not a file"),
    (row(audio_filepath="  "), "audio_filepath: empty path"),
    (row(text="   "), "text: empty text"),
    (row(text=["hello"]), "text: must be a string"),
    (row(offset=-0.5, duration=0.25), "offset: must be >= 0, got -0.5"),
    (row(speaker=1.5), "speaker: must be a string or an integer, got 1.5"),
    (row()[:-1] + ', "duration": 2}', "duration: key appears more than once"),
    (row(), "audio_filepath: duplicate of line 1"),  # line 1 is row() too
]


def test_every_bad_line_reported_with_its_line_number(tmp_path, audio_dir):
    lines = [row()] + [line for line, _ in BAD_LINES]
    path = write_lines(tmp_path / "bad.jsonl", lines)
    with pytest.raises(ManifestError) as info:
        read_manifest(path, required=("audio_filepath", "duration", "text"))
    problems = info.value.problems
    assert str(info.value).startswith(f"{len(problems)} problems in manifest:")
    for line_number, (_, expected) in enumerate(BAD_LINES, start=2):
        mine = [p for p in problems if p.startswith(f"{path}:{line_number}: ")]
        assert mine, f"line {line_number} not reported ({expected})"
        assert any(expected in p for p in mine), (expected, mine)
    assert not any(p.startswith(f"{path}:1: ") for p in problems)  # the good line
    assert len(problems) == len(BAD_LINES)  # one problem each, nothing invented


def test_all_problems_of_one_line_are_listed(tmp_path, audio_dir):
    line = row(audio_filepath="audio/nope.wav", duration=-1, text="")
    path = write_lines(tmp_path / "m.jsonl", [line])
    with pytest.raises(ManifestError) as info:
        read_manifest(path, required=("audio_filepath", "duration", "text"))
    text = str(info.value)
    assert "m.jsonl:1: duration: must be positive" in text
    assert "m.jsonl:1: text: empty" in text
    assert "m.jsonl:1: audio_filepath: audio file not found" in text


def test_text_only_required_when_asked_and_check_audio_off(tmp_path):
    lines = [row(text=""), row(text="x", duration=2.0)]
    path = write_lines(tmp_path / "m.jsonl", lines)
    rows = read_manifest(path, check_audio=False)  # audio/ does not exist here
    assert [r["text"] for r in rows] == ["", "x"]
    with pytest.raises(ManifestError, match="m.jsonl:1: text: empty text"):
        read_manifest(path, ("audio_filepath", "duration", "text"), check_audio=False)


def test_empty_missing_and_binary_manifests(tmp_path):
    with pytest.raises(ManifestError, match="empty manifest"):
        read_manifest(write_lines(tmp_path / "empty.jsonl", ["", "  "]))
    with pytest.raises(ManifestError, match="manifest file not found"):
        read_manifest(tmp_path / "nope.jsonl")
    (tmp_path / "bin.jsonl").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ManifestError, match="not UTF-8"):
        read_manifest(tmp_path / "bin.jsonl")


def test_write_read_round_trip_with_relative_paths(tmp_path, audio_dir):
    rows = [
        {"audio_filepath": str(audio_dir / "a.wav"), "duration": 1.0, "text": "héllo"},
        {"audio_filepath": str(audio_dir / "b.flac"), "duration": 0.5, "speaker": "s1"},
    ]
    out = tmp_path / "sub" / "m.jsonl"
    write_manifest(out, rows, relative_to=out.parent)
    stored = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert stored[0]["audio_filepath"] == "../audio/a.wav"
    assert "héllo" in out.read_text(encoding="utf-8")  # UTF-8, not \u escapes
    assert read_manifest(out) == rows
    absolute = tmp_path / "abs.jsonl"
    write_manifest(absolute, rows)
    assert json.loads(absolute.read_text().splitlines()[1]) == rows[1]
    with pytest.raises(TypeError, match="row 0 must be a dict"):
        write_manifest(tmp_path / "x.jsonl", [["a"]])


def test_filter_by_duration_reports_and_refuses_empty(capsys):
    rows = [{"duration": d} for d in (0.2, 1.0, 3.0, 30.0, 45.0)]
    kept = filter_by_duration(rows, min_duration=0.5, max_duration=20.0, name="train")
    assert [r["duration"] for r in kept] == [1.0, 3.0]
    report = capsys.readouterr().out
    assert "train: kept 2 of 5 utterances" in report
    assert "dropped 1 shorter than 0.5 s" in report
    assert "2 longer than 20.0 s" in report
    assert filter_by_duration(rows) == rows  # no bounds: everything, silently
    assert len(filter_by_duration(rows, max_duration=3.0)) == 3  # bounds inclusive
    with pytest.raises(ManifestError, match="dev: duration filter kept nothing"):
        filter_by_duration(rows, min_duration=100.0, name="dev")


def test_check_manifest_compares_headers(tmp_path, audio_dir):
    lines = [
        row(speaker="a"),
        row(audio_filepath="audio/b.flac", duration=0.505, speaker="b"),  # 5 ms off
        row(offset=0.5, duration=0.5, speaker="a"),
    ]
    good = write_lines(tmp_path / "good.jsonl", lines)
    report = check_manifest(good)
    assert report.ok and report.n_utterances == 3 and report.n_speakers == 2
    assert math.isclose(report.hours, 2.005 / 3600)
    text = str(report)
    assert "utterances: 3" in text and "speakers:   2" in text and "ok:" in text

    (tmp_path / "audio" / "junk.wav").write_bytes(b"not audio at all")
    lines = [
        row(),
        row(duration=1.02),  # 20 ms off
        row(offset=0.6, duration=0.5),  # ends 0.1 s after the file
        row(audio_filepath="audio/junk.wav"),
    ]
    bad = write_lines(tmp_path / "bad.jsonl", lines)
    report = check_manifest(bad)
    assert not report.ok and report.n_speakers is None
    assert len(report.problems) == 3
    assert report.problems[0].startswith(f"{bad}:2: duration: 1.02 s in the manifest")
    assert report.problems[1].startswith(f"{bad}:3: duration: segment 0.6 + 0.5 s")
    assert report.problems[2].startswith(f"{bad}:4: audio_filepath: ")
    assert "3 problems" in str(report)


def test_duplicates_are_found_without_a_duration_field(tmp_path):
    """Manifests whose reader does not require `duration` (audio-to-audio pairs,
    the enhance verb) still get the duplicate check, not a KeyError."""
    from minispeech.data.manifest import read_numbered_manifest

    tone(tmp_path / "a.wav", 0.5)
    rows = [{"audio_filepath": "a.wav"}, {"audio_filepath": "a.wav"}]
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ManifestError, match="m.jsonl:2: audio_filepath: duplicate"):
        read_numbered_manifest(path, required=())
