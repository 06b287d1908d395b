"""SpeakerModel on a tiny random model: steps, validation EER, data from a manifest
with a `speaker` field, embeddings (batched == single), verification, closed-set
identification, save/restore and config checks."""

import json
import math

import pytest
import torch

from minispeech.audio import save_audio
from minispeech.audio.perturb import speed_perturb
from minispeech.core.config import ConfigError
from minispeech.core.model import restore_from
from minispeech.speaker import SpeakerModel, speaker_labels
from minispeech.speaker.scoring import leave_one_out_identification, pair_trials

LABELS = ["ann", "bob", "cid"]
SEP = {"separable": True, "se": True}


def tiny_cfg(pool_mode="attention", loss="angular", encoder=None):
    titanet = {
        "_target_": "minispeech.speaker.TitaNetEncoder",
        "feat_in": 16,
        "jasper": [
            {"filters": 16, "repeat": 2, "kernel": [3], "residual": True, **SEP},
            {"filters": 24, "repeat": 1, "kernel": [1], "residual": False, **SEP},
        ],
    }
    return {
        "_target_": "minispeech.speaker.SpeakerModel",
        "labels": LABELS,
        "preprocessor": {"features": 16, "window_size": 0.025, "dither": 0.0},
        "encoder": encoder or titanet,
        "decoder": {"pool_mode": pool_mode, "emb_sizes": 8, "attention_channels": 8},
        "loss": {"name": loss},
    }


def waves(n=4, seconds=(0.5, 0.3, 0.42, 0.37)):
    gen = torch.Generator().manual_seed(7)
    return [0.1 * torch.randn(int(s * 16000), generator=gen) for s in seconds[:n]]


def batch_of(model, items):
    return model.collate(
        [
            {"audio": w, "label": y, "speaker": s, "id": f"u{k}"}
            for k, (w, y, s) in enumerate(items)
        ]
    )


@pytest.mark.parametrize(
    "pool_mode, loss",
    [("attention", "angular"), ("xvector", "cross_entropy"), ("tap", "angular")],
)
def test_forward_and_batched_embeddings_equal_single(pool_mode, loss):
    model = SpeakerModel(tiny_cfg(pool_mode, loss)).eval()
    batch = model.get_embeddings(waves(), batch_size=4)  # (N, E), padded batch
    assert batch.shape == (4, 8)
    for k, wave in enumerate(waves()):
        torch.testing.assert_close(
            batch[k], model.get_embedding(wave), atol=1e-5, rtol=0
        )
    logits, embs = model(
        *[
            batch_of(model, [(w, 0, "ann") for w in waves()])[k]
            for k in ("audio", "audio_lens")
        ]
    )
    assert logits.shape == (4, 3) and embs.shape == (4, 8)


def test_training_steps_lower_the_loss():
    torch.manual_seed(0)
    model = SpeakerModel(tiny_cfg()).train()
    batch = batch_of(model, zip(waves(), [0, 1, 2, 0], ["ann", "bob", "cid", "ann"]))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(15):
        out = model.training_step(batch)
        first = first if first is not None else float(out["loss"].detach())
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
    assert float(model.training_step(batch)["loss"].detach()) < first
    assert 0.0 <= float(out["acc"]) <= 1.0


def test_training_refuses_unknown_speakers():
    model = SpeakerModel(tiny_cfg())
    batch = batch_of(model, [(waves()[0], 0, "ann"), (waves()[1], -1, "zed")])
    with pytest.raises(ValueError, match="u1"):
        model.training_step(batch)


def test_validation_stats_concatenate_like_one_batch():
    model = SpeakerModel(tiny_cfg()).eval()
    items = list(zip(waves(), [0, 1, -1, 0], ["ann", "bob", "zed", "ann"]))
    with torch.no_grad():
        whole = model.validation_step(batch_of(model, items))
        parts = [
            model.validation_step(batch_of(model, p)) for p in (items[:2], items[2:])
        ]
    merged = {k: (parts[0][k] + parts[1][k]) for k in whole}  # sums and list concat
    assert whole["count"] == 3 and len(whole["embeddings"]) == 4
    metrics = model.validation_metrics(whole)
    assert set(metrics) == {
        "val_loss",
        "val_acc",
        "val_eer",
        "val_min_dcf",
        "val_id_acc",
    }
    for key, value in model.validation_metrics(merged).items():
        assert value == pytest.approx(metrics[key], abs=1e-4, nan_ok=True)
    assert 0.0 <= metrics["val_eer"] <= 1.0


def test_pair_trials_score_every_pair_once():
    embs = [[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]]
    scores, targets = pair_trials(embs, ["a", "b", "a"])
    assert scores.tolist() == pytest.approx([0.5, 1.0, 0.5])  # (0,1) (0,2) (1,2)
    assert targets.tolist() == [0, 1, 0]


def identification_by_loops(embs, speakers) -> float:
    """Leave-one-out identification the slow way: for each utterance, enrol every
    speaker from their other utterances (mean of unit vectors, float64) and pick
    the highest cosine."""
    unit = [torch.tensor(e, dtype=torch.float64) for e in embs]
    unit = [e / e.norm() for e in unit]
    right = total = 0
    for i, (e, s) in enumerate(zip(unit, speakers)):
        if speakers.count(s) < 2:
            continue
        best, best_cos = None, -2.0
        for name in sorted(set(speakers)):
            others = [u for j, u in enumerate(unit) if speakers[j] == name and j != i]
            mean = torch.stack(others).mean(0)
            cos = float(e @ mean / mean.norm())
            if cos > best_cos:
                best, best_cos = name, cos
        right += best == s
        total += 1
    return right / total


def test_leave_one_out_identification_matches_the_loops():
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        n, k = 12, 3
        centres = torch.randn(k, 5, generator=gen)
        speakers = [f"s{int(i)}" for i in torch.randint(k, (n,), generator=gen)]
        noise = 1.5 * torch.randn(n, 5, generator=gen)
        embs = [(centres[int(s[1:])] + x).tolist() for s, x in zip(speakers, noise)]
        if len(set(speakers)) < 2 or all(speakers.count(s) < 2 for s in speakers):
            continue
        fast = leave_one_out_identification(embs, speakers)
        assert fast == pytest.approx(identification_by_loops(embs, speakers))
    # a speaker with one utterance is still a candidate, never a query
    embs = [[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]
    assert leave_one_out_identification(embs, ["a", "a", "b"]) == 1.0
    assert math.isnan(leave_one_out_identification(embs, ["a", "b", "c"]))


def write_manifest(tmp_path, names):
    rows = []
    for k, (wave, name) in enumerate(zip(waves(), names)):
        save_audio(tmp_path / f"{k}.wav", wave, 16000)
        rows.append(
            {
                "audio_filepath": f"{k}.wav",
                "duration": len(wave) / 16000,
                "speaker": name,
            }
        )
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest, rows


def test_dataset_from_a_manifest_with_speakers(tmp_path):
    manifest, rows = write_manifest(tmp_path, ["bob", "ann", "zed", "bob"])
    assert speaker_labels(manifest) == ["ann", "bob", "zed"]
    model = SpeakerModel(tiny_cfg())
    dataset = model.build_dataset({"manifest_filepath": str(manifest)})
    batch = model.collate([dataset[k] for k in range(4)])
    assert batch["labels"].tolist() == [1, 0, -1, 1]  # "zed" is not in labels
    assert batch["speakers"] == ["bob", "ann", "zed", "bob"]
    assert dataset.durations == pytest.approx([r["duration"] for r in rows])
    # closed-set identification: enrol from the manifest rows, identify a file
    enrolled = model.eval().enroll(manifest)
    assert sorted(enrolled) == ["ann", "bob", "zed"]
    name, score = model.identify(tmp_path / "1.wav", enrolled)
    assert name == "ann" and score == pytest.approx(1.0, abs=1e-5)


def test_similarity_and_verification():
    model = SpeakerModel(tiny_cfg()).eval()
    a, b = torch.tensor([1.0, 0.0, 1.0]), torch.tensor([0.0, 3.0, 3.0])
    assert model.similarity(a, b) == pytest.approx((0.5 + 1) / 2)
    assert model.similarity(a, -a) == pytest.approx(0.0, abs=1e-7)
    wave = waves()[0]
    assert model.verify_speakers(wave, wave.clone())  # score 1 >= 0.7
    score = model.similarity(model.get_embedding(wave), model.get_embedding(waves()[1]))
    assert model.verify_speakers(wave, waves()[1], threshold=score) is True
    assert model.verify_speakers(wave, waves()[1], threshold=score + 1e-4) is False


def test_save_and_restore(tmp_path):
    model = SpeakerModel(tiny_cfg("xvector")).eval()
    again = restore_from(model.save_to(tmp_path / "spk.nemo")).eval()
    assert again.labels == LABELS
    torch.testing.assert_close(
        again.get_embeddings(waves()), model.get_embeddings(waves())
    )


def test_ecapa_model_builds_and_runs():
    ecapa = {
        "_target_": "minispeech.speaker.ECAPAEncoder",
        "feat_in": 16,
        "filters": [16, 16, 16, 32],
        "kernel_sizes": [5, 3, 3, 1],
        "dilations": [1, 2, 3, 1],
        "scale": 4,
    }
    model = SpeakerModel(tiny_cfg(encoder=ecapa)).eval()
    batch = model.get_embeddings(waves(), batch_size=4)
    torch.testing.assert_close(
        batch[2], model.get_embedding(waves()[2]), atol=1e-5, rtol=0
    )


@pytest.mark.parametrize(
    "section, key",
    [
        ("decoder", "emb_size"),
        ("decoder", "feat_in"),
        ("encoder", "filter"),
        ("loss", "scael"),
        ("train_ds", "shufle"),
    ],
)
def test_config_typos_are_named(section, key):
    cfg = tiny_cfg()
    cfg.setdefault(section, {})[key] = 1
    with pytest.raises(ConfigError, match=key):
        SpeakerModel(cfg)


def test_new_speakers_made_by_speed(tmp_path):
    manifest, rows = write_manifest(tmp_path, ["bob", "ann", "bob", "ann"])
    cfg = {
        **tiny_cfg(),
        "labels": "from_manifest",
        "train_ds": {
            "manifest_filepath": str(manifest),
            "new_speaker_speeds": [0.9, 1.1],
        },
    }
    model = SpeakerModel(cfg)
    made = ["ann@speed0.9", "bob@speed0.9", "ann@speed1.1", "bob@speed1.1"]
    assert model.labels == ["ann", "bob", *made]
    assert model.decoder.final.weight.shape[0] == 6  # one class per (speaker, speed)
    dataset = model.build_dataset(cfg["train_ds"])
    assert len(dataset) == 12
    durations = [r["duration"] for r in rows]
    expected = durations + [d / 0.9 for d in durations] + [d / 1.1 for d in durations]
    assert dataset.durations == pytest.approx(expected)
    original = dataset[1]["audio"]  # utterance 1 ("ann") as recorded
    for copy, factor in ((1, 0.9), (2, 1.1)):
        item = dataset[copy * 4 + 1]
        assert item["speaker"] == f"ann@speed{factor:g}"
        assert model.labels[item["label"]] == item["speaker"]
        # resampled by the factor: 1/factor as many samples, the same as speed_perturb
        assert abs(len(item["audio"]) - len(original) / factor) <= 1
        torch.testing.assert_close(item["audio"], speed_perturb(original, factor))
    batch = model.collate([dataset[k] for k in (0, 5, 10)])
    assert batch["labels"].tolist() == [1, 2, 5]
    assert torch.isfinite(model.train().training_step(batch)["loss"])


@pytest.mark.parametrize("speeds", [[1.0], [0.9, 0.9], [-0.9], "0.9", [True]])
def test_new_speaker_speeds_refused_by_name(tmp_path, speeds):
    manifest, _ = write_manifest(tmp_path, ["bob", "ann"])
    cfg = {
        **tiny_cfg(),
        "train_ds": {"manifest_filepath": str(manifest), "new_speaker_speeds": speeds},
    }
    with pytest.raises(ConfigError, match="new_speaker_speeds"):
        SpeakerModel(cfg)


def test_new_speaker_speeds_only_in_train_ds(tmp_path):
    manifest, _ = write_manifest(tmp_path, ["bob", "ann"])
    ds = {"manifest_filepath": str(manifest), "new_speaker_speeds": [0.9]}
    with pytest.raises(ConfigError, match="validation_ds.*new_speaker_speeds"):
        SpeakerModel({**tiny_cfg(), "validation_ds": ds})
