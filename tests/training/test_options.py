"""`trainer:` and `exp_manager:` values are checked when read; a bad one is named with
its dotted field and value (`trainer.max_steps: must be >= 1, got -5`)."""

import re

import pytest

from minispeech.core.config import ConfigError
from minispeech.training.options import ExpOptions, TrainerOptions

BASE = {"max_steps": 10}


@pytest.mark.parametrize(
    "values, message",
    [
        ({"max_steps": -5}, "trainer.max_steps: must be >= 1, got -5"),
        ({"max_steps": 0}, "trainer.max_steps: must be >= 1, got 0"),
        ({"max_steps": "abc"}, "trainer.max_steps: must be an integer, got 'abc'"),
        ({"max_steps": True}, "trainer.max_steps: must be an integer, got True"),
        ({"max_epochs": 0}, "trainer.max_epochs: must be >= 1, got 0"),
        ({"seed": -1}, "trainer.seed: must be >= 0, got -1"),
        (
            {"accumulate_grad_batches": 0},
            "trainer.accumulate_grad_batches: must be >= 1, got 0",
        ),
        ({"val_check_interval": 0}, "trainer.val_check_interval: must be > 0, got 0"),
        (
            {"val_check_interval": -0.5},
            "trainer.val_check_interval: must be > 0, got -0.5",
        ),
        ({"log_every_n_steps": 0}, "trainer.log_every_n_steps: must be >= 1, got 0"),
        ({"limit_val_batches": 0}, "trainer.limit_val_batches: must be > 0, got 0"),
        (
            {"limit_val_batches": 1.5},
            "trainer.limit_val_batches: a fraction must be <= 1.0",
        ),
        (
            {"gradient_clip_val": -1.0},
            "trainer.gradient_clip_val: must be >= 0, got -1.0",
        ),
        (
            {"gradient_clip_val": float("nan")},
            "trainer.gradient_clip_val: must be >= 0, got nan",
        ),
        (
            {"max_consecutive_nonfinite": 0},
            "trainer.max_consecutive_nonfinite: must be >= 1, got 0",
        ),
        ({"max_time": 0}, "trainer.max_time: must be > 0, got 0"),
        ({"max_time": "1:xx"}, "trainer.max_time: seconds or DD:HH:MM:SS, got '1:xx'"),
        ({"precision": "8-mixed"}, "trainer.precision: use 32, bf16-mixed or 16-mixed"),
    ],
)
def test_bad_trainer_values_are_named(values, message):
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        TrainerOptions.from_dict({**BASE, **values})


def test_no_limit_at_all_is_refused():
    with pytest.raises(ConfigError, match="set max_steps or max_epochs"):
        TrainerOptions.from_dict({"max_steps": -1})


def test_good_trainer_values_are_kept():
    opts = TrainerOptions.from_dict(
        {"max_steps": -1, "max_epochs": 2, "max_time": "00:00:01:30"}
    )
    assert (opts.max_steps, opts.max_epochs, opts.max_time) == (None, 2, 90.0)
    assert TrainerOptions.from_dict({**BASE, "gradient_clip_val": 0}).max_steps == 10
    assert TrainerOptions.from_dict({**BASE, "val_check_interval": 0.25})


@pytest.mark.parametrize(
    "limit, expected",
    [(1.0, 10), (None, 10), (0.25, 2), (0.01, 1), (3, 3), (1, 1), (50, 10)],
)
def test_limit_val_batches_as_in_lightning(limit, expected):
    """A float is a fraction (1.0: all), an int a count (1: one batch)."""
    opts = TrainerOptions.from_dict({**BASE, "limit_val_batches": limit})
    assert opts.val_batches(10) == expected


@pytest.mark.parametrize(
    "values, message",
    [
        ({"save_top_k": -1}, "exp_manager.save_top_k: must be >= 0, got -1"),
        (
            {"every_n_train_steps": -2},
            "exp_manager.every_n_train_steps: must be >= 0, got -2",
        ),
        ({"mode": "maximum"}, "exp_manager.mode: use min or max, got 'maximum'"),
        ({"name": ""}, "exp_manager.name: must be a non-empty string, got ''"),
        ({"save_top_k": 1.5}, "exp_manager.save_top_k: must be an integer, got 1.5"),
    ],
)
def test_bad_exp_manager_values_are_named(values, message):
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        ExpOptions.from_dict(values)
