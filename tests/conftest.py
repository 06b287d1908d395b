"""Shared fixtures: seeding, the NeMo reference folder, the bundled corpus."""

import json
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
# ../shared beside the checkout (CI lays a copy there); MINISPEECH_SHARED overrides.
SHARED = Path(os.environ.get("MINISPEECH_SHARED", REPO.parent / "shared"))
NEMO_REF = SHARED / "nemo_reference"
CORPUS = REPO / "data" / "tinyspeech"

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def seed():
    """Every test starts from the same RNG state (icefall's seed)."""
    random.seed(20211105)
    np.random.seed(20211105)
    torch.manual_seed(20211105)
    return 20211105


@pytest.fixture
def nemo_ref() -> Path:
    """The folder of models and outputs saved by the real NeMo toolkit."""
    if not (NEMO_REF / "README.md").exists():
        pytest.skip(
            f"NeMo reference files not found at {NEMO_REF} (set MINISPEECH_SHARED)"
        )
    return NEMO_REF


@pytest.fixture
def corpus_dir() -> Path:
    """The bundled tinyspeech corpus (committed under data/tinyspeech)."""
    if not (CORPUS / "train.jsonl").exists():
        pytest.fail(f"bundled corpus missing at {CORPUS}: it is part of the repository")
    return CORPUS


def corpus_rows(corpus_dir: Path, name: str = "test", limit: int | None = None):
    """Rows of a bundled manifest with absolute audio paths."""
    rows = [json.loads(line) for line in open(corpus_dir / f"{name}.jsonl")]
    rows = rows[:limit] if limit else rows
    for row in rows:
        row["audio_filepath"] = str(corpus_dir / row["audio_filepath"])
    return rows
