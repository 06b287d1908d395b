"""The SpeechLM recipes against the issue's floors (python -m pytest -m slow): the main
ASR job, then configs/speechlm/lm_tiny.yaml and salm_tiny.yaml on top of it, scored on
the held-out speakers' questions (data/tinyspeech_qa/test.jsonl) with the recordings
and with silence in their place. Floors: transcription WER <= 25%, question accuracy
>= 70% on the trained phrasings, and the silence ablation no better than the
majority-answer baseline + 5 points (the model listens). The README has the measured
values; the WER and accuracy floors are missed there, so this test fails until the
recipes get there: it records the targets, not the results."""

from pathlib import Path

import pytest

from minispeech import restore_from, train
from minispeech.command_line import validate
from minispeech.core.config import load_recipe

REPO = Path(__file__).resolve().parents[2]


def run(name: str, tmp_path: Path, **model) -> Path:
    cfg = load_recipe(REPO / f"configs/{name}.yaml", REPO, tmp_path)
    cfg["model"].update(model)
    return train(cfg)


@pytest.mark.slow
def test_speechlm_recipes_meet_their_floors(tmp_path):
    asr = run("asr/conformer_ctc_tiny", tmp_path)
    lm = run("speechlm/lm_tiny", tmp_path)
    model = restore_from(run("speechlm/salm_tiny", tmp_path, asr_model=str(asr),
                             lm_model=str(lm))).eval()  # fmt: skip
    test = model.evaluation_dataset(REPO / "data/tinyspeech_qa/test.jsonl")
    heard, _ = validate(model, test, batch_size=64)
    model.ablation = "silence"
    silent, _ = validate(model, test, batch_size=64)
    print(heard, silent)
    assert silent["val_accuracy"] <= silent["val_majority"] + 0.05, silent
    assert heard["val_wer"] <= 0.25 and heard["val_accuracy"] >= 0.70, heard
