"""PairDataset: exact SNR for every kind, seeded pairs, babble of other speakers,
crops, audio-to-audio manifests and their bad lines, the collate."""

import json
import pickle

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import corpus_rows

from minispeech.audio.io import load_audio
from minispeech.audio.noise import NOISE_KINDS
from minispeech.core.config import ConfigError
from minispeech.data.manifest import ManifestError
from minispeech.enhancement.dataset import (
    PAIR_DATASET_KEYS,
    PairDataset,
    build_pair_dataset,
    collate_pairs,
)
from minispeech.enhancement.pairs import write_noisy_copy

SR = 16000


def _snr(clean: torch.Tensor, noisy: torch.Tensor) -> float:
    clean, noise = clean.double(), (noisy - clean).double()
    return float(10 * torch.log10(clean.pow(2).sum() / noise.pow(2).sum()))


@pytest.fixture
def clean_manifest(corpus_dir, tmp_path):
    """Two utterances each of three test speakers (absolute paths)."""
    rows, count = [], {}
    for row in corpus_rows(corpus_dir, "test"):
        if count.get(row["speaker"], 0) < 2 and len(count) <= 3:
            count[row["speaker"]] = count.get(row["speaker"], 0) + 1
            rows.append(row)
    rows = [row for row in rows if count[row["speaker"]] == 2][:6]
    path = tmp_path / "clean.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _write_pairs(tmp_path, pairs) -> str:
    """pairs: [(noisy (S,), noisy_sr, clean (S,), clean_sr)] -> a pairs manifest with
    paths relative to it."""
    (tmp_path / "wav").mkdir(exist_ok=True)
    lines = []
    for k, (noisy, noisy_sr, clean, clean_sr) in enumerate(pairs):
        sf.write(tmp_path / "wav" / f"n{k}.wav", noisy, noisy_sr, subtype="FLOAT")
        sf.write(tmp_path / "wav" / f"c{k}.wav", clean, clean_sr, subtype="FLOAT")
        row = {"noisy_filepath": f"wav/n{k}.wav", "clean_filepath": f"wav/c{k}.wav"}
        lines.append(json.dumps({**row, "noise": "pink", "snr_db": 3.0}) + "\n")
    (tmp_path / "pairs.jsonl").write_text("".join(lines))
    return str(tmp_path / "pairs.jsonl")


def test_every_kind_at_exact_snr_against_the_clean_audio(clean_manifest):
    for kind in NOISE_KINDS:
        ds = PairDataset(clean_manifest, SR, [kind], (-5.0, 15.0), fixed=True)
        item = ds[1]
        clean = load_audio(ds.rows[1]["audio_filepath"], SR)[0]
        assert torch.equal(item["target"], clean), kind
        assert item["input"].shape == clean.shape and item["kind"] == kind
        assert -5.0 <= item["snr_db"] <= 15.0
        assert abs(_snr(item["target"], item["input"]) - item["snr_db"]) < 1e-3, kind


def test_fixed_pairs_repeat_and_training_pairs_follow_torch_seed(clean_manifest):
    fixed = PairDataset(clean_manifest, SR, fixed=True, seed=4)
    first = fixed[2]
    torch.manual_seed(99)  # a fixed set ignores torch's generator
    assert torch.equal(fixed[2]["input"], first["input"])
    other_seed = PairDataset(clean_manifest, SR, fixed=True, seed=5)[2]
    assert not torch.equal(other_seed["input"], first["input"])
    train = PairDataset(clean_manifest, SR, crop_seconds=0.5)
    torch.manual_seed(1)
    a = train[2]
    torch.manual_seed(1)
    b = train[2]
    c = train[2]
    assert torch.equal(a["input"], b["input"]) and torch.equal(a["target"], b["target"])
    assert not torch.equal(a["input"], c["input"])


def test_babble_sums_other_speakers_of_the_same_manifest(clean_manifest, tmp_path):
    ds = PairDataset(clean_manifest, SR, ["babble"], babble_speakers=2, fixed=True)
    loaded = []
    load = ds._load
    ds._load = lambda j: loaded.append(j) or load(j)
    for index in range(len(ds)):
        loaded.clear()
        assert ds[index]["kind"] == "babble"
        speakers = [ds.rows[j]["speaker"] for j in loaded[1:]]
        assert len(set(speakers)) == 2 and ds.rows[index]["speaker"] not in speakers
    one = tmp_path / "one.jsonl"
    rows = [json.loads(line) for line in open(clean_manifest)][:2]  # one speaker
    one.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(ConfigError, match="other speakers"):
        PairDataset(one, SR, ["white", "babble"])
    assert len(PairDataset(one, SR, ["white"])) == 2


def test_crops_are_windows_of_the_clean_and_skip_silence(tmp_path):
    speech = 0.1 * np.random.default_rng(0).standard_normal(SR)  # 1 s, no repeats
    wave = np.concatenate([np.zeros(2 * SR), speech]).astype(np.float32)  # 3 s
    sf.write(tmp_path / "late.wav", wave, SR, subtype="FLOAT")
    sf.write(tmp_path / "other.wav", speech.astype(np.float32), SR, subtype="FLOAT")
    rows = [
        {"audio_filepath": "late.wav", "duration": 3.0, "speaker": "a"},
        {"audio_filepath": "other.wav", "duration": 1.0, "speaker": "b"},
    ]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    ds = PairDataset(manifest, SR, ["white"], (10.0, 10.0), crop_seconds=0.25)
    assert ds.durations == [0.25, 0.25]
    full = torch.from_numpy(wave)
    for _ in range(20):  # 64% of random windows fall in the 2 s of silence
        item = ds[0]
        target = item["target"]
        assert target.shape == (4000,) and target.abs().max() > 0.1  # never silent
        last = int(torch.nonzero(full == target[-1])[0])  # a window of the clean
        assert torch.equal(full[last - 3999 : last + 1], target)
        assert abs(_snr(target, item["input"]) - 10.0) < 1e-3
    assert ds[1]["target"].shape == (4000,)


def test_silent_clean_target_names_its_line(tmp_path):
    sf.write(tmp_path / "quiet.wav", np.zeros(SR, np.float32), SR)
    sf.write(tmp_path / "loud.wav", 0.1 * np.ones(SR, np.float32), SR)
    rows = [
        {"audio_filepath": "loud.wav", "duration": 1.0, "speaker": "a"},
        {"audio_filepath": "quiet.wav", "duration": 1.0, "speaker": "b"},
    ]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    ds = PairDataset(manifest, SR, ["pink"], fixed=True)
    assert ds[0]["target"].shape == (SR,)
    with pytest.raises(ManifestError, match=r"m\.jsonl:2: .*silent.*SI-SDR"):
        ds[1]


def test_pairs_manifest_resamples_and_refuses_misaligned_or_silent(tmp_path):
    rng = np.random.default_rng(0)
    clean = (0.1 * rng.standard_normal(SR)).astype(np.float32)
    noisy8k = (0.1 * rng.standard_normal(8000)).astype(np.float32)  # 8 kHz, 1 s
    manifest = _write_pairs(tmp_path, [(clean + 0.01, SR, clean, SR)])
    ds = PairDataset(manifest, SR, fixed=True)
    item = ds[0]
    assert torch.equal(item["target"], torch.from_numpy(clean))
    assert torch.equal(item["input"], torch.from_numpy(clean + 0.01))
    assert (item["kind"], item["snr_db"], item["id"]) == ("pink", 3.0, "n0")
    manifest = _write_pairs(
        tmp_path, [(clean, SR, clean, SR), (noisy8k, 8000, clean, SR)]
    )
    item = PairDataset(manifest, SR)[1]  # the 8 kHz input resampled to 16 kHz
    assert item["input"].shape == item["target"].shape == (SR,)
    short = clean[:12000]
    manifest = _write_pairs(tmp_path, [(clean, SR, clean, SR), (short, SR, clean, SR)])
    with pytest.raises(ManifestError, match=r"pairs\.jsonl:2: .*0\.7500 s.*1\.0000 s"):
        PairDataset(manifest, SR)
    silent = np.zeros(SR, np.float32)
    manifest = _write_pairs(tmp_path, [(clean, SR, clean, SR), (clean, SR, silent, SR)])
    with pytest.raises(
        ManifestError, match=r"pairs\.jsonl:2: clean_filepath: .*silent"
    ):
        PairDataset(manifest, SR)[1]
    (tmp_path / "pairs.jsonl").write_text('{"noisy_filepath": "wav/n0.wav"}\n')
    with pytest.raises(ManifestError, match="clean_filepath: missing"):
        PairDataset(tmp_path / "pairs.jsonl", SR)


def test_noisy_copy_reads_back_as_pairs(clean_manifest, tmp_path):
    noisy = write_noisy_copy(clean_manifest, tmp_path / "noisy", seed=1)
    ds = PairDataset(noisy, SR, fixed=True)
    assert not ds.mixing and len(ds) == 6
    for k, row in enumerate(ds.rows):
        item = ds[k]
        assert item["kind"] == row["noise"] and item["snr_db"] == row["snr_db"]
        # 16-bit files: the SNR holds to the quantization and the 2-decimal rounding
        assert abs(_snr(item["target"], item["input"]) - item["snr_db"]) < 0.02


def test_build_from_config_and_collate(clean_manifest):
    cfg = {
        "manifest_filepath": str(clean_manifest),
        "noise_kinds": ["white", "hum"],
        "snr_db": [0, 5],
        "batch_size": 4,
        "shuffle": True,
        "num_workers": 0,
        "fixed": True,
        "seed": 3,
        "crop_seconds": 1.0,
        "cache_audio": True,
    }
    assert set(cfg) <= set(PAIR_DATASET_KEYS)
    ds = build_pair_dataset(cfg, SR)
    assert ds.kinds == ["white", "hum"] and ds.durations == [1.0] * 6
    ds = pickle.loads(pickle.dumps(ds))  # DataLoader workers pickle it
    items = [ds[k] for k in range(3)] + [ds[3]]
    assert torch.equal(ds[3]["input"], items[3]["input"])  # from the cache
    batch = collate_pairs(items)
    lens = [item["input"].numel() for item in items]
    assert batch["input_signal"].shape == batch["target_signal"].shape
    assert batch["input_signal"].shape == (4, max(lens))
    assert batch["input_length"].tolist() == lens
    for b, n in enumerate(lens):
        assert torch.equal(batch["input_signal"][b, :n], items[b]["input"])
        assert batch["target_signal"][b, n:].abs().sum() == 0
    assert batch["ids"] == [item["id"] for item in items]
    assert set(batch["kinds"]) <= {"white", "hum"} and batch["snr_db"].shape == (4,)
    with pytest.raises(ConfigError, match="noise_kind.*did you mean 'noise_kinds'"):
        build_pair_dataset({**cfg, "noise_kind": ["white"]}, SR)
    with pytest.raises(ValueError, match="red"):
        build_pair_dataset({**cfg, "noise_kinds": ["red"]}, SR)
    with pytest.raises(ConfigError, match="snr_db"):
        build_pair_dataset({**cfg, "snr_db": [5, 0]}, SR)
