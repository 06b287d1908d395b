"""Validation stats: numbers are summed, lists concatenated (in batch order, then rank
order: see test_ddp.py), and the default `validation_metrics` skips the lists."""

import pytest
import torch
from test_loop import log_records
from tiny_model import LAST, ScoringTinyModel, TinyDataset, tiny_config

from minispeech.core.model import SpeechModel
from minispeech.training.loop import add_stats, train


def test_numbers_are_summed_and_lists_concatenated():
    totals: dict = {}
    add_stats(totals, {"loss": 1.5, "count": 2, "scores": [0.1, 0.2]})
    add_stats(totals, {"loss": 0.5, "count": 1, "scores": (0.3,)})
    assert totals == {"loss": 2.0, "count": 3.0, "scores": [0.1, 0.2, 0.3]}


def test_default_validation_metrics_skip_list_stats():
    stats = {"loss": 6.0, "count": 3.0, "scores": [0.1, 0.9], "labels": [0, 1]}
    assert SpeechModel({}).validation_metrics(stats) == {"val_loss": 2.0}


def test_list_stats_reach_validation_metrics_in_batch_order(tmp_path):
    cfg = tiny_config(tmp_path, exp_manager={"monitor": "val_mae"})
    cfg["model"]["_target_"] = "tiny_model.ScoringTinyModel"
    train(cfg, trust_targets=True)
    model = LAST[0]
    assert isinstance(model, ScoringTinyModel)
    val_cfg = {**cfg["model"]["validation_ds"], "shuffle": False}
    dataset = TinyDataset(8, 16, seed=2)
    batches = model.build_sampler(val_cfg, dataset, 1, 0, seed=7)
    expected = [dataset.ids[i] for batch in batches for i in batch]
    assert model.val_lists["ids"] == expected and len(model.val_lists["errors"]) == 8
    vals = [r for r in log_records(tmp_path / "tiny") if "val_loss" in r]
    assert [r["step"] for r in vals] == [4, 8]
    # the numbers are still summed: val_loss is the mean squared error of the errors
    squares = [e * e for e in model.val_lists["errors"]]
    assert vals[-1]["val_loss"] == pytest.approx(sum(squares) / 8, rel=1e-5)
    assert vals[-1]["val_mae"] == pytest.approx(
        sum(abs(e) for e in model.val_lists["errors"]) / 8
    )


def test_limit_val_batches_validates_the_first_batches_only(tmp_path):
    cfg = tiny_config(tmp_path, exp_manager={"monitor": "val_mae"})
    cfg["model"]["_target_"] = "tiny_model.ScoringTinyModel"
    cfg["trainer"]["limit_val_batches"] = 1
    train(cfg, trust_targets=True)
    model = LAST[0]
    val_cfg = {**cfg["model"]["validation_ds"], "shuffle": False}
    batches = list(model.build_sampler(val_cfg, TinyDataset(8, 16, seed=2), 1, 0, 7))
    first = [TinyDataset(8, 16, seed=2).ids[i] for i in batches[0]]
    assert len(batches) > 1 and model.val_lists["ids"] == first


def test_validation_does_not_change_the_training(tmp_path):
    """A run validated every 2 steps ends with the same weights as one validated only
    at its end: validation draws nothing from the RNG that dropout uses."""
    finals = []
    for interval in (2, 8):
        cfg = tiny_config(tmp_path / f"every{interval}")
        cfg["trainer"]["val_check_interval"] = interval
        train(cfg, trust_targets=True)
        finals.append(LAST[0].state_dict())
    assert finals[0].keys() == finals[1].keys()
    for key, value in finals[0].items():
        assert torch.equal(value, finals[1][key]), key
