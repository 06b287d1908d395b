"""VADModel (configs/diarization/marblenet_vad_tiny.yaml) and its session data:
shapes, a few steps of learning, batch = single, post-processing defaults, the
sessions and their labels, and a recipe smoke run that exports and restores."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_model import small_manifest

from minispeech.core.config import ConfigError, load_recipe
from minispeech.core.model import SpeechModel, restore_from
from minispeech.diarization.vad_dataset import (
    SessionPlan,
    VADSessionDataset,
    build_session,
)
from minispeech.diarization.vad_model import VADModel
from minispeech.training.loop import train

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "configs/diarization/marblenet_vad_tiny.yaml"


def recipe(tmp_path: Path, **trainer) -> dict:
    return load_recipe(RECIPE, REPO, tmp_path / "exp", **trainer)


@pytest.fixture
def model(tmp_path) -> VADModel:
    return SpeechModel.from_config(recipe(tmp_path)["model"])


def test_the_recipe_builds_a_small_vad_model(model):
    assert isinstance(model, VADModel) and model.frame_s == 0.01
    assert 10_000 < model.num_parameters() < 50_000
    assert model.postprocessing["min_duration_off"] == 0.2  # from the recipe
    assert "Measured" in RECIPE.read_text()  # the header states its time and F1


def test_forward_gives_one_logit_per_valid_frame(model):
    audio_lens = torch.tensor([16000, 12345])  # (B,)
    audio = 0.1 * torch.randn(2, 16000)  # (B, S)
    logits, lens = model(audio, audio_lens)  # (B, T)
    assert lens.tolist() == [100, 77]  # S // 160
    assert logits.shape[0] == 2 and logits.shape[1] >= 100


def session_batch(model, corpus_dir, tmp_path, n_sessions: int, seed: int = 0):
    manifest = small_manifest(corpus_dir / "dev.jsonl", tmp_path / "dev.jsonl", 1, 8)
    ds_cfg = {"manifest_filepath": manifest, "sessions": n_sessions, "seed": seed}
    dataset = model.build_dataset(ds_cfg)
    return model.collate([dataset[i] for i in range(len(dataset))])


def test_a_few_steps_lower_the_loss(model, corpus_dir, tmp_path):
    batch = session_batch(model, corpus_dir, tmp_path, n_sessions=4)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(12):
        loss = model.training_step(batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_batched_speech_probs_equal_single_ones(model):
    torch.manual_seed(3)
    waves = [0.1 * torch.randn(n) for n in (16000, 9000, 23456)]  # (S_i,)
    batched = model.speech_probs_batch(waves, batch_size=3)
    for wave, probs in zip(waves, batched):
        single = model.speech_probs(wave)  # (T,)
        assert single.shape == (wave.numel() // 160,)
        assert torch.allclose(single, probs, atol=1e-5)
    assert model.training  # inference leaves the mode as it found it


def test_speech_segments_use_the_postprocessing_section(model, monkeypatch):
    scores = torch.zeros(100)  # 1 s
    scores[10:50], scores[55:57], scores[70:90] = 0.9, 0.9, 0.9
    monkeypatch.setattr(model, "speech_probs", lambda wave: scores)
    # recipe: min_duration_on 0.1 drops the 20 ms blip; the 0.2 s gap stays
    assert np.allclose(model.speech_segments(None), [(0.1, 0.5), (0.7, 0.9)])
    got = model.speech_segments(None, min_duration_on=0.0, min_duration_off=0.25)
    assert np.allclose(got, [(0.1, 0.9)])


def test_an_unknown_postprocessing_key_is_refused(tmp_path):
    cfg = recipe(tmp_path)["model"]
    cfg["postprocessing"]["min_duration"] = 0.1
    with pytest.raises(ConfigError, match="min_duration"):
        VADModel(cfg)


def test_session_audio_and_labels_follow_the_plan():
    waves = [torch.ones(8000), 2 * torch.ones(4000)]  # 0.5 s, 0.25 s
    spans = [(0.1, 0.4), (0.0, 0.25)]  # turn spans inside each utterance
    plan = SessionPlan((0, 1), (0.25, 0.5), 0.125, None, 0.0, 0)
    wave, segments = build_session(waves, spans, plan)
    assert wave.numel() == (0.25 + 0.5 + 0.5 + 0.25 + 0.125) * 16000
    assert np.allclose(segments, [(0.35, 0.65), (1.25, 1.5)])
    assert float(wave[:4000].abs().sum()) == 0.0 and float(wave[4000]) == 1.0
    noisy, _ = build_session(
        waves, spans, SessionPlan((0, 1), (0.25, 0.5), 0.125, "pink", 10.0, 5)
    )
    noise = (noisy - wave).double()
    snr = 10 * torch.log10(wave.double().pow(2).sum() / noise.pow(2).sum())
    assert abs(float(snr) - 10.0) < 1e-3


def test_fixed_sessions_repeat_and_drawn_ones_follow_the_global_seed(corpus_dir):
    rows = [json.loads(line) for line in open(corpus_dir / "dev.jsonl")][:6]
    for row in rows:
        row["audio_filepath"] = str(corpus_dir / row["audio_filepath"])
    fixed = [VADSessionDataset(rows, sessions=3, seed=7) for _ in range(2)]
    assert fixed[0].plans == fixed[1].plans
    assert torch.equal(fixed[0][2]["audio"], fixed[1][2]["audio"])
    drawn = VADSessionDataset(rows, noise_prob=1.0)
    torch.manual_seed(11)
    first = drawn[0]
    torch.manual_seed(11)
    again = drawn[0]
    assert torch.equal(first["audio"], again["audio"])
    item = fixed[0][1]
    assert item["labels"].shape == (item["audio"].numel() // 160,)
    plan = fixed[0].plans[1]
    assert 2 <= len(plan.rows) <= 4 and plan.rows[0] == 1
    assert all(0.2 <= gap <= 1.5 for gap in plan.silences[1:])


def test_recipe_smoke_run_exports_a_model_that_restores(tmp_path, corpus_dir):
    cfg = recipe(tmp_path, max_steps=3, val_check_interval=3)
    model_cfg = cfg["model"]
    model_cfg["train_ds"].update(
        manifest_filepath=small_manifest(
            corpus_dir / "train.jsonl", tmp_path / "train8.jsonl", 1, 8
        ),
        batch_size=4,
        cache_audio=False,
    )
    model_cfg["validation_ds"].update(
        manifest_filepath=small_manifest(
            corpus_dir / "dev.jsonl", tmp_path / "dev6.jsonl", 1, 6
        ),
        sessions=4,
    )
    model_cfg["optim"]["sched"]["warmup_steps"] = 1
    torch.manual_seed(0)
    exported = train(cfg)
    model = restore_from(exported)
    assert isinstance(model, VADModel)
    assert model.postprocessing["offset"] == cfg["model"]["postprocessing"]["offset"]
    wave = 0.1 * torch.randn(16000)  # (S,)
    assert model.speech_probs(wave).shape == (100,)
    assert isinstance(model.speech_segments(wave), list)
    metrics = [json.loads(x) for x in open(exported.parent / "metrics.jsonl")]
    assert any("val_f1" in record for record in metrics)
    # `minispeech evaluate`: fixed sessions from any manifest, scored by validation
    evaluation = model.evaluation_dataset(tmp_path / "dev6.jsonl")
    assert evaluation.plans is not None and len(evaluation) == 4
