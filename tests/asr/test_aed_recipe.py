"""The AED recipe against the issue's floor (python -m pytest -m slow): train
configs/asr/fastconformer_aed_tiny.yaml and score the test split with both prompts.
The floor is test WER <= 10% with <|nopnc|>; measured 55.4% (README), so this test
fails until the recipe gets there: it records the target, not the result."""

from pathlib import Path

import pytest

from minispeech import restore_from, train
from minispeech.command_line import validate
from minispeech.core.config import load_recipe

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_aed_recipe_meets_its_floor(tmp_path):
    cfg = load_recipe(REPO / "configs/asr/fastconformer_aed_tiny.yaml", REPO, tmp_path)
    model = restore_from(train(cfg)).eval()
    test = model.evaluation_dataset(REPO / "data/tinyspeech/test.jsonl")
    metrics, _ = validate(model, test, batch_size=32)  # as `minispeech evaluate`
    print(metrics)
    assert metrics["val_wer"] <= 0.10, metrics
