"""The speaker verbs (embed, verify, identify, corpus trials) and `evaluate` on a
speaker model, run in-process (`minispeech.cli.main`) on a tiny random TitaNet saved
to a temporary folder, with synthetic audio: tones (voice "ann", 220 Hz and its
harmonics) and noise (voice "bob"), each made with numpy and written by soundfile."""

import json
import re

import numpy as np
import pytest
import soundfile
import torch
from tiny_model import TINY_SPEAKER as TINY

from minispeech.cli import main
from minispeech.core.model import restore_from
from minispeech.metrics.eer import eer, min_dcf
from minispeech.speaker import SpeakerModel

SR = 16000


def tone(seconds: float, phase: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    wave = sum(np.sin(2 * np.pi * 220 * k * t + phase) / k for k in (1, 2, 3))
    return (0.2 * wave).astype(np.float32)


def noise(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(int(seconds * SR))).astype(np.float32)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("speaker")
    torch.manual_seed(0)
    SpeakerModel(TINY).save_to(root / "spk.nemo")
    waves = {
        "ann1": tone(0.6, 0.0),
        "ann2": tone(0.8, 1.0),
        "ann3": tone(0.5, 2.0),
        "bob1": noise(0.6, 1),
        "bob2": noise(0.7, 2),
        "bob3": noise(0.5, 3),
    }
    for name, wave in waves.items():
        soundfile.write(root / f"{name}.wav", wave, SR)
    rows = [
        {"audio_filepath": f"{name}.wav", "duration": len(w) / SR, "speaker": name[:3]}
        for name, w in waves.items()
    ]
    rows[2]["speaker"] = rows[5]["speaker"] = "cid"  # a voice the model has not seen
    rows[2]["gender"] = rows[5]["gender"] = "male"
    (root / "all.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    enroll = [r for r in rows if r["audio_filepath"] in ("ann1.wav", "bob1.wav")]
    (root / "enroll.jsonl").write_text("".join(json.dumps(r) + "\n" for r in enroll))
    return root


def run(argv, capsys) -> str:
    assert main([str(a) for a in argv]) == 0
    return capsys.readouterr().out


def test_embed_writes_embeddings_in_input_order(world, capsys):
    out = world / "embs.npy"
    files = [world / "ann1.wav", world / "bob1.wav"]
    text = run(
        ["embed", world / "spk.nemo", *files, "--manifest", world / "all.jsonl"]
        + ["--out", out, "--batch-size", "3"],
        capsys,
    )
    embs = np.load(out)
    assert embs.shape == (8, 8) and "8 embeddings of size 8" in text
    model = restore_from(world / "spk.nemo").eval()
    for k, path in enumerate([*files, world / "ann1.wav"]):  # row 2: the manifest's
        np.testing.assert_allclose(embs[k], model.get_embedding(path), atol=1e-5)


def test_verify_prints_the_models_similarity_and_decision(world, capsys):
    a, b = world / "ann1.wav", world / "bob2.wav"
    text = run(["verify", world / "spk.nemo", a, b, "--threshold", "0.5"], capsys)
    model = restore_from(world / "spk.nemo").eval()
    score = model.similarity(model.get_embedding(a), model.get_embedding(b))
    assert f"score {score:.4f}" in text
    assert ("same speaker" in text) == (score >= 0.5)


def test_verify_trials_eer_equals_metrics_eer_on_its_scores(world, capsys):
    run(
        ["corpus", "trials", world / "all.jsonl", "--out", world / "t/trials.txt"]
        + ["--n", "6", "--seed", "3"],
        capsys,
    )
    lines = (world / "t/trials.txt").read_text().splitlines()
    assert len(lines) == 6 and all(line.split()[1].startswith("../") for line in lines)
    scores_file = world / "scores.txt"
    text = run(
        ["verify", world / "spk.nemo", "--trials", world / "t/trials.txt"]
        + ["--out", scores_file],
        capsys,
    )
    rows = [line.split() for line in scores_file.read_text().splitlines()]
    assert [row[:3] for row in rows] == [line.split() for line in lines]
    labels, scores = [int(r[0]) for r in rows], [float(r[3]) for r in rows]
    assert "6 trials (3 target, 3 non-target)" in text
    printed = float(re.search(r"EER\s+([\d.]+)%", text).group(1))
    assert printed == pytest.approx(100 * eer(scores, labels), abs=0.006)
    dcf = float(re.search(r"minDCF@0.05\s+([\d.]+)", text).group(1))
    assert dcf == pytest.approx(min_dcf(scores, labels, p_target=0.05), abs=1e-4)
    # the same scores as the pair verb: one trial, scored alone
    model = restore_from(world / "spk.nemo").eval()
    a, b = (world / "t" / name for name in rows[0][1:3])
    alone = model.similarity(model.get_embedding(a), model.get_embedding(b))
    assert float(rows[0][3]) == pytest.approx(alone, abs=1e-4)


def test_identify_picks_the_enrolled_speaker(world, capsys):
    files = [world / "ann2.wav", world / "bob2.wav", world / "ann1.wav"]
    text = run(
        ["identify", world / "spk.nemo", "--enroll", world / "enroll.jsonl"] + files,
        capsys,
    )
    picks = [line.split("\t") for line in text.splitlines()]
    assert [p[1] for p in picks] == ["ann", "bob", "ann"]
    assert float(picks[2][2]) == pytest.approx(1.0, abs=1e-5)  # its own enrolment


def test_corpus_trials_balanced_with_same_gender_non_targets(corpus_dir, tmp_path):
    out = tmp_path / "trials.txt"
    argv = ["corpus", "trials", str(corpus_dir / "test.jsonl"), "--out", str(out)]
    assert main(argv + ["--n", "200", "--absolute"]) == 0
    rows = [json.loads(x) for x in open(corpus_dir / "test.jsonl")]
    meta = {str(corpus_dir / r["audio_filepath"]): r for r in rows}
    trials = [line.split() for line in out.read_text().splitlines()]
    labels = [int(t[0]) for t in trials]
    assert len(trials) == 200 and sum(labels) == 100
    same_gender = 0
    for label, a, b in trials:
        assert int(label) == (meta[a]["speaker"] == meta[b]["speaker"])
        same_gender += label == "0" and meta[a]["gender"] == meta[b]["gender"]
    assert same_gender == 50  # half of the non-targets
    assert len({(a, b) for _, a, b in trials}) == 200  # no trial twice


def test_evaluate_a_speaker_model_prints_eer_and_accuracy(world, capsys):
    text = run(["evaluate", world / "spk.nemo", world / "all.jsonl"], capsys)
    metrics = dict(re.findall(r"(val_\w+)\s+(\S+)", text))
    assert set(metrics) == {
        "val_loss",
        "val_acc",
        "val_eer",
        "val_min_dcf",
        "val_id_acc",
    }
    for key in ("val_eer", "val_min_dcf", "val_id_acc"):
        assert 0.0 <= float(metrics[key]) <= 1.0, key
    assert 0.0 <= float(metrics["val_acc"]) <= 1.0  # 4 of 6 are known speakers


def test_evaluate_on_unseen_speakers_says_what_is_undefined(world, capsys):
    rows = [json.loads(line) for line in (world / "all.jsonl").open()]
    unseen = world / "unseen.jsonl"  # only "cid": no training class, no accuracy
    unseen.write_text(
        "".join(json.dumps(r) + "\n" for r in rows if r["speaker"] == "cid")
    )
    text = run(["evaluate", world / "spk.nemo", unseen], capsys)
    assert "nan" not in text
    assert re.search(r"val_acc\s+n/a \(undefined on this set\)", text)
    assert re.search(r"val_id_acc\s+n/a", text)  # one speaker: nothing to tell apart


def test_embed_and_enroll_a_segment_use_only_the_segment(world, capsys):
    row = {"audio_filepath": "ann2.wav", "offset": 0.1, "duration": 0.4}
    (world / "seg.jsonl").write_text(json.dumps({**row, "speaker": "ann"}) + "\n")
    out = world / "seg.npy"
    run(
        ["embed", world / "spk.nemo", "--manifest", world / "seg.jsonl"]
        + ["--out", out],
        capsys,
    )
    model = restore_from(world / "spk.nemo").eval()
    wave = torch.from_numpy(soundfile.read(world / "ann2.wav", dtype="float32")[0])
    segment = model.get_embedding(wave[1600:8000])  # 0.1 s to 0.5 s
    np.testing.assert_allclose(np.load(out)[0], segment, atol=1e-5)
    enrolled = model.enroll(str(world / "seg.jsonl"))["ann"]
    torch.testing.assert_close(enrolled, segment / segment.norm(), atol=1e-5, rtol=0)


def test_verify_scores_a_nemo_titanet_as_its_import(nemo_ref, capsys):
    from minispeech.nemo import import_nemo

    path = nemo_ref / "titanet_tiny.nemo"
    a, b = (nemo_ref / f"titanet_tiny_wave_{k}.wav" for k in "ab")
    text = run(["verify", path, a, b], capsys)
    model = import_nemo(path).eval()
    score = model.similarity(model.get_embedding(a), model.get_embedding(b))
    assert f"score {score:.4f}" in text
