"""AudioTextDataset and collate: reads against soundfile, segments, resampling,
filtering, tokenization errors, pickling and DataLoader workers."""

import json
import pickle

import numpy as np
import pytest
import soundfile as sf
import torch

from minispeech.data.datasets import AudioTextDataset, collate_audio_text
from minispeech.data.manifest import ManifestError
from minispeech.data.sampler import BucketingBatchSampler
from minispeech.data.tokenizers import CharTokenizer

TEXTS = ["turn it on", "call nine", "it's red", "seven", "go left now", "stop"]


@pytest.fixture
def corpus(tmp_path):
    """Six noise clips of 0.3-1.3 s at 16 kHz (PCM_16 FLAC/WAV) and a manifest."""
    rng = np.random.default_rng(0)
    (tmp_path / "wavs").mkdir()
    rows = []
    for k, text in enumerate(TEXTS):
        seconds = 0.3 + 0.2 * k
        wave = 0.1 * rng.standard_normal(int(seconds * 16000))
        name = f"wavs/u{k}.{'flac' if k % 2 else 'wav'}"
        sf.write(tmp_path / name, wave, 16000, subtype="PCM_16")
        rows.append({"audio_filepath": name, "duration": seconds, "text": text})
    lines = [json.dumps(row) for row in rows]
    (tmp_path / "m.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_items_match_soundfile_and_tokenizer(corpus):
    tok = CharTokenizer.from_texts(TEXTS)
    data = AudioTextDataset(corpus / "m.jsonl", tokenizer=tok)
    assert len(data) == 6
    assert data.durations == pytest.approx([0.3 + 0.2 * k for k in range(6)])
    for k in range(6):
        item = data[k]
        name = f"wavs/u{k}.{'flac' if k % 2 else 'wav'}"
        expected, _ = sf.read(corpus / name, dtype="float32")
        assert item["audio"].dtype == torch.float32 and item["audio"].ndim == 1
        assert torch.equal(item["audio"], torch.from_numpy(expected))
        assert item["tokens"].dtype == torch.long
        assert item["tokens"].tolist() == tok.encode(TEXTS[k])
        assert item["id"] == f"u{k}" and item["text"] == TEXTS[k]


def test_segment_reads_offset_and_duration(corpus):
    full, _ = sf.read(corpus / "wavs/u5.flac", dtype="float32")
    path = str(corpus / "wavs/u5.flac")
    rows = [{"audio_filepath": path, "offset": 0.25, "duration": 0.5, "id": "seg"}]
    item = AudioTextDataset(rows)[0]
    assert torch.equal(item["audio"], torch.from_numpy(full[4000:12000]))
    assert item["id"] == "seg" and item["tokens"].numel() == 0
    del rows[0]["id"]
    assert AudioTextDataset(rows)[0]["id"] == "u5@0.25"


def test_resampling_only_when_asked(tmp_path):
    wave = np.sin(2 * np.pi * 200 * np.arange(8000) / 8000).astype(np.float32) * 0.5
    sf.write(tmp_path / "low.wav", wave, 8000, subtype="FLOAT")
    rows = [{"audio_filepath": str(tmp_path / "low.wav"), "duration": 1.0}]
    native = AudioTextDataset(rows, sample_rate=None)[0]["audio"]
    assert torch.equal(native, torch.from_numpy(wave))  # untouched
    same = AudioTextDataset(rows, sample_rate=8000)[0]["audio"]
    assert torch.equal(same, torch.from_numpy(wave))
    up = AudioTextDataset(rows, sample_rate=16000)[0]["audio"]
    assert up.shape == (16000,)
    t = np.arange(16000) / 16000
    exact = 0.5 * np.sin(2 * np.pi * 200 * t)
    assert np.abs(up.numpy() - exact)[200:-200].max() < 1e-2  # away from the edges


def test_duration_filter_and_errors(corpus, capsys):
    data = AudioTextDataset(corpus / "m.jsonl", min_duration=0.5, max_duration=1.0)
    assert data.durations == pytest.approx([0.5, 0.7, 0.9])
    assert "m.jsonl: kept 3 of 6 utterances" in capsys.readouterr().out
    with pytest.raises(ManifestError, match="kept nothing"):
        AudioTextDataset(corpus / "m.jsonl", max_duration=0.1)
    tok = CharTokenizer.from_texts(["abc "])
    with pytest.raises(ValueError, match=r"utterance 0 \(u0\): character 't'"):
        AudioTextDataset(corpus / "m.jsonl", tokenizer=tok)
    with pytest.raises(ManifestError, match=r"rows\[0\]: text: missing"):
        AudioTextDataset([{"audio_filepath": "a.wav", "duration": 1.0}], tokenizer=tok)


def test_collate_pads_and_returns_lengths():
    def item(audio, tokens, name, text):
        tokens = torch.tensor(tokens, dtype=torch.long)  # (U,)
        return {"audio": audio, "tokens": tokens, "id": name, "text": text}

    items = [
        item(torch.ones(5), [3, 1], "a", "x"),
        item(torch.full((8,), 2.0), [4, 4, 4], "b", "yy"),
        item(torch.ones(2), [], "c", ""),
    ]
    batch = collate_audio_text(items)
    assert batch["audio"].shape == (3, 8) and batch["tokens"].shape == (3, 3)
    assert batch["audio_lens"].tolist() == [5, 8, 2]
    assert batch["token_lens"].tolist() == [2, 3, 0]
    for b, item in enumerate(items):
        n, u = len(item["audio"]), len(item["tokens"])
        assert torch.equal(batch["audio"][b, :n], item["audio"])
        assert batch["audio"][b, n:].abs().sum() == 0
        assert torch.equal(batch["tokens"][b, :u], item["tokens"])
        assert batch["tokens"][b, u:].abs().sum() == 0
    assert batch["ids"] == ["a", "b", "c"] and batch["texts"] == ["x", "yy", ""]
    with pytest.raises(ValueError, match="empty batch"):
        collate_audio_text([])


def test_pickle_and_dataloader_workers(corpus):
    tok = CharTokenizer.from_texts(TEXTS)
    data = AudioTextDataset(corpus / "m.jsonl", tokenizer=tok)
    clone = pickle.loads(pickle.dumps(data))
    assert torch.equal(clone[3]["audio"], data[3]["audio"])
    sampler = BucketingBatchSampler(data.durations, batch_size=2, seed=0)

    def batches(workers):
        loader = torch.utils.data.DataLoader(
            data,
            batch_sampler=sampler,
            collate_fn=collate_audio_text,
            num_workers=workers,
        )
        return list(loader)

    serial, parallel = batches(0), batches(2)
    assert [b["ids"] for b in serial] == [b["ids"] for b in parallel]
    assert sorted(i for b in parallel for i in b["ids"]) == [f"u{k}" for k in range(6)]
    for one, other in zip(serial, parallel):
        assert torch.equal(one["audio"], other["audio"])
        assert torch.equal(one["tokens"], other["tokens"])


def test_bundled_corpus_items(corpus_dir):
    manifest = corpus_dir / "dev.jsonl"
    texts = [json.loads(line)["text"] for line in manifest.read_text().splitlines()]
    data = AudioTextDataset(manifest, tokenizer=CharTokenizer.from_texts(texts))
    for k in (0, len(data) - 1):
        item = data[k]
        assert abs(item["audio"].numel() - data.durations[k] * 16000) <= 160  # 10 ms
        assert item["text"] == texts[k] and item["tokens"].numel() == len(texts[k])
