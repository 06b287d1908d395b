"""The speaker recipes in configs/speaker: every YAML builds its model with the
training speakers as classes (`labels: from_manifest`), and a 3-step smoke run on 8
utterances exports a model file that restores without the manifest; slow runs that
reproduce the README's EERs (python -m pytest -m slow)."""

import json
from pathlib import Path

import pytest
import torch
from tiny_model import small_manifest

from minispeech.core.config import load_recipe
from minispeech.core.model import SpeechModel, restore_from
from minispeech.data import read_manifest
from minispeech.metrics import eer
from minispeech.speaker import SpeakerModel, speaker_labels
from minispeech.speaker.pitch import pitch_grid
from minispeech.speaker.scoring import pair_trials
from minispeech.training.loop import train

REPO = Path(__file__).resolve().parents[2]
RECIPES = sorted((REPO / "configs/speaker").glob("*.yaml"))
# the floors each recipe must meet: EER over all pairs of (test, far), NeMo 3.0's
# TitaNet-S trained 10 minutes on this corpus (measured values: README)
FLOORS = {"titanet_tiny": (0.023, 0.024), "ecapa_tiny": (0.023, 0.024)}


def recipe(path: Path, tmp_path: Path, **trainer) -> dict:
    return load_recipe(path, REPO, tmp_path / "exp", **trainer)


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_every_recipe_builds_its_model_on_the_training_speakers(path, tmp_path):
    cfg = recipe(path, tmp_path)
    assert cfg["model"]["labels"] == "from_manifest"
    model = SpeechModel.from_config(cfg["model"])
    assert isinstance(model, SpeakerModel) and model.num_parameters() > 0
    train_manifest = cfg["model"]["train_ds"]["manifest_filepath"]
    assert model.labels == speaker_labels(train_manifest) and len(model.labels) == 120
    assert model.cfg["labels"] == model.labels  # what the model file will store
    assert "Measured" in path.read_text()  # the header states its time and EER


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_smoke_run_exports_a_model_that_restores(path, tmp_path):
    cfg = recipe(path, tmp_path, max_steps=3, val_check_interval=3)
    data = REPO / "data/tinyspeech"
    model_cfg = cfg["model"]
    model_cfg["train_ds"]["manifest_filepath"] = small_manifest(
        data / "train.jsonl", tmp_path / "train8.jsonl"
    )
    model_cfg["train_ds"].update(
        cache_audio=False, max_seconds=None, batch_size=4, num_buckets=1
    )
    model_cfg["validation_ds"]["manifest_filepath"] = small_manifest(
        data / "dev.jsonl", tmp_path / "dev8.jsonl"
    )
    model_cfg["optim"]["sched"]["warmup_steps"] = 1
    model_cfg["backend"]["lda_dim"] = 1  # 2 speakers here: LDA keeps at most 1
    torch.manual_seed(0)
    exported = train(cfg)
    (tmp_path / "train8.jsonl").unlink()  # the model file holds the speaker list
    model = restore_from(exported)
    assert isinstance(model, SpeakerModel) and len(model.labels) == 2
    wave = 0.1 * torch.randn(16000)  # (S,)
    assert model.get_embedding(wave).shape == (128,)
    assert bool(model.backend.fitted)  # fitted after the last step, kept in the file
    k = len(pitch_grid(model.backend.pitch_width))  # the recipe scores pitch
    assert model.scoring_embeddings([wave]).shape == (1, 1 + k)
    metrics = [json.loads(x) for x in open(exported.parent / "metrics.jsonl")]
    assert any("val_eer" in record for record in metrics)


@pytest.mark.parametrize("name", ["titanet_tiny", "ecapa_tiny"])
def test_a_training_batch_of_one_utterance_uses_running_batch_norm_stats(name):
    """A bucketing sampler can close a batch at one utterance; a pooled (1, C)
    vector has no batch statistics, so the BatchNorm layers use running ones."""
    cfg = load_recipe(REPO / f"configs/speaker/{name}.yaml", REPO, "unused")
    two = {**cfg["model"], "labels": ["ann", "bob"], "backend": None}  # no LDA
    model = SpeakerModel(two).train()
    batch = model.collate(
        [{"audio": torch.randn(8000), "label": 1, "speaker": "bob", "id": "u0"}]
    )
    loss = model.training_step(batch)["loss"]
    loss.backward()
    assert torch.isfinite(loss) and model.training
    assert all(m.training for m in model.modules())


FAR_FLOOR_MISSED = pytest.mark.xfail(
    strict=True,
    reason="TitaNet's far EER is 2.67% against NeMo's 2.4% (README: Speaker "
    "recognition); strict, so the day it passes this mark must go",
)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=FAR_FLOOR_MISSED) if name == "titanet_tiny" else name
        for name in sorted(FLOORS)
    ],
)
def test_recipe_meets_its_test_and_far_floors(name, tmp_path):
    model = restore_from(train(recipe(REPO / f"configs/speaker/{name}.yaml", tmp_path)))
    for split, floor in zip(("test", "far"), FLOORS[name]):
        rows = read_manifest(REPO / f"data/tinyspeech/{split}.jsonl")
        paths = [row["audio_filepath"] for row in rows]
        embs = model.scoring_embeddings(paths, 16)  # the recipe's backend
        score = eer(*pair_trials(embs, [row["speaker"] for row in rows]))
        print(f"{name}: {split} EER over all pairs {100 * score:.2f}%")
        assert score <= floor, (split, score)
