"""SpeechModel base class: building from config, artifacts, data and optimizer hooks."""

import pytest
import torch
from tiny_model import TinyDataset, TinyModel

from minispeech.core.checkpoint import CheckpointError, read_checkpoint
from minispeech.core.config import ConfigError
from minispeech.core.model import SpeechModel
from minispeech.data.sampler import BucketingBatchSampler

CFG = {"_target_": "tiny_model.TinyModel", "n_samples": 6, "hidden": 4}


class TwoArtifacts(TinyModel):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.other = self.register_artifact("extra.path")


def test_from_config_builds_the_named_subclass():
    model = SpeechModel.from_config(CFG, trust_targets=True)
    assert type(model) is TinyModel and model.cfg == CFG
    assert model.num_parameters() == 6 * 4 + 4 + 4 * 1 + 1
    with pytest.raises(ConfigError, match="outside the minispeech package"):
        SpeechModel.from_config(CFG)
    with pytest.raises(
        ConfigError, match="'minispeech.core.optim.Noam' is not a SpeechModel"
    ):
        SpeechModel.from_config({"_target_": "minispeech.core.optim.Noam"})
    with pytest.raises(ConfigError, match="needs a _target_"):
        SpeechModel.from_config({"n_samples": 6})


def test_direct_construction_records_its_class():
    model = TinyModel({"n_samples": 6})
    assert model.cfg["_target_"] == "tiny_model.TinyModel"


def test_base_class_says_what_a_subclass_must_write():
    model = SpeechModel({})
    for call in (
        lambda: model.training_step({}),
        lambda: model.validation_step({}),
        lambda: model.build_dataset({}),
    ):
        with pytest.raises(NotImplementedError, match="SpeechModel must define"):
            call()


def test_default_validation_metrics_divide_by_count():
    metrics = SpeechModel({}).validation_metrics(
        {"loss": 6.0, "errors": 3.0, "count": 3.0}
    )
    assert metrics == {"val_loss": 2.0, "val_errors": 1.0}


def test_register_artifact_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="artifact key 'vocab' not in config"):
        TinyModel(CFG).register_artifact("vocab")
    with pytest.raises(ConfigError, match="artifact vocab=.*does not exist"):
        TinyModel({**CFG, "vocab": str(tmp_path / "missing.txt")})


def test_two_artifacts_with_one_basename_get_distinct_members(tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    (tmp_path / "a" / "vocab.txt").write_text("a\n")
    (tmp_path / "b" / "vocab.txt").write_text("b\n")
    cfg = {
        **CFG,
        "_target_": "test_model.TwoArtifacts",
        "vocab": str(tmp_path / "a/vocab.txt"),
        "extra": {"path": str(tmp_path / "b/vocab.txt")},
    }
    path = TwoArtifacts(cfg).save_to(tmp_path / "m.nemo")
    checkpoint = read_checkpoint(path)
    assert sorted(checkpoint.artifacts) == ["vocab.txt", "vocab.vocab.txt"]
    restored = TwoArtifacts.restore_from(path, trust_targets=True)
    assert restored.labels == ["a"] and restored.other.read_text() == "b\n"


def test_restore_checks_the_class(tmp_path):
    path = TinyModel(CFG).save_to(tmp_path / "m.nemo")
    assert isinstance(SpeechModel.restore_from(path, trust_targets=True), TinyModel)
    with pytest.raises(CheckpointError, match="holds a TinyModel, not a TwoArtifacts"):
        TwoArtifacts.restore_from(path, trust_targets=True)


def test_optimizer_and_scheduler_from_the_optim_section():
    cfg = {
        **CFG,
        "optim": {
            "name": "sgd",
            "lr": 0.5,
            "momentum": 0.9,
            "sched": {"name": "noam", "d_model": 4, "warmup_steps": 2},
        },
    }
    optimizer, scheduler = TinyModel(cfg).configure_optimizers(max_steps=10)
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.5 * 4**-0.5 * 2**-1.5)
    assert isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR)


def test_default_sampler_is_the_bucketing_sampler_per_rank():
    model = TinyModel(CFG)
    dataset = TinyDataset(20, 6, seed=0)
    ds_cfg = {"batch_size": 3, "shuffle": False, "num_buckets": 2}
    ranks = [model.build_sampler(ds_cfg, dataset, 2, r, seed=0) for r in (0, 1)]
    assert all(isinstance(s, BucketingBatchSampler) for s in ranks)
    seen = [i for sampler in ranks for batch in sampler for i in batch]
    assert sorted(set(seen)) == list(range(20))
    assert all(len(batch) <= 3 for sampler in ranks for batch in sampler)
