"""The diarization pipeline (pipeline.py): windows (hand cases, a sweep), the
multi-scale mapping against a brute-force nearest-centre loop, labels -> turns
(hand cases and a port of NeMo's string-based get_contiguous_stamps + merge_stamps),
clustering equal to cluster_embeddings, and diarize end to end on synthetic audio
with a tiny random TitaNet (the config of tests/speaker/test_commands.py's TINY)."""

import math
import random

import numpy as np
import pytest
import torch
from conftest import CORPUS, corpus_rows
from tiny_model import TINY_SPEAKER as TINY

from minispeech.audio.io import save_audio
from minispeech.command_line import CommandError
from minispeech.diarization.clustering import cluster_embeddings
from minispeech.diarization.commands import diarize_verb
from minispeech.diarization.pipeline import (
    NEMO_SCALES,
    DiarizationError,
    cluster,
    diarize,
    diarize_files,
    labels_to_turns,
    multiscale_segments,
    nearest_centre,
    oracle_vad,
    subsegments,
)
from minispeech.diarization.rttm import Segment, read_rttm
from minispeech.diarization.simulate import (
    conversations,
    read_diarization_manifest,
    write_conversations,
)
from minispeech.speaker import SpeakerModel

SR = 16000


def close(got, want):
    assert len(got) == len(want), (got, want)
    for g, w in zip(got, want):
        assert g == pytest.approx(w, abs=1e-9), (got, want)


# --- segmentation -------------------------------------------------------------------
def test_subsegments_hand_cases():
    close(subsegments(0.0, 2.0, 1.5, 0.75), [(0.0, 1.5), (0.75, 2.0)])
    close(subsegments(1.0, 1.3, 1.5, 0.75), [(1.0, 1.3)])  # shorter: one window
    close(subsegments(0.0, 1.5, 1.5, 0.75), [(0.0, 1.5)])  # exactly one window
    close(subsegments(0.0, 2.03, 1.0, 1.0), [(0.0, 1.0), (1.0, 2.0)])  # 0.03 s dropped
    close(subsegments(0.0, 2.03, 1.0, 1.0, min_window=0.0), [(0, 1), (1, 2), (2, 2.03)])
    assert subsegments(3.0, 3.04, 0.5, 0.25) == []  # a 40 ms region: no window
    close(
        subsegments(0.0, 1.1, 0.5, 0.25),
        [(0.0, 0.5), (0.25, 0.75), (0.5, 1.0), (0.75, 1.1)],
    )


def test_subsegments_sweep_count_and_cover():
    rng = random.Random(0)
    for _ in range(300):
        window = rng.choice([1.5, 1.25, 1.0, 0.75, 0.5])
        shift = window / rng.choice([1, 2, 3])
        start = rng.uniform(0, 10)
        end = start + rng.uniform(0.06, 6)
        windows = subsegments(start, end, window, shift, min_window=0.0)
        n = max(math.ceil((end - start - window) / shift), 0) + 1
        assert len(windows) == n
        assert windows[0][0] == start and windows[-1][1] == pytest.approx(end)
        for k, (a, b) in enumerate(windows):  # every `shift`, cut at the end
            assert a == pytest.approx(start + k * shift)
            assert b == pytest.approx(min(a + window, end))
        for (_, b), (a, _) in zip(windows, windows[1:]):
            assert a <= b + 1e-9  # no gap between consecutive windows


def test_multiscale_mapping_matches_brute_force():
    rng = random.Random(1)
    t, regions = 0.0, []
    for _ in range(12):  # speech regions of 0.1-4 s with pauses
        t += rng.uniform(0.1, 1.0)
        regions.append((t, t + rng.uniform(0.1, 4.0)))
        t = regions[-1][1]
    scales = multiscale_segments(regions, NEMO_SCALES)
    assert len(scales) == 5 and len(scales[-1]) > len(scales[0])
    base = scales[-1]
    for coarse in scales:
        got = nearest_centre(base, coarse).tolist()
        for i, (a, b) in enumerate(base):
            distances = [abs((c + d) / 2 - (a + b) / 2) for c, d in coarse]
            assert got[i] == distances.index(min(distances))  # the first nearest
    assert nearest_centre(base, base).tolist() == list(range(len(base)))


# --- labels -> turns ----------------------------------------------------------------
def nemo_turns(base, labels):
    """A port of NeMo's generate_cluster_labels on "start end speaker" strings:
    get_contiguous_stamps, then merge_stamps."""
    lines = [f"{a} {b} speaker_{k}" for (a, b), k in zip(base, labels)]
    contiguous = []
    for i in range(len(lines) - 1):
        start, end, speaker = lines[i].split()
        next_start, next_end, next_speaker = lines[i + 1].split()
        if float(end) > float(next_start):
            avg = str((float(next_start) + float(end)) / 2.0)
            lines[i + 1] = " ".join([avg, next_end, next_speaker])
            contiguous.append(f"{start} {avg} {speaker}")
        else:
            contiguous.append(f"{start} {end} {speaker}")
    contiguous.append(lines[-1])
    merged = []
    for i in range(len(contiguous) - 1):
        start, end, speaker = contiguous[i].split()
        next_start, next_end, next_speaker = contiguous[i + 1].split()
        if float(end) == float(next_start) and speaker == next_speaker:
            contiguous[i + 1] = " ".join([start, next_end, next_speaker])
        else:
            merged.append(contiguous[i])
    merged.append(contiguous[-1])
    return [(float(a), float(b), s) for a, b, s in (m.split() for m in merged)]


def test_labels_to_turns_hand_cases():
    base = [(0.0, 0.5), (0.25, 0.75), (0.5, 1.0), (0.75, 1.25)]
    turns = labels_to_turns(base, [0, 0, 1, 1])  # cut at 0.625, the midpoint
    assert [t.speaker for t in turns] == ["speaker_0", "speaker_1"]
    close([t.start for t in turns], [0.0, 0.625])
    close([t.start + t.duration for t in turns], [0.625, 1.25])
    turns = labels_to_turns([(0.0, 0.5), (1.0, 1.5)], [0, 0])  # a pause: not merged
    assert [(t.start, t.duration) for t in turns] == [(0.0, 0.5), (1.0, 0.5)]
    turns = labels_to_turns([(0.0, 0.5), (0.5, 1.0), (1.0, 1.2)], [1, 0, 0])
    assert [(t.start, t.duration, t.speaker) for t in turns] == [
        (0.0, 0.5, "speaker_1"),
        (0.5, 0.7, "speaker_0"),
    ]


def test_labels_to_turns_matches_nemo_port():
    rng = random.Random(2)
    for _ in range(50):
        regions = [(0.0, rng.uniform(0.3, 5.0))]
        regions.append((regions[0][1] + 0.5, regions[0][1] + rng.uniform(0.6, 5.0)))
        base = multiscale_segments(regions, [(0.5, 0.25)])[0]
        labels = [rng.randrange(3) for _ in base]
        got = [
            (t.start, t.start + t.duration, t.speaker)
            for t in labels_to_turns(base, labels)
        ]
        want = nemo_turns(base, labels)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g[2] == w[2] and g[:2] == pytest.approx(w[:2], abs=1e-9)


# --- clustering ---------------------------------------------------------------------
def test_cluster_is_cluster_embeddings_at_its_threshold():
    gen = torch.Generator().manual_seed(3)
    centres = torch.randn(3, 16, generator=gen)  # 3 speakers
    truth = torch.arange(40) % 3
    scales = [
        centres[truth] + s * torch.randn(40, 16, generator=gen) for s in (0.3, 0.5)
    ]
    weights = [1.0, 2.0]
    want = cluster_embeddings(scales, weights=weights)
    got = cluster(scales, weights=weights, max_rp_threshold=0.15)  # its default
    assert torch.equal(got, want)
    assert len(set(got.tolist())) == 3
    assert torch.equal(cluster(scales, 2, weights=weights).unique(), torch.arange(2))


# --- diarize end to end -------------------------------------------------------------
def voice(seconds: float, pitch: float) -> torch.Tensor:
    """A buzz at `pitch` Hz with 5 harmonics (S,)."""
    t = torch.arange(int(seconds * SR)) / SR
    wave = sum(torch.sin(2 * math.pi * pitch * k * t) / k for k in range(1, 6))
    return 0.2 * wave


def conversation():
    """Three 1.2 s turns (voices 120, 300, 120 Hz) with 0.4 s pauses: (S,), turns."""
    pause = torch.zeros(int(0.4 * SR))
    parts, turns, t = [], [], 0.0
    for k, pitch in enumerate((120.0, 300.0, 120.0)):
        parts += [voice(1.2, pitch), pause]
        turns.append(Segment(t, 1.2, "a" if k != 1 else "b"))
        t += 1.6
    return torch.cat(parts), turns


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return SpeakerModel(TINY).eval()


def test_diarize_end_to_end(model):
    wave, turns = conversation()
    hyp = diarize(wave, model, vad=oracle_vad(turns), num_speakers=2)
    assert hyp and all(isinstance(t, Segment) for t in hyp)
    assert {t.speaker for t in hyp} == {"speaker_0", "speaker_1"}
    for t in hyp:  # inside the speech, in time order, not overlapping
        assert any(s.start - 1e-9 <= t.start < s.start + s.duration for s in turns)
        assert t.duration > 0
    assert all(a.start + a.duration <= b.start + 1e-9 for a, b in zip(hyp, hyp[1:]))
    estimated = diarize(wave, model, vad=oracle_vad(turns))  # NME-SC count
    assert 1 <= len({t.speaker for t in estimated}) <= 8
    energy = diarize(wave, model, num_speakers=2)  # the default VAD: energy_vad
    assert energy and energy[0].start == pytest.approx(0.0, abs=0.1)


def test_no_speech_and_bad_counts(model):
    silence = torch.zeros(2 * SR)
    assert diarize(silence, model) == []  # energy VAD finds nothing
    assert diarize(silence, model, vad=lambda wave: []) == []
    wave, turns = conversation()
    with pytest.raises(DiarizationError, match="more than the 3 segments"):
        diarize(wave, model, vad=lambda w: [(0.0, 1.0)], num_speakers=4)
    with pytest.raises(DiarizationError, match=">= 1"):
        diarize(wave, model, vad=oracle_vad(turns), num_speakers=0)


def test_oracle_vad_clips_to_the_wave():
    turns = [Segment(0.5, 1.0, "a"), Segment(1.2, 1.0, "b"), Segment(9.0, 1.0, "c")]
    vad = oracle_vad(turns, offset=1.0)
    got = vad(np.zeros(3 * SR))  # the wave covers 1..4 s of the file
    assert len(got) == 1 and got[0] == pytest.approx((0.0, 1.2))


# --- the diarize verb ---------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("diarize")
    torch.manual_seed(0)
    SpeakerModel(TINY).save_to(root / "spk.nemo")
    rows = corpus_rows(CORPUS)
    recs = conversations(rows, 2, seed=0, n_speakers=(2, 2), seconds=(6.0, 9.0))
    write_conversations(root / "conv", recs)
    save_audio(root / "silence.wav", np.zeros(2 * SR, np.float32), SR)
    return root


def test_diarize_verb_manifest(world, capsys):
    out = world / "hyp"
    argv = [world / "spk.nemo", "--manifest", world / "conv/manifest.jsonl"]
    argv += ["--out", out, "--vad", "oracle", "--oracle-num-speakers"]
    assert diarize_verb([str(a) for a in argv]) == 0
    printed = capsys.readouterr().out
    assert "DER " in printed and "speaker count exact: 2/2" in printed
    for rec in ("conv000", "conv001"):
        turns = read_rttm(out / f"{rec}.rttm")[rec]
        assert len({t.speaker for t in turns}) == 2  # the manifest's count


def test_diarize_verb_files_and_no_speech(world, capsys):
    out = world / "files"
    argv = [world / "spk.nemo", world / "silence.wav", world / "conv/conv000.wav"]
    assert diarize_verb([str(a) for a in argv + ["--out", out]]) == 0
    printed = capsys.readouterr().out
    assert "silence.wav: no speech found" in printed and "DER" not in printed
    assert (out / "silence.rttm").read_text() == ""
    assert read_rttm(out / "conv000.rttm")["conv000"]


@pytest.mark.parametrize(
    "args, problem",
    [
        (["nope.wav"], "nope.wav"),
        (["conv/conv000.wav", "--num-speakers", "900"], "900 is more than the"),
        (["conv/conv000.wav", "--vad", "oracle"], "--vad oracle needs --manifest"),
        (["conv/conv000.wav", "--vad", "bogus"], "--vad bogus: use energy, oracle"),
        (["conv/conv000.wav", "--vad", "spk.nemo"], "not a VAD model"),
        (["--manifest", "bad.jsonl"], "bad.jsonl:2: not JSON"),
        (["--manifest", "no_rttm.jsonl", "--vad", "oracle"], "no_rttm.jsonl:1: rttm"),
        (["--manifest", "no_rttm.jsonl", "--oracle-num-speakers"], ":1: num_speakers"),
        (
            ["conv/conv000.wav", "conv/conv000.wav"],
            "conv000.rttm would be written twice",
        ),
    ],
)
def test_diarize_verb_errors(world, args, problem, monkeypatch):
    monkeypatch.chdir(world)
    good = '{"audio_filepath": "conv/conv000.wav"}'
    (world / "bad.jsonl").write_text(good + "\n{oops\n")
    (world / "no_rttm.jsonl").write_text(good + "\n")
    out = world / "errors"
    with pytest.raises(CommandError) as error:
        diarize_verb(["spk.nemo", *args, "--out", str(out)])
    assert problem in str(error.value) and "\n" not in str(error.value)
    assert not out.exists()  # nothing written


def test_diarize_files_in_file_time(world, model):
    rows = [row for _, row in read_diarization_manifest(world / "conv/manifest.jsonl")]
    rows[1] = {**rows[1], "offset": 1.0, "duration": 4.0}  # 1..5 s of conv001
    out = diarize_files(rows, model, vad="oracle", oracle_num_speakers=True)
    assert list(out) == ["conv000", "conv001"]
    assert len({t.speaker for t in out["conv000"]}) == 2
    turns = out["conv001"]
    assert turns[0].start >= 1.0 - 1e-9
    assert max(t.start + t.duration for t in turns) <= 5.0 + 1e-6
