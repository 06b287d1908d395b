"""The ASR recipes in configs/asr: every YAML builds its model; a fast smoke run of the
main job; slow runs that reproduce the README's test WERs (python -m pytest -m slow)."""

from pathlib import Path

import pytest
import torch

from minispeech import read_manifest, restore_from, train, wer
from minispeech.core.config import load_recipe
from minispeech.core.model import SpeechModel

REPO = Path(__file__).resolve().parents[2]
RECIPES = sorted((REPO / "configs/asr").glob("*.yaml"))
# measured test WER of each recipe (README), and the ceiling the slow test enforces
CEILINGS = {
    "conformer_ctc_tiny": 0.10,  # measured 8.2%
    "fastconformer_transducer_tiny": 0.10,  # measured 4.6%
    "fastconformer_tdt_tiny": 0.10,  # measured 3.1%
}


def recipe(name: str, tmp_path: Path, **trainer) -> dict:
    cfg = load_recipe(REPO / "configs/asr" / f"{name}.yaml", REPO, tmp_path, **trainer)
    if "tokenizer" in cfg["model"]:  # train it here, not in the repository
        cfg["model"]["tokenizer"]["dir"] = str(tmp_path / "tokenizer")
    return cfg


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_every_recipe_builds_its_model(path, tmp_path):
    cfg = recipe(path.stem, tmp_path)
    model = SpeechModel.from_config(cfg["model"])
    assert model.num_parameters() > 0
    assert "Measured" in path.read_text() or "Time and WER" in path.read_text()


def fixed_batch_loss(model, n: int = 16) -> float:
    """Training loss on the first `n` dev utterances, eval mode (no augmentation)."""
    dataset = model.build_dataset(model.cfg["validation_ds"])
    batch = model.collate([dataset[i] for i in range(n)])
    model.eval()
    with torch.no_grad():
        return float(model.training_step(batch)["loss"])


def test_main_job_smoke_run_learns(tmp_path):
    """40 steps of the main recipe lower the loss on a fixed dev batch (by ~35% when
    measured), and the exported model file restores and transcribes."""
    cfg = recipe("conformer_ctc_tiny", tmp_path, max_steps=40, val_check_interval=40,
                 max_time=None)  # fmt: skip
    cfg["model"]["train_ds"]["cache_audio"] = False  # 40 steps read 5% of the corpus
    cfg["model"]["optim"]["sched"]["warmup_steps"] = 10
    torch.manual_seed(cfg["trainer"].get("seed", 1234))
    before = fixed_batch_loss(SpeechModel.from_config(cfg["model"]))
    model = restore_from(train(cfg))
    after = fixed_batch_loss(model)
    assert after < 0.8 * before, (before, after)
    dev = read_manifest(REPO / "data/tinyspeech/dev.jsonl")[0]["audio_filepath"]
    assert len(model.transcribe([dev])) == 1


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
