"""The README's TTS results, reproduced (python -m pytest -m slow): train
configs/tts/fastpitch_tiny.yaml, speak the held-out TTS sentences (tts_test.jsonl)
with Griffin-Lim and hold the targets that the recipe meets: the predicted word
durations within 20% of espeak-ng's on average, and the speech close to the
recordings (MCD-DTW <= 3.5 dB; measured 2.6). Then train configs/tts/hifigan_tiny.yaml
and hold its measured copy-synthesis floor on the dev files (mel L1 <= 0.45)."""

from pathlib import Path

import pytest
import torch

from minispeech.core.config import load_recipe
from minispeech.core.model import restore_from
from minispeech.data import read_manifest
from minispeech.metrics import mcd
from minispeech.training.loop import train
from minispeech.tts.synthesis import Synthesizer, word_duration_error

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_fastpitch_recipe_meets_its_duration_target(tmp_path):
    cfg = load_recipe(REPO / "configs/tts/fastpitch_tiny.yaml", REPO, tmp_path)
    synth = Synthesizer(restore_from(train(cfg)), "griffin-lim")
    errors, distortions = [], []
    for row in read_manifest(REPO / "data/tinyspeech/tts_test.jsonl"):
        result = synth(row["text"])
        errors.append(word_duration_error(result.words, row["words"]))
        reference = synth.acoustic.load_inputs([row["audio_filepath"]])[0]
        distortions.append(mcd(reference, result.wave, 16000))
    error, distortion = sum(errors) / len(errors), sum(distortions) / len(distortions)
    print(f"word duration error {error:.3f}, MCD-DTW {distortion:.2f} dB")
    assert error <= 0.20 and distortion <= 3.5, (error, distortion)


@pytest.mark.slow
def test_hifigan_recipe_holds_its_mel_floor(tmp_path):
    cfg = load_recipe(REPO / "configs/tts/hifigan_tiny.yaml", REPO, tmp_path)
    model = restore_from(train(cfg)).eval()
    dev = model.build_dataset({**cfg["model"]["validation_ds"], "n_segments": None})
    batch = model.collate([dev[k] for k in range(len(dev))])
    with torch.no_grad():
        stats = model.validation_step(batch)
    metrics = model.validation_metrics(stats)
    print(metrics)
    assert metrics["val_mel_l1"] <= 0.45, metrics
