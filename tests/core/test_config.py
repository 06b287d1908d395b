"""YAML configs, dotted overrides and safe `_target_` instantiation."""

import math
import textwrap

import pytest

from minispeech.core.config import ConfigError, instantiate, load_config
from minispeech.core.optim import Noam
from minispeech.core.overrides import apply_overrides

CONFIG = """\
model:
  _target_: minispeech.core.optim.Noam
  optim:
    lr: 0.001
    betas: [0.9, 0.98]
  encoder:
    d_model: 176
    n_layers: 16
    dropout: 0.1
trainer:
  max_steps: 100
  precision: bf16-mixed
  accelerator: auto
  resume: true
  max_time: null
exp_manager:
  name: run
"""


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text(CONFIG)
    return path


def test_load_config_reads_nested_dicts(config_file):
    cfg = load_config(config_file)
    assert cfg["model"]["encoder"] == {"d_model": 176, "n_layers": 16, "dropout": 0.1}
    assert cfg["model"]["optim"]["betas"] == [0.9, 0.98]


def test_overrides_parse_python_literals(config_file):
    cfg = load_config(
        config_file,
        [
            "model.optim.lr=2e-3",
            "model.encoder.d_model=256",
            "model.encoder.dropout=0",  # an int where a float was: fine, 0 == 0.0
            "model.optim.betas=[0.8, 0.99]",
            "trainer.resume=False",
            "trainer.max_time=3600",  # the old value is null: any type
            "trainer.precision=32",  # a string key stays a string
            "exp_manager.name='my run'",
        ],
    )
    assert cfg["model"]["optim"]["lr"] == 2e-3
    assert cfg["model"]["encoder"]["d_model"] == 256
    assert cfg["model"]["optim"]["betas"] == [0.8, 0.99]
    assert cfg["trainer"]["resume"] is False
    assert cfg["trainer"]["max_time"] == 3600
    assert cfg["trainer"]["precision"] == "32"
    assert cfg["exp_manager"]["name"] == "my run"


def test_hydra_unquoted_lists_and_dicts(config_file):
    cfg = load_config(
        config_file,
        [
            "+model.augmentor.noise_kinds=[white,pink,babble]",
            "model.optim.betas=[0.8,0.99]",
            "+model.encoder.extra={depth: 2, kind: conv}",
            "+exp_manager.tag=[draft",  # not a collection: the raw string
        ],
    )
    assert cfg["model"]["augmentor"]["noise_kinds"] == ["white", "pink", "babble"]
    assert cfg["model"]["optim"]["betas"] == [0.8, 0.99]
    assert cfg["model"]["encoder"]["extra"] == {"depth": 2, "kind": "conv"}
    assert cfg["exp_manager"]["tag"] == "[draft"
    with pytest.raises(ConfigError, match="wrong type"):
        load_config(config_file, ["model.encoder.d_model=[1,2]"])


def test_yaml_words_on_the_command_line(config_file):
    cfg = load_config(config_file, ["trainer.resume=false", "trainer.max_steps=null"])
    assert cfg["trainer"]["resume"] is False and cfg["trainer"]["max_steps"] is None


def test_plus_adds_a_key_and_refuses_an_existing_one(config_file):
    cfg = load_config(config_file, ["+model.decoder.vocab_size=29", "+trainer.seed=3"])
    assert cfg["model"]["decoder"] == {"vocab_size": 29} and cfg["trainer"]["seed"] == 3
    with pytest.raises(ConfigError, match="trainer.max_steps already exists"):
        load_config(config_file, ["+trainer.max_steps=3"])


def test_unknown_override_key_names_the_nearest_keys(config_file):
    with pytest.raises(ConfigError) as error:
        load_config(config_file, ["model.encoder.d_modle=256"])
    message = str(error.value)
    assert str(config_file) in message
    assert "'model.encoder.d_modle'" in message and "model.encoder.d_model" in message
    with pytest.raises(ConfigError, match="unknown key 'model.encodr'.*model.encoder"):
        load_config(config_file, ["model.encodr.d_model=256"])


def test_wrong_override_type_is_an_error(config_file):
    with pytest.raises(ConfigError, match="trainer.max_steps=abc: wrong type.*int"):
        load_config(config_file, ["trainer.max_steps=abc"])
    with pytest.raises(ConfigError, match="wrong type.*bool"):
        load_config(config_file, ["trainer.resume=1"])
    with pytest.raises(ConfigError, match="not of the form key=value"):
        load_config(config_file, ["trainer.max_steps"])


def test_apply_overrides_does_not_touch_its_input():
    cfg = {"a": {"b": 1}}
    assert apply_overrides(cfg, ["a.b=2"]) == {"a": {"b": 2}} and cfg == {"a": {"b": 1}}


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  a: 1\n  b: [1, 2\ntrainer:\n  x: 2\n")
    with pytest.raises(ConfigError, match=rf"{path}:\d+: malformed YAML"):
        load_config(path)
    path.write_text("model:\n  a: 1\n   b: 2\n")
    with pytest.raises(ConfigError, match=rf"{path}:3: malformed YAML"):
        load_config(path)


def test_python_tags_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text(
        textwrap.dedent(f"""\
            model:
              x: !!python/object/apply:os.system ["touch {marker}"]
            """)
    )
    with pytest.raises(
        ConfigError, match=rf"{path}:2: .*python/object/apply:os.system"
    ):
        load_config(path)
    assert not marker.exists()


def test_top_level_must_be_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match=f"{path}: the top level must be a mapping"):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_instantiate_builds_the_target_with_the_other_keys():
    noam = instantiate(
        {
            "_target_": "minispeech.core.optim.Noam",
            "base_lr": 1.0,
            "d_model": 16,
            "warmup_steps": 4,
        }
    )
    assert isinstance(noam, Noam)
    assert noam(3) == pytest.approx(16**-0.5 * min(4**-0.5, 4 * 4**-1.5))
    with_extra = instantiate(
        {"_target_": "minispeech.core.optim.Noam", "d_model": 16},
        base_lr=2.0,
        warmup_steps=8,
    )
    assert with_extra.base_lr == 2.0 and with_extra.warmup_steps == 8


def test_unknown_argument_names_class_key_and_valid_keys():
    cfg = {
        "_target_": "minispeech.core.optim.Noam",
        "base_lr": 1.0,
        "d_modl": 16,
        "warmup_steps": 4,
    }
    with pytest.raises(ConfigError) as error:
        instantiate(cfg)
    message = str(error.value)
    assert "minispeech.core.optim.Noam" in message and "'d_modl'" in message
    assert "did you mean 'd_model'" in message
    assert "base_lr, d_model, warmup_steps, min_lr" in message
    with pytest.raises(ConfigError, match="missing required arguments: warmup_steps"):
        instantiate(
            {"_target_": "minispeech.core.optim.Noam", "base_lr": 1.0, "d_model": 16}
        )


def test_targets_outside_the_package_are_refused_unless_trusted():
    for target in (
        "os.system",
        "builtins.eval",
        "subprocess.Popen",
        "minispeechx.evil",
    ):
        with pytest.raises(ConfigError, match="outside the minispeech package"):
            instantiate({"_target_": target, "command": "true"})
    delta = instantiate(
        {"_target_": "datetime.timedelta", "hours": 2}, trust_targets=True
    )
    assert delta.total_seconds() == 7200


def test_bad_targets_are_named():
    with pytest.raises(
        ConfigError, match="'minispeech.nope.Thing': minispeech has no 'nope'"
    ):
        instantiate({"_target_": "minispeech.nope.Thing"})
    with pytest.raises(ConfigError, match="'nopenope.x'.*cannot import"):
        instantiate({"_target_": "nopenope.x"}, trust_targets=True)
    with pytest.raises(ConfigError, match="minispeech.core.optim has no 'Nope'"):
        instantiate({"_target_": "minispeech.core.optim.Nope"})
    with pytest.raises(ConfigError, match="needs a mapping with a _target_"):
        instantiate({"base_lr": 1.0})


def test_nested_class_target():
    noam = instantiate(
        {"_target_": "minispeech.core.optim.Noam.__call__"}, self=Noam(1.0, 4, 1), s=0
    )
    assert math.isclose(noam, 4**-0.5)


def test_load_recipe_anchors_data_paths_and_sets_a_short_run(tmp_path):
    from minispeech.core.config import load_recipe

    path = tmp_path / "recipe.yaml"
    path.write_text(
        "model:\n  train_ds: {manifest_filepath: data/train.jsonl}\n"
        "  tokenizer: {train_manifest: /abs/train.jsonl, dir: tok}\n"
        "trainer: {max_steps: 1000}\nexp_manager: {exp_dir: experiments, name: x}\n"
    )
    cfg = load_recipe(path, tmp_path / "repo", tmp_path / "exp", max_steps=5)
    assert cfg["model"]["train_ds"]["manifest_filepath"] == str(
        tmp_path / "repo" / "data/train.jsonl"
    )
    assert cfg["model"]["tokenizer"] == {  # a short run trains its own tokenizer
        "train_manifest": "/abs/train.jsonl",
        "dir": str(tmp_path / "exp" / "tokenizers" / "tok"),
    }
    assert cfg["trainer"] == {"max_steps": 5, "enable_progress_bar": False}
    assert cfg["exp_manager"] == {
        "exp_dir": str(tmp_path / "exp"),
        "name": "x",
        "resume_if_exists": False,
    }
    for kept in ("/abs/tok", "nemo:tokenizer"):  # absolute or packed: left alone
        path.write_text(f"model:\n  tokenizer: {{dir: '{kept}'}}\n")
        cfg = load_recipe(path, tmp_path / "repo", tmp_path / "exp")
        assert cfg["model"]["tokenizer"]["dir"] == kept
