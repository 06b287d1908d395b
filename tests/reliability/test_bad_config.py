"""Bad configs: every error is one ConfigError line that starts with the config file
(and its line, where YAML knows it), including the checks that run after
`load_config` on the returned dict, which `config_errors(path)` prefixes.

Loading never writes, and the returned config holds only what the YAML says (no
bookkeeping key that a model file would then carry).
"""

import re

import pytest

from minispeech.core.config import (
    ConfigError,
    config_errors,
    instantiate,
    load_config,
)
from minispeech.errors import MinispeechError

GOOD = """\
trainer:
  max_steps: 10
  precision: 32
model:
  _target_: minispeech.core.optim.Noam
  base_lr: 1.0
  d_model: 16
  warmup_steps: 4
"""


def load(path, overrides=()):
    return load_config(path, overrides)


def build_model(path, overrides=()):
    cfg = load_config(path, overrides)
    with config_errors(path):
        return instantiate(cfg["model"])


def trainer_options(path, overrides=()):
    from minispeech.training.options import TrainerOptions

    cfg = load_config(path, overrides)
    with config_errors(path):
        return TrainerOptions.from_dict(cfg["trainer"])


def train(path, overrides=()):
    from minispeech.training.loop import train

    cfg = load_config(path, overrides)
    with config_errors(path):
        return train(cfg)


def model_as(target, **extra):
    """GOOD with the model section's _target_ (and more keys) replaced."""
    lines = [f"  {key}: {value}" for key, value in extra.items()]
    text = GOOD.replace("minispeech.core.optim.Noam", target)
    return text + "".join(line + "\n" for line in lines)


# (YAML text, overrides, what runs, regex after the path), id=the case
CASES = [
    pytest.param(
        GOOD.replace("  precision: 32\n", "  max_steps: 3\n"),
        [],
        load,
        r":3: duplicate key 'max_steps' \(first on line 2\)$",
        id="duplicate-key",
    ),
    pytest.param(
        GOOD + "trainer: {max_steps: 5}\n",
        [],
        load,
        r":9: duplicate key 'trainer' \(first on line 1\)$",
        id="duplicate-section",
    ),
    pytest.param(
        "trainer:\n  max_steps: [1, 2\n", [], load, ":3: malformed YAML", id="syntax"
    ),
    pytest.param(
        "trainer:\n  max_steps: 1\n\tprecision: 32\n",
        [],
        load,
        ":3: malformed YAML: .*'\\\\t'",
        id="tab",
    ),
    pytest.param(
        "x: !!python/object/apply:os.system ['true']\n",
        [],
        load,
        ":1: malformed YAML: could not determine a constructor for the tag",
        id="python-tag",
    ),
    pytest.param(
        "- trainer\n- model\n",
        [],
        load,
        ": the top level must be a mapping, got list$",
        id="top-level-list",
    ),
    pytest.param(
        "42\n", [], load, ": the top level must be a mapping, got int$", id="scalar"
    ),
    pytest.param(
        GOOD,
        ["trainer.max_stesp=5"],
        load,
        ": override 'trainer.max_stesp=5': unknown key 'trainer.max_stesp'; "
        "nearest existing keys: trainer.max_steps",
        id="unknown-override-key",
    ),
    pytest.param(
        GOOD,
        ["trainer.max_steps=abc"],
        load,
        ": override trainer.max_steps=abc: wrong type, expected int",
        id="override-wrong-type",
    ),
    pytest.param(
        GOOD,
        ["trainer.max_steps"],
        load,
        ": override 'trainer.max_steps' is not of the form key=value",
        id="override-no-value",
    ),
    pytest.param(
        GOOD,
        ["trainer.max_steps.x=1"],
        load,
        ": override 'trainer.max_steps.x=1': unknown key 'trainer.max_steps'",
        id="override-into-a-number",
    ),
    pytest.param(
        GOOD,
        ["+trainer.max_steps=1"],
        load,
        r": override '\+trainer.max_steps=1': trainer.max_steps already exists",
        id="plus-on-existing",
    ),
    pytest.param(
        model_as("os.system"),
        [],
        build_model,
        ": _target_ 'os.system' is outside the minispeech package; refusing",
        id="target-outside-minispeech",
    ),
    pytest.param(
        model_as("minispeech.nope.Thing"),
        [],
        build_model,
        ": _target_ 'minispeech.nope.Thing': minispeech has no 'nope'",
        id="target-missing",
    ),
    pytest.param(
        GOOD.replace("d_model", "d_modl"),
        [],
        build_model,
        ": minispeech.core.optim.Noam: unknown argument 'd_modl' "
        r"\(did you mean 'd_model'\?\)",
        id="unknown-argument",
    ),
    pytest.param(
        GOOD.replace("  warmup_steps: 4\n", ""),
        [],
        build_model,
        ": minispeech.core.optim.Noam: missing required arguments: warmup_steps",
        id="missing-argument",
    ),
    pytest.param(
        GOOD.replace("precision: 32", "precision: fp8"),
        [],
        trainer_options,
        ": trainer.*precision",
        id="trainer-value",
    ),
    pytest.param(
        "trainer:\n  max_steps: 10\n",
        [],
        train,
        ": config has no model: section$",
        id="missing-section",
    ),
]


@pytest.mark.parametrize("text, overrides, run, expected", CASES)
def test_bad_config_is_one_line_naming_the_file(
    tmp_path, text, overrides, run, expected
):
    path = tmp_path / "conf.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        run(path, overrides)
    message = str(error.value)
    assert "\n" not in message, message
    assert re.match(f"{re.escape(str(path))}{expected}", message), message
    assert isinstance(error.value, (MinispeechError, ValueError))
    assert sorted(tmp_path.iterdir()) == [path]  # nothing written
    assert path.read_text(encoding="utf-8") == text


# (raw bytes or None for no file, regex after the path): the file as a whole
WHOLE_FILE = [
    pytest.param(None, ": cannot read config: No such file", id="missing"),
    pytest.param("folder", ": cannot read config: Is a directory", id="folder"),
    pytest.param(b"a: \xff\xfe\n", r": not UTF-8 text \(byte 3\)$", id="not-utf8"),
]


@pytest.mark.parametrize("data, expected", WHOLE_FILE)
def test_unreadable_config_file_is_named(tmp_path, data, expected):
    path = tmp_path / "conf.yaml"
    if data == "folder":
        path.mkdir()
    elif data is not None:
        path.write_bytes(data)
    with pytest.raises(ConfigError, match=f"^{re.escape(str(path))}{expected}"):
        load_config(path)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("\ufeffa: 1\n", {"a": 1}),  # a BOM from a Windows editor
        ("a: 1\r\nb: {c: 2}\r\n", {"a": 1, "b": {"c": 2}}),  # CRLF
        ("", {}),  # empty: an empty config, not None
        ("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  x: 3\n", None),  # merge may override
        ("a: 1\nb:\n  a: 2\n", {"a": 1, "b": {"a": 2}}),  # same key, other mapping
    ],
)
def test_good_configs_load_exactly(tmp_path, text, expected):
    path = tmp_path / "conf.yaml"
    path.write_text(text, encoding="utf-8")
    cfg = load_config(path)
    if expected is None:
        assert cfg["c"] == {"x": 3, "y": 2}
    else:
        assert cfg == expected  # nothing added: a saved config carries no path


def test_config_errors_names_the_file_once(tmp_path):
    path = tmp_path / "conf.yaml"
    with pytest.raises(ConfigError, match=f"^{re.escape(str(path))}: x: bad$"):
        with config_errors(path):
            with config_errors(path):
                raise ConfigError("x: bad")
    with config_errors(path):  # no error: nothing happens
        pass
