"""The README's diarization result, reproduced (python -m pytest -m slow): train the
speaker and VAD recipes, diarize 12 simulated conversations of the test speakers with
an unknown speaker count, and hold the floors: DER <= 8% (collar 0.25 s, overlap
scored, pooled) and the speaker count exact on >= 75% of the conversations."""

from pathlib import Path

import pytest

from minispeech.core.config import load_recipe
from minispeech.core.model import restore_from
from minispeech.data import read_manifest
from minispeech.diarization.pipeline import diarize_files
from minispeech.diarization.rttm import to_turns
from minispeech.diarization.simulate import (
    conversations,
    read_diarization_manifest,
    write_conversations,
)
from minispeech.metrics import der
from minispeech.training.loop import train

REPO = Path(__file__).resolve().parents[2]


def trained(path: str, tmp_path: Path):
    return restore_from(train(load_recipe(REPO / path, REPO, tmp_path / "exp")))


@pytest.mark.slow
def test_diarization_meets_its_floors_on_test_conversations(tmp_path):
    speaker_model = trained("configs/speaker/titanet_tiny.yaml", tmp_path).eval()
    vad_model = trained("configs/diarization/marblenet_vad_tiny.yaml", tmp_path).eval()
    rows = read_manifest(REPO / "data/tinyspeech/test.jsonl")
    for row in rows:
        row["audio_filepath"] = str(REPO / "data/tinyspeech" / row["audio_filepath"])
    write_conversations(tmp_path / "conv", conversations(rows, 12, seed=0))
    lines = read_diarization_manifest(tmp_path / "conv/manifest.jsonl")
    manifest = [row for _, row in lines]
    hyps = diarize_files(manifest, speaker_model, vad=vad_model.speech_segments)
    refs = {Path(r["audio_filepath"]).stem: r["reference"] for r in manifest}
    result = der(
        {k: to_turns(v) for k, v in refs.items()},
        {k: to_turns(v) for k, v in hyps.items()},
    )
    exact = sum(
        len({t.speaker for t in refs[k]}) == len({t.speaker for t in hyps[k]})
        for k in refs
    )
    print(f"DER {100 * result.der:.2f}%, speaker count exact {exact}/12")
    assert result.der <= 0.08 and exact >= 9, (result.der, exact)
