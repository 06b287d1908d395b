"""The ASR recipes in configs/asr: every YAML builds its model; a fast smoke run of the
main job; slow runs that reproduce the README's test WERs (python -m pytest -m slow)."""

import copy
import json
from pathlib import Path

import pytest

from minispeech import load_config, read_manifest, restore_from, train, wer
from minispeech.model import SpeechModel

REPO = Path(__file__).resolve().parents[2]
RECIPES = sorted((REPO / "configs/asr").glob("*.yaml"))
# measured test WER of each recipe (README), and the ceiling the slow test enforces
CEILINGS = {"conformer_ctc_tiny": 0.10, "fastconformer_transducer_tiny": 0.10}


def recipe(name: str, tmp_path: Path, **trainer) -> dict:
    cfg = copy.deepcopy(load_config(REPO / "configs/asr" / f"{name}.yaml"))
    model = cfg["model"]
    for section in ("train_ds", "validation_ds", "test_ds"):
        model[section]["manifest_filepath"] = str(
            REPO / model[section]["manifest_filepath"]
        )
    if "tokenizer" in model:
        model["tokenizer"]["dir"] = str(tmp_path / "tokenizer")
        model["tokenizer"]["train_manifest"] = str(
            REPO / model["tokenizer"]["train_manifest"]
        )
    cfg["trainer"].update(enable_progress_bar=False, **trainer)
    cfg["exp_manager"].update(exp_dir=str(tmp_path), resume_if_exists=False)
    return cfg


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_every_recipe_builds_its_model(path, tmp_path):
    cfg = recipe(path.stem, tmp_path)
    model = SpeechModel.from_config(cfg["model"])
    assert model.num_parameters() > 0
    assert "Expected" in path.read_text() or "Time and WER" in path.read_text()


def test_main_job_smoke_run_learns(tmp_path):
    """30 steps of the main recipe: the training loss falls and the model file
    restores."""
    cfg = recipe(
        "conformer_ctc_tiny",
        tmp_path,
        max_steps=30,
        val_check_interval=30,
        max_time=None,
    )
    cfg["model"]["optim"]["sched"]["warmup_steps"] = 10
    path = train(cfg)
    log = [
        json.loads(line)
        for line in (path.parent / "metrics.jsonl").read_text().splitlines()
    ]
    losses = [r["loss"] for r in log if "loss" in r]
    assert losses[-1] < 0.6 * losses[0], losses
    model = restore_from(path)
    assert (
        len(
            model.transcribe(
                [read_manifest(REPO / "data/tinyspeech/dev.jsonl")[0]["audio_filepath"]]
            )
        )
        == 1
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CEILINGS))
def test_recipe_reaches_its_test_wer(name, tmp_path):
    cfg = recipe(name, tmp_path)
    model = restore_from(train(cfg))
    rows = read_manifest(REPO / "data/tinyspeech/test.jsonl")
    hyps = model.transcribe([row["audio_filepath"] for row in rows], batch_size=32)
    score = wer([row["text"] for row in rows], hyps)
    print(f"{name}: test WER {100 * score:.2f}%")
    assert score <= CEILINGS[name]
