"""The FastPitch training data: frame-aligned pitch, priors, row picks, per-speaker
normalisation, collation, and bad text reported as manifest:line."""

import json
from pathlib import Path

import pytest
import torch

from minispeech.audio.pitch import yin
from minispeech.data import ManifestError
from minispeech.tts.dataset import (
    TTSDataset,
    build_tts_dataset,
    collate_tts,
    normalize_pitch,
)
from minispeech.tts.tokenizer import EnglishCharsTokenizer

REPO = Path(__file__).resolve().parents[2]
TTS = REPO / "data/tinyspeech/tts_train.jsonl"


def tts_rows(n: int) -> list[dict]:
    rows = [json.loads(line) for line in TTS.read_text().splitlines()[:n]]
    for row in rows:
        row["audio_filepath"] = str(TTS.parent / row["audio_filepath"])
    return rows


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    manifest = write_rows(tmp_path_factory.mktemp("tts") / "m.jsonl", tts_rows(4))
    tokenizer = EnglishCharsTokenizer(pad_with_space=True)
    return TTSDataset(manifest, tokenizer, 16000, hop_length=256, win_length=1024)


def test_items_line_up_with_the_mel_frames(dataset):
    item = dataset[1]
    n_frames = item["audio"].numel() // 256 + 1  # a centred STFT's frames
    assert item["pitch"].shape == (n_frames,)
    assert item["prior"].shape == (n_frames, item["tokens"].numel())
    assert torch.allclose(item["prior"].sum(1), torch.ones(n_frames), atol=1e-5)
    assert item["words"][0][0] == dataset.audio.rows[1]["text"].split()[0]


def test_pitch_is_yin_normalised_over_the_voices_voiced_frames(dataset):
    raw = [
        yin(dataset[k]["audio"], 16000, 65.0, 400.0, 1024, 256, 0.15) for k in range(4)
    ]
    voiced = torch.cat([f[f > 0] for f in raw]).double()
    mean, std = voiced.mean(), voiced.std()
    for k, f0 in enumerate(raw):
        expected = torch.where(f0 > 0, (f0 - mean) / std, 0.0)
        assert torch.allclose(dataset.pitch[k], expected.float(), atol=1e-5)
    assert 0.3 < float((raw[0] > 0).float().mean()) < 0.9  # speech: partly voiced


def test_each_speaker_is_normalised_by_its_own_statistics():
    low, high = torch.tensor([0.0, 100.0, 110.0]), torch.tensor([200.0, 0.0, 220.0])
    out = normalize_pitch([low, high], ["a", "b"])
    assert out[0][0] == 0 and out[1][1] == 0  # unvoiced stays 0
    assert torch.allclose(out[0][1:], torch.tensor([-0.7071, 0.7071]), atol=1e-4)
    assert torch.allclose(out[1][[0, 2]], torch.tensor([-0.7071, 0.7071]), atol=1e-4)
    silent = normalize_pitch([torch.zeros(3)], ["c"])  # no voiced frame: no error
    assert torch.equal(silent[0], torch.zeros(3))


def test_collate_pads_text_with_the_pad_id(dataset):
    items = [dataset[0], dataset[2]]
    batch = collate_tts(items, pad_id=43)
    n_tokens = [it["tokens"].numel() for it in items]
    n_frames = [it["pitch"].numel() for it in items]
    assert batch["text"].shape == (2, max(n_tokens))
    assert batch["attn_prior"].shape == (2, max(n_frames), max(n_tokens))
    short = n_tokens.index(min(n_tokens))
    assert (batch["text"][short, min(n_tokens) :] == 43).all()
    assert torch.equal(batch["text_lens"], torch.tensor(n_tokens))


def test_rows_pick_a_slice_of_the_manifest(tmp_path):
    manifest = write_rows(tmp_path / "m.jsonl", tts_rows(3))
    model_cfg = {"preprocessor": {"n_window_stride": 256, "n_window_size": 1024}}
    ds_cfg = {"manifest_filepath": str(manifest), "rows": [1, None]}
    dataset = build_tts_dataset(ds_cfg, model_cfg)
    assert [r["text"] for r in dataset.audio.rows] == [
        r["text"] for r in tts_rows(3)[1:]
    ]
    with pytest.raises(ValueError, match="selects no row"):
        build_tts_dataset({**ds_cfg, "rows": [5, 9]}, model_cfg)


def test_a_character_the_tokenizer_lacks_names_the_line(tmp_path):
    rows = tts_rows(2)
    rows[1]["text"] = "call 911"
    manifest = write_rows(tmp_path / "m.jsonl", rows)
    tokenizer = EnglishCharsTokenizer(pad_with_space=True)
    with pytest.raises(ManifestError, match=r"m.jsonl:2: text: .*'9'"):
        TTSDataset(manifest, tokenizer, 16000, hop_length=256, win_length=1024)
