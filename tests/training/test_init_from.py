"""init_from_nemo_model: copying chosen weights of a model file before training."""

from __future__ import annotations

import pytest
import torch
from tiny_model import TinyModel, tiny_config

from minispeech.core.checkpoint import CheckpointError, read_checkpoint
from minispeech.core.config import ConfigError
from minispeech.training.init_from import init_from_nemo_model, parse_spec, select
from minispeech.training.loop import train


def tiny(hidden: int = 8, seed: int = 0) -> TinyModel:
    torch.manual_seed(seed)
    return TinyModel(
        {"_target_": "tiny_model.TinyModel", "n_samples": 16, "hidden": hidden}
    )


def saved(tmp_path, hidden: int = 8) -> str:
    path = tmp_path / f"source{hidden}.nemo"
    tiny(hidden, seed=1).save_to(path)
    return str(path)


def test_parse_spec_forms():
    assert parse_spec("m.nemo") == ("m.nemo", [""], [])
    assert parse_spec({"path": "m.nemo", "include": "enc", "exclude": ["x"]}) == (
        "m.nemo",
        ["enc"],
        ["x"],
    )
    for bad in (
        {"include": ["a"]},
        {"path": "m", "inclde": ["a"]},
        3,
        {"path": "m", "include": [1]},
    ):
        with pytest.raises(ConfigError, match="init_from_nemo_model"):
            parse_spec(bad)


def test_select_is_a_substring_match_with_exclusions():
    names = {"encoder.a.weight": 1, "encoder.b.weight": 2, "decoder.a.weight": 3}
    assert select(names, ["encoder."], []) == {
        "encoder.a.weight": 1,
        "encoder.b.weight": 2,
    }
    assert select(names, [""], ["b.", "decoder"]) == {"encoder.a.weight": 1}
    assert select(names, ["a.weight"], []) == {
        "encoder.a.weight": 1,
        "decoder.a.weight": 3,
    }


def test_copies_the_included_weights_only(tmp_path):
    path = saved(tmp_path)
    source = read_checkpoint(path).state_dict
    model = tiny(seed=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    copied = init_from_nemo_model(model, {"path": path, "include": ["net.0."]})
    assert sorted(copied) == ["net.0.bias", "net.0.weight"]
    after = model.state_dict()
    for name in after:
        want = source[name] if name in copied else before[name]
        assert torch.equal(after[name], want), name
    assert not torch.equal(after["net.3.weight"], source["net.3.weight"])


def test_refuses_before_copying_anything(tmp_path):
    model = tiny(hidden=8, seed=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    wider = saved(tmp_path, hidden=12)  # every net tensor has another shape
    with pytest.raises(CheckpointError, match=r"net\.0\.weight: file \(12, 16\)"):
        init_from_nemo_model(model, wider)
    with pytest.raises(ConfigError, match="no weight name contains"):
        init_from_nemo_model(model, {"path": saved(tmp_path), "include": ["encoder."]})
    with pytest.raises(CheckpointError, match="no such model file"):
        init_from_nemo_model(model, str(tmp_path / "missing.nemo"))
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_training_starts_from_the_copied_weights(tmp_path):
    source = read_checkpoint(train(tiny_config(tmp_path / "a"), trust_targets=True))
    cfg = tiny_config(tmp_path / "b", trainer={"max_steps": 1, "seed": 8})
    cfg["init_from_nemo_model"] = {
        "path": str(tmp_path / "a" / "tiny" / "tiny.nemo"),
        "include": ["net.0."],
    }
    start = read_checkpoint(train(cfg, trust_targets=True)).state_dict
    # one AdamW step moves a weight by at most about lr (0.01 here, in warm-up)
    copied = (start["net.0.weight"] - source.state_dict["net.0.weight"]).abs().max()
    fresh = (start["net.3.weight"] - source.state_dict["net.3.weight"]).abs().max()
    assert copied <= 0.011 and fresh > 0.05, (copied, fresh)


def test_a_misspelt_top_level_key_stops_the_run(tmp_path):
    cfg = tiny_config(tmp_path)
    cfg["init_from_nemo_modle"] = str(tmp_path / "a.nemo")
    with pytest.raises(ConfigError, match="did you mean 'init_from_nemo_model'"):
        train(cfg, trust_targets=True)
    assert not (tmp_path / "tiny").exists()  # stopped before any work
