"""The ASR recipes in configs/asr: every YAML builds its model; a fast smoke run of the
main job; slow runs that reproduce the README's test WERs (python -m pytest -m slow)."""

import json
from pathlib import Path

import pytest
import torch

from minispeech import read_manifest, restore_from, train, wer
from minispeech.asr.ngram_lm import NGramLM
from minispeech.command_line import load_model
from minispeech.core.config import load_recipe
from minispeech.core.model import SpeechModel

REPO = Path(__file__).resolve().parents[2]
RECIPES = sorted((REPO / "configs/asr").glob("*.yaml"))
# the floors each recipe must meet on (test, far) WER (measured values: README)
FLOORS = {
    "conformer_ctc_tiny": (0.08, 0.40),
    "fastconformer_transducer_tiny": (0.08, 0.40),
    "fastconformer_tdt_tiny": (0.08, 0.40),
}


def recipe(name: str, tmp_path: Path, **trainer) -> dict:
    cfg = load_recipe(REPO / "configs/asr" / f"{name}.yaml", REPO, tmp_path, **trainer)
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


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_recipe_smoke_run_learns(name, tmp_path):
    """40 steps of each recipe lower the loss on a fixed dev batch, and the exported
    model file restores and transcribes."""
    cfg = recipe(
        name, tmp_path, max_steps=40, val_check_interval=40, limit_val_batches=2
    )
    cfg["model"]["train_ds"]["cache_audio"] = False  # 40 steps read 5% of the corpus
    cfg["model"]["optim"]["sched"]["warmup_steps"] = 10
    torch.manual_seed(cfg["trainer"].get("seed", 1234))
    before = fixed_batch_loss(SpeechModel.from_config(cfg["model"]))
    model = restore_from(train(cfg))
    after = fixed_batch_loss(model)
    # dev: unseen voices and accents, half free word order: 40 steps take ~16% off
    assert after < 0.9 * before, (before, after)
    dev = read_manifest(REPO / "data/tinyspeech/dev.jsonl")[0]["audio_filepath"]
    assert len(model.transcribe([dev])) == 1


# the decoding the README reports beside greedy: a beam that spells only the words of
# the training text, fused for CTC with a 3-gram of that text (weights tuned on dev)
LEXICON_DECODING = {
    "conformer_ctc_tiny": {"beam_size": 32, "lm_alpha": 0.3, "lm_beta": 1.0},
    "fastconformer_transducer_tiny": {"beam_size": 8},
    "fastconformer_tdt_tiny": {"beam_size": 4},
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FLOORS))
def test_recipe_meets_its_test_and_far_floors(name, tmp_path):
    """The floors hold for the README's best decoding of each recipe (its lexicon
    beam); greedy WER is printed beside it."""
    path = train(recipe(name, tmp_path))
    lm = NGramLM.from_manifest(REPO / "data/tinyspeech/train.jsonl", order=3)
    arpa = str(lm.save(tmp_path / "train3.arpa"))
    decodings = {"greedy": []}
    if name in LEXICON_DECODING:
        beam = {"strategy": "beam", "lexicon": arpa, **LEXICON_DECODING[name]}
        if "lm_alpha" in beam:
            beam["lm_path"] = arpa
        decodings["lexicon beam"] = [
            f"decoding.{k}={json.dumps(v)}" for k, v in beam.items()
        ]
    for split, floor in zip(("test", "far"), FLOORS[name]):
        rows = read_manifest(REPO / f"data/tinyspeech/{split}.jsonl")
        scores = {}
        for decoding, overrides in decodings.items():
            model = load_model(str(path), "cpu", overrides)
            hyps = model.transcribe([r["audio_filepath"] for r in rows], batch_size=32)
            scores[decoding] = wer([row["text"] for row in rows], hyps)
            print(f"{name}: {split} {decoding} WER {100 * scores[decoding]:.2f}%")
        assert min(scores.values()) <= floor, (split, scores)
