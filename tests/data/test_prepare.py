"""Real-corpus preparers on tiny fake LibriSpeech, LJSpeech and VoxCeleb trees."""

import json

import numpy as np
import pytest
import soundfile as sf

from minispeech.data.manifest import ManifestError, check_manifest, read_manifest
from minispeech.data.prepare import (
    prepare_librispeech,
    prepare_ljspeech,
    prepare_voxceleb,
)


def write_noise(path, n_frames: int, sample_rate: int = 16000):
    path.parent.mkdir(parents=True, exist_ok=True)
    wave = 0.05 * np.random.default_rng(n_frames).standard_normal(n_frames)
    sf.write(path, wave, sample_rate, subtype="PCM_16")


def librispeech_tree(root):
    """2 splits; dev-clean has 2 speakers, one with 2 chapters."""
    layout = {
        ("dev-clean", "84", "121123"): ["GO DO YOU HEAR", "BUT IN LESS THAN FIVE"],
        ("dev-clean", "84", "121550"): ["IT'S NINE O'CLOCK"],
        ("dev-clean", "174", "50561"): ["FORGOTTEN TOO THE NAME OF GILLIAN"],
        ("test-clean", "1089", "134686"): ["HE HOPED THERE WOULD BE STEW"],
    }
    frames = {}
    for (split, speaker, chapter), texts in layout.items():
        folder = root / split / speaker / chapter
        lines = []
        for k, text in enumerate(texts):
            utt_id = f"{speaker}-{chapter}-{k:04d}"
            frames[utt_id] = 4000 + 1000 * len(frames)
            write_noise(folder / f"{utt_id}.flac", frames[utt_id])
            lines.append(f"{utt_id} {text}")
        (folder / f"{speaker}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    return frames


def test_librispeech(tmp_path):
    frames = librispeech_tree(tmp_path / "LibriSpeech")
    out = prepare_librispeech(tmp_path / "LibriSpeech", tmp_path / "manifests")
    assert sorted(out) == ["dev-clean", "test-clean"]
    assert out["dev-clean"] == tmp_path / "manifests" / "dev-clean.jsonl"
    rows = read_manifest(out["dev-clean"], ("audio_filepath", "duration", "text"))
    ids = ["174-50561-0000", "84-121123-0000", "84-121123-0001", "84-121550-0000"]
    assert [r["id"] for r in rows] == ids
    by_id = {r["id"]: r for r in rows}
    assert by_id["84-121550-0000"]["text"] == "it's nine o'clock"
    assert by_id["84-121123-0001"]["speaker"] == "84"
    for utt_id, row in by_id.items():
        assert row["duration"] == pytest.approx(frames[utt_id] / 16000, abs=1e-4)
    stored = json.loads(out["test-clean"].read_text().splitlines()[0])
    assert stored["audio_filepath"] == (
        "../LibriSpeech/test-clean/1089/134686/1089-134686-0000.flac"
    )  # relative to the manifest
    assert check_manifest(out["dev-clean"]).ok
    assert check_manifest(out["dev-clean"]).n_speakers == 2


def test_librispeech_single_split_root_and_problems(tmp_path):
    librispeech_tree(tmp_path / "LS")
    out = prepare_librispeech(tmp_path / "LS" / "test-clean", tmp_path / "one")
    assert list(out) == ["test-clean"]
    assert len(read_manifest(out["test-clean"])) == 1

    chapter = tmp_path / "LS" / "dev-clean" / "84" / "121123"
    (chapter / "84-121123-0001.flac").unlink()
    with (chapter / "84-121123.trans.txt").open("a") as f:
        f.write("84-121123-0002\n")
    with pytest.raises(ManifestError) as info:
        prepare_librispeech(tmp_path / "LS", tmp_path / "bad")
    problems = info.value.problems
    assert len(problems) == 2
    missing = chapter / "84-121123-0001.flac"
    assert problems[0].endswith(f".trans.txt:2: audio_filepath: {missing} missing")
    assert problems[1].endswith(":3: text: no transcript for 84-121123-0002")
    assert not (tmp_path / "bad").exists()  # nothing written on error
    with pytest.raises(ManifestError, match="no <speaker>/<chapter>"):
        prepare_librispeech(tmp_path / "one", tmp_path / "x")
    with pytest.raises(ManifestError, match="corpus folder not found"):
        prepare_librispeech(tmp_path / "nowhere", tmp_path / "x")


def test_ljspeech(tmp_path):
    root = tmp_path / "LJSpeech-1.1"
    write_noise(root / "wavs" / "LJ001-0001.wav", 22050, sample_rate=22050)
    write_noise(root / "wavs" / "LJ001-0002.wav", 11025, sample_rate=22050)
    (root / "metadata.csv").write_text(
        'LJ001-0001|He said "in 1884, Mr. Smith"|He said "in eighteen eighty-four, '
        'Mister Smith"\n'
        "LJ001-0002|in being comparatively modern.\n"  # no normalized column
    )
    out = prepare_ljspeech(root, tmp_path / "m")
    rows = read_manifest(out["ljspeech"], ("audio_filepath", "duration", "text"))
    assert [r["id"] for r in rows] == ["LJ001-0001", "LJ001-0002"]
    assert rows[0]["text"] == 'He said "in eighteen eighty-four, Mister Smith"'
    assert rows[0]["raw_text"] == 'He said "in 1884, Mr. Smith"'
    assert rows[1]["text"] == "in being comparatively modern."
    assert [r["duration"] for r in rows] == [1.0, 0.5]
    assert check_manifest(out["ljspeech"]).ok

    (root / "metadata.csv").write_text("LJ001-0001\nLJ009-0009|gone|gone\n")
    with pytest.raises(ManifestError) as info:
        prepare_ljspeech(root, tmp_path / "m2")
    expected = "metadata.csv:1: line: expected id|text|normalized text"
    assert info.value.problems[0].endswith(expected)
    assert "metadata.csv:2: audio_filepath:" in info.value.problems[1]
    with pytest.raises(ManifestError, match="not an LJSpeech folder"):
        prepare_ljspeech(tmp_path / "m", tmp_path / "m3")


def test_voxceleb(tmp_path):
    root = tmp_path / "wav"
    layout = [
        ("id10001", "1zcIwhmdeo4", "00001", 8000),
        ("id10001", "7gWzIy6yIIk", "00002", 12000),
        ("id10002", "0abcDEF", "00001", 16000),
    ]
    for speaker, video, utt, n_frames in layout:
        write_noise(root / speaker / video / f"{utt}.wav", n_frames)
    out = prepare_voxceleb(root, tmp_path / "m")
    rows = read_manifest(out["voxceleb"])
    assert [r["speaker"] for r in rows] == ["id10001", "id10001", "id10002"]
    assert rows[1]["id"] == "id10001/7gWzIy6yIIk/00002"
    assert [r["duration"] for r in rows] == [0.5, 0.75, 1.0]
    report = check_manifest(out["voxceleb"])
    assert report.ok and report.n_speakers == 2 and report.n_utterances == 3

    (root / "id10003" / "v").mkdir(parents=True)
    (root / "id10003" / "v" / "00001.wav").write_bytes(b"RIFF....garbage")
    with pytest.raises(ManifestError, match="00001.wav: not a readable audio file"):
        prepare_voxceleb(root, tmp_path / "m4")
    with pytest.raises(ManifestError, match="no <speaker>/<video>/<utt>.wav"):
        prepare_voxceleb(tmp_path / "m", tmp_path / "m5")
