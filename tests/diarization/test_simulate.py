"""Simulated conversations, their files (WAV, RTTM, NeMo diarization manifest), the
`corpus conversations` verb and reading the manifest back."""

import json
import random

import numpy as np
import pytest
from conftest import corpus_rows

from minispeech.audio.io import audio_info
from minispeech.command_line import CommandError
from minispeech.data import ManifestError
from minispeech.diarization.commands import conversations_verb
from minispeech.diarization.rttm import Segment, read_rttm, rttm_lines, write_rttm
from minispeech.diarization.simulate import (
    conversations,
    make_conversation,
    read_diarization_manifest,
    turn_starts,
    write_conversations,
)


def test_conversation_segments_match_audio():
    rng = random.Random(0)
    turns = []
    for k in range(10):
        n = rng.randint(8000, 24000)
        tone = 0.3 * np.sin(2 * np.pi * (200 + 50 * k) * np.arange(n) / 16000)
        turns.append((tone.astype(np.float32), f"s{k % 3}"))
    wave, segments = make_conversation(turns, rng, gap_range=(-0.4, 0.8))
    inside = np.zeros(len(wave), bool)
    for s in segments:
        a, b = round(s.start * 16000), round((s.start + s.duration) * 16000)
        inside[a:b] = True
        assert np.sqrt(np.mean(wave[a:b] ** 2)) > 0.1  # speech energy in every turn
    assert np.all(wave[~inside] == 0.0) and (~inside).any()  # silence outside
    starts = [s.start for s in segments]
    assert starts == sorted(starts)
    pairs = zip(segments, segments[1:])
    overlap = sum(1 for x, y in pairs if y.start < x.start + x.duration)
    assert overlap > 0  # the gap range includes overlaps


def test_conversations_from_corpus_and_rttm_roundtrip(corpus_dir, tmp_path):
    rows = corpus_rows(corpus_dir)
    recs = conversations(rows, n_recordings=2, seed=5, n_speakers=(2, 3))
    for rec, wave, segments in recs:
        assert 2 <= len({s.speaker for s in segments}) <= 3
        assert all(a.speaker != b.speaker for a, b in zip(segments, segments[1:]))
        end = max(s.start + s.duration for s in segments)
        assert abs(end - len(wave) / 16000) < 1e-6
        write_rttm(tmp_path / f"{rec}.rttm", rec, segments)
        back = read_rttm(tmp_path / f"{rec}.rttm")[rec]
        assert [(b.speaker, round(b.start, 3)) for b in back] == [
            (s.speaker, round(s.start, 3)) for s in segments
        ]
    line = rttm_lines("conv", [Segment(1.5, 2.25, "m21")])[0]
    assert line == "SPEAKER conv 1 1.500 2.250 <NA> <NA> m21 <NA> <NA>"
    (tmp_path / "bad.rttm").write_text("SPEAKER x 1 0.0\n")
    with pytest.raises(ValueError, match="bad.rttm:1"):
        read_rttm(tmp_path / "bad.rttm")


def test_turn_starts_hand_case():
    # 2 s, then 1 s overlapping it by at most half of 2 s, then 1 s after a pause
    starts = turn_starts([2.0, 1.0, 1.0], [0.0, -5.0, 0.5])
    assert starts == pytest.approx([0.0, 1.0, 2.5])
    assert turn_starts([1.0, 1.0], [0.0, -0.25]) == pytest.approx([0.0, 0.75])


def test_conversations_lengths_and_speakers(corpus_dir):
    rows = corpus_rows(corpus_dir)
    recs = conversations(rows, n_recordings=6, seed=0, seconds=(10.0, 16.0))
    counts = [len({s.speaker for s in segments}) for _, _, segments in recs]
    assert all(2 <= k <= 4 for k in counts) and len(set(counts)) > 1
    for _, wave, segments in recs:
        assert 10.0 <= len(wave) / 16000 <= 16.0
        assert float(np.abs(wave).max()) <= 0.99 + 1e-6  # rescaled, never clipped
        starts = [s.start for s in segments]
        assert starts == sorted(starts)
        assert all(a.speaker != b.speaker for a, b in zip(segments, segments[1:]))
    with pytest.raises(ValueError, match="speakers"):
        conversations(rows[:1], 1, 0)  # one speaker cannot hold a conversation


def test_write_conversations_files_and_manifest(corpus_dir, tmp_path):
    recs = conversations(corpus_rows(corpus_dir), 2, seed=1, seconds=(8.0, 12.0))
    manifest = write_conversations(tmp_path / "conv", recs)
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert len(lines) == 2
    for (rec, wave, segments), line in zip(recs, lines):
        assert line["audio_filepath"] == f"{rec}.wav"  # relative to the manifest
        assert line["rttm_filepath"] == f"{rec}.rttm"
        assert line["offset"] == 0 and line["label"] == "infer"
        assert line["text"] == "-" and line["uem_filepath"] is None
        assert line["num_speakers"] == len({s.speaker for s in segments})
        info = audio_info(tmp_path / "conv" / f"{rec}.wav")
        assert info.sample_rate == 16000 and info.num_frames == len(wave)
        assert line["duration"] == pytest.approx(len(wave) / 16000)
        back = read_rttm(tmp_path / "conv" / f"{rec}.rttm")[rec]
        assert [(b.speaker, b.start) for b in back] == [
            (s.speaker, pytest.approx(s.start, abs=5e-4)) for s in segments
        ]
    rows = read_diarization_manifest(manifest)  # and back, paths resolved
    assert [number for number, _ in rows] == [1, 2]
    row = rows[0][1]
    assert row["audio_filepath"] == str(tmp_path / "conv" / "conv000.wav")
    assert [s.speaker for s in row["reference"]] == [s.speaker for s in recs[0][2]]
    absolute = write_conversations(tmp_path / "abs", recs[:1], absolute=True)
    line = json.loads(absolute.read_text())
    assert line["audio_filepath"] == str(tmp_path / "abs" / "conv000.wav")


@pytest.mark.parametrize(
    "line, problem",
    [
        ("{not json", "manifest.jsonl:2: not JSON"),
        ("[1, 2]", "manifest.jsonl:2: not a JSON object"),
        ('{"offset": 0}', "manifest.jsonl:2: audio_filepath: missing"),
        ('{"audio_filepath": "a.wav", "num_speakers": 0}', ":2: num_speakers: must"),
        ('{"audio_filepath": "a.wav", "duration": -1}', ":2: duration: must be"),
        ('{"audio_filepath": "a.wav", "rttm_filepath": "no.rttm"}', ":2: rttm_file"),
    ],
)
def test_read_diarization_manifest_errors(tmp_path, line, problem):
    good = '{"audio_filepath": "a.wav", "offset": 0, "duration": null}'
    (tmp_path / "manifest.jsonl").write_text(f"{good}\n{line}\n")
    with pytest.raises(ManifestError, match=problem):
        read_diarization_manifest(tmp_path / "manifest.jsonl")


def test_conversations_verb(corpus_dir, tmp_path, capsys):
    out = tmp_path / "conv"
    argv = [str(corpus_dir / "test.jsonl"), "--out", str(out), "--n", "2"]
    assert conversations_verb(argv + ["--seconds", "8-12", "--speakers", "3"]) == 0
    assert "2 conversations" in capsys.readouterr().out
    rows = read_diarization_manifest(out / "manifest.jsonl")
    assert [row["num_speakers"] for _, row in rows] == [3, 3]
    assert all(8 <= row["duration"] <= 12 for _, row in rows)
    with pytest.raises(SystemExit):  # argparse: HI below LO
        conversations_verb(argv + ["--speakers", "4-2"])
    (tmp_path / "file").write_text("")
    with pytest.raises(CommandError, match="is a file"):
        conversations_verb([argv[0], "--out", str(tmp_path / "file")])
    (tmp_path / "bad.jsonl").write_text('{"audio_filepath": "x.wav"}\n')
    with pytest.raises(CommandError, match="bad.jsonl:1: duration: missing"):
        conversations_verb([str(tmp_path / "bad.jsonl"), "--out", str(out)])
