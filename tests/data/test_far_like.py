"""The far-like dev set (`minispeech corpus far-like`): far's make from dev's own
unseen variants, so tuning for far-like voices uses dev data only."""

import json

import numpy as np
import pytest
import soundfile as sf

from minispeech.cli import main
from minispeech.data.corpus_far import CONDITIONS, far_like_plan
from minispeech.data.corpus_speakers import DEV_UNSEEN, make_speakers
from minispeech.data.manifest import read_manifest

TEXTS = [f"call bob at {n}" for n in ("one", "two", "three", "four", "five")]


def test_plan_uses_dev_variants_at_far_pitches_and_rates():
    plan = far_like_plan(TEXTS, per_speaker=3, seed=0)
    speakers = list(dict.fromkeys(p[0] for p in plan))
    assert len(plan) == 3 * len(speakers) and len(speakers) == 2 * len(DEV_UNSEEN)
    assert {s.variant for s in speakers} == set(DEV_UNSEEN)
    for variant in DEV_UNSEEN:
        mine = [s for s in speakers if s.variant == variant]
        assert sorted(s.pitch for s in mine) == [12, 88]
        assert sorted(s.rate > 200 for s in mine) == [False, True]  # slow and fast
    assert all(120 <= s.rate <= 130 or 220 <= s.rate <= 240 for s in speakers)
    corpus_ids = {s.id for s in make_speakers()}
    assert not corpus_ids & {s.id for s in speakers}
    assert all(text in TEXTS for _, _, text, _ in plan)
    assert far_like_plan(TEXTS, 3, seed=0) == plan  # reproducible
    assert far_like_plan(TEXTS, 3, seed=1) != plan


def test_verb_refuses_too_few_texts(tmp_path, capsys):
    sf.write(tmp_path / "a.wav", np.zeros(16000, np.float32), 16000)
    manifest = tmp_path / "m.jsonl"
    row = {"audio_filepath": "a.wav", "duration": 1.0, "text": "hello there"}
    manifest.write_text(json.dumps(row) + "\n")
    code = main(["corpus", "far-like", str(manifest), "--out", str(tmp_path / "o"),
                 "--per-speaker", "2"])  # fmt: skip
    assert code == 2
    assert "m.jsonl: 1 texts, fewer than --per-speaker 2" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing written


def test_verb_writes_far_conditions(tmp_path, corpus_dir):
    pytest.importorskip("espeakng_loader", reason="the far-like set needs espeak-ng")
    out = tmp_path / "far_like"
    code = main(["corpus", "far-like", str(corpus_dir / "dev.jsonl"), "--out",
                 str(out), "--per-speaker", "1"])  # fmt: skip
    assert code == 0
    rows = read_manifest(out / "far_like.jsonl")
    assert len(rows) == 2 * len(DEV_UNSEEN)
    assert {r["noise"] for r in rows} <= {c for c, _ in CONDITIONS}
    assert any(r["noise"] != "clean" for r in rows)
    dev_texts = {r["text"] for r in read_manifest(corpus_dir / "dev.jsonl")}
    assert {r["text"] for r in rows} <= dev_texts
