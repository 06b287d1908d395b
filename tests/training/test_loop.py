"""The training loop: exact resume, kills (at a random moment, inside a checkpoint
write), non-finite losses, options, outputs.

All runs use tests/tiny_model.py (an MLP regression with dropout and numpy/python-random
augmentation), so every RNG the loop must restore is in play.
"""

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tiny_model import TinyModel, tiny_config

from minispeech.core.checkpoint import CheckpointError, read_checkpoint
from minispeech.core.config import ConfigError
from minispeech.training.loop import train

TESTS = Path(__file__).resolve().parents[1]


def weights(model_file: Path) -> dict:
    return read_checkpoint(model_file).state_dict


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), f"{key} differs"


def log_records(run_dir: Path) -> list:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if k != "elapsed"} for x in lines]


def crash_on_call(monkeypatch, n: int) -> None:
    """Make the n-th training_step raise, as a crash in the middle of a run."""
    calls = {"n": 0}
    original = TinyModel.training_step

    def step(self, batch):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt("simulated crash")
        return original(self, batch)

    monkeypatch.setattr(TinyModel, "training_step", step)


@pytest.mark.parametrize("precision", ["32", "bf16-mixed", "16-mixed"])
def test_resume_is_bit_identical(tmp_path, monkeypatch, precision):
    # 8 steps x 2 micro-batches = 16 batches: crosses an epoch end (10 batches/epoch)
    sections = dict(
        trainer={
            "precision": precision,
            "accumulate_grad_batches": 2,
            "gradient_clip_val": 1.0,
        }
    )
    straight = train(tiny_config(tmp_path / "a", **sections), trust_targets=True)

    cfg = tiny_config(tmp_path / "b", **sections)
    crash_on_call(monkeypatch, 12)  # mid-run: the 12th micro-batch of 16 (or more)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, trust_targets=True)
    last = read_last(tmp_path / "b" / "tiny")
    assert 2 <= last["loop"]["step"] < 8 and last["loop"]["micro_batch"] == 0
    monkeypatch.undo()
    resumed = train(cfg, trust_targets=True)

    assert_same_weights(straight, resumed)
    assert log_records(tmp_path / "a" / "tiny") == log_records(tmp_path / "b" / "tiny")


def read_last(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)


def test_resume_after_leftovers_of_a_killed_save(tmp_path, monkeypatch):
    straight = train(tiny_config(tmp_path / "a"), trust_targets=True)
    cfg = tiny_config(tmp_path / "b")
    crash_on_call(monkeypatch, 6)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, trust_targets=True)
    monkeypatch.undo()
    # what a SIGKILL during a save leaves: a half-written temporary file and log line
    ckpt_dir = tmp_path / "b" / "tiny" / "checkpoints"
    (ckpt_dir / ".last.ckpt.abc123.tmp").write_bytes(b"PK\x03\x04 half a zip")
    with open(tmp_path / "b" / "tiny" / "metrics.jsonl", "a") as log:
        log.write('{"step": 5, "epoch": 0, "lo')
    resumed = train(cfg, trust_targets=True)
    assert_same_weights(straight, resumed)
    assert log_records(tmp_path / "a" / "tiny") == log_records(tmp_path / "b" / "tiny")


def test_crash_inside_the_rename_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    cfg = tiny_config(tmp_path)
    calls = {"n": 0}
    real_replace = os.replace

    def replace(src, dst):
        calls["n"] += 1
        if str(dst).endswith("last.ckpt") and calls["n"] > 3:
            raise KeyboardInterrupt("killed while saving")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, trust_targets=True)
    monkeypatch.undo()
    ckpt_dir = tmp_path / "tiny" / "checkpoints"
    assert not list(ckpt_dir.glob("*.tmp"))  # the failed write cleaned up after itself
    assert read_last(tmp_path / "tiny")["loop"]["step"] in (2, 4)
    straight = train(tiny_config(tmp_path / "fresh"), trust_targets=True)
    assert_same_weights(straight, train(cfg, trust_targets=True))


# The killed run sleeps 5 ms per step (same numbers, slower), so a kill within 0.3 s of
# the first checkpoint always lands mid-run.
KILL_SCRIPT = """
import sys, time, torch
torch.set_num_threads(1)
sys.path.insert(0, {tests!r})
from tiny_model import TinyModel, tiny_config
from minispeech.training.loop import train
step = TinyModel.training_step
TinyModel.training_step = lambda self, batch: time.sleep(0.005) or step(self, batch)
cfg = tiny_config({exp!r}, **{sections!r})
train(cfg, trust_targets=True)
"""


def test_sigkill_at_a_random_moment_then_resume(tmp_path):
    sections = dict(
        trainer={"max_steps": 150, "val_check_interval": 25},
        exp_manager={"every_n_train_steps": 1},
    )
    exp = tmp_path / "killed"
    script = KILL_SCRIPT.format(tests=str(TESTS), exp=str(exp), sections=sections)
    process = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE)
    last = exp / "tiny" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 60
    while not last.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    time.sleep(random.uniform(0.0, 0.3))  # a random moment, possibly mid-save
    process.send_signal(signal.SIGKILL)
    _, stderr = process.communicate()
    assert process.returncode == -signal.SIGKILL, stderr.decode()[-2000:]
    killed_at = torch.load(last, weights_only=True)["loop"]["step"]
    assert 1 <= killed_at < 150, "the run must be killed before it finishes"

    resumed = train(tiny_config(exp, **sections), trust_targets=True)
    straight = train(tiny_config(tmp_path / "straight", **sections), trust_targets=True)
    assert_same_weights(straight, resumed)


# Dies (os._exit: no cleanup, no flush) halfway through writing the third last.ckpt,
# inside the torch.save callback of atomic_write.
KILL_IN_SAVE_SCRIPT = """
import io, os, sys, torch
torch.set_num_threads(1)
sys.path.insert(0, {tests!r})
from tiny_model import tiny_config
from minispeech.training.loop import train
real_save, saves = torch.save, []
def save(obj, file, *args, **kwargs):
    if isinstance(obj, dict) and "loop" in obj:
        saves.append(obj["loop"]["step"])
        if len(saves) == 3:
            buffer = io.BytesIO()
            real_save(obj, buffer)
            file.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
            file.flush()
            os._exit(3)
    return real_save(obj, file, *args, **kwargs)
torch.save = save
train(tiny_config({exp!r}), trust_targets=True)
"""


def test_kill_while_last_ckpt_is_written_keeps_the_previous_one(tmp_path):
    exp = tmp_path / "killed"
    script = KILL_IN_SAVE_SCRIPT.format(tests=str(TESTS), exp=str(exp))
    process = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, timeout=120
    )
    assert process.returncode == 3, process.stderr.decode()[-2000:]
    ckpt_dir = exp / "tiny" / "checkpoints"
    assert len(list(ckpt_dir.glob(".last.ckpt.*.tmp"))) == 1  # the half-written file
    # the previous last.ckpt (step 4 of the saves at 2, 4, 6) is whole
    assert torch.load(ckpt_dir / "last.ckpt", weights_only=True)["loop"]["step"] == 4
    resumed = train(tiny_config(exp), trust_targets=True)
    straight = train(tiny_config(tmp_path / "straight"), trust_targets=True)
    assert_same_weights(straight, resumed)
    assert log_records(exp / "tiny") == log_records(tmp_path / "straight" / "tiny")


def test_nonfinite_loss_is_skipped_logged_and_counted(tmp_path):
    nan_ids = ["utt003", "utt017"]
    cfg = tiny_config(tmp_path, trainer={"max_steps": 12})
    cfg["model"]["train_ds"]["nan_ids"] = nan_ids
    model_file = train(cfg, trust_targets=True)
    for key, value in weights(model_file).items():
        assert torch.isfinite(value).all(), key
    records = log_records(tmp_path / "tiny")
    events = [r for r in records if r.get("event") == "nonfinite_loss"]
    assert events, "the NaN batches must be reported"
    for event in events:
        assert set(event["ids"]) & set(nan_ids)
    steps = [r["step"] for r in records if "loss" in r]
    assert steps == list(range(1, 13))  # skipped batches do not count as steps
    assert max(r["nonfinite_total"] for r in records if "nonfinite_total" in r) == len(
        events
    )


def test_consecutive_nonfinite_losses_abort(tmp_path):
    cfg = tiny_config(tmp_path, trainer={"max_consecutive_nonfinite": 3})
    cfg["model"]["train_ds"]["nan_ids"] = [f"utt{i:03d}" for i in range(24)]
    with pytest.raises(RuntimeError, match="3 consecutive non-finite losses.*utt"):
        train(cfg, trust_targets=True)


def test_outputs_best_k_and_validation_log(tmp_path):
    cfg = tiny_config(
        tmp_path,
        trainer={"max_steps": 12, "val_check_interval": 2},
        exp_manager={"save_top_k": 2},
    )
    model_file = train(cfg, trust_targets=True)
    assert model_file == tmp_path / "tiny" / "tiny.nemo" and model_file.exists()
    vals = [r for r in log_records(tmp_path / "tiny") if "val_loss" in r]
    assert [r["step"] for r in vals] == [2, 4, 6, 8, 10, 12]
    best = sorted(r["val_loss"] for r in vals)[:2]
    kept = sorted((tmp_path / "tiny" / "checkpoints").glob("*.nemo"))
    assert len(kept) == 2
    assert sorted(
        float(p.name.split("=")[1].split("-")[0]) for p in kept
    ) == pytest.approx(best, abs=1e-4)


def test_max_epochs_and_epoch_validation(tmp_path):
    cfg = tiny_config(
        tmp_path,
        trainer={"max_steps": None, "max_epochs": 2, "val_check_interval": 1.0},
    )
    cfg["model"]["train_ds"]["num_buckets"] = 1  # 24 items / batch 4 = 6 batches
    train(cfg, trust_targets=True)
    records = log_records(tmp_path / "tiny")
    assert [r["step"] for r in records if "loss" in r] == list(range(1, 13))
    assert [(r["step"], r["epoch"]) for r in records if "val_loss" in r] == [
        (6, 0),
        (12, 1),
    ]


def test_max_time_stops_the_run(tmp_path):
    cfg = tiny_config(tmp_path, trainer={"max_steps": 10_000, "max_time": 0.5})
    started = time.monotonic()
    train(cfg, trust_targets=True)
    assert time.monotonic() - started < 20
    steps = [r["step"] for r in log_records(tmp_path / "tiny") if "loss" in r]
    assert 1 <= steps[-1] < 10_000


def test_learning_rate_follows_the_schedule_in_the_log(tmp_path):
    cfg = tiny_config(tmp_path)
    train(cfg, trust_targets=True)
    lrs = [r["lr"] for r in log_records(tmp_path / "tiny") if "lr" in r]
    # warmup 2, cosine to 0.001 at step 8 (see test_optim.py for the formula checks)
    expected = [
        (
            0.01 * (s + 1) / 2
            if s < 2
            else 0.001 + 0.009 * 0.5 * (1 + math.cos(math.pi * (s - 2) / 6))
        )
        for s in range(8)
    ]
    assert lrs == pytest.approx(expected, rel=1e-9)


def test_bad_trainer_options_are_named(tmp_path):
    with pytest.raises(
        ConfigError, match="trainer: unknown key 'max_step' .did you mean 'max_steps'"
    ):
        train(tiny_config(tmp_path, trainer={"max_step": 3}), trust_targets=True)
    with pytest.raises(ConfigError, match="precision"):
        train(
            tiny_config(tmp_path, trainer={"precision": "8-mixed"}), trust_targets=True
        )
    with pytest.raises(ConfigError, match="exp_manager.monitor 'val_wer'.*val_loss"):
        cfg = tiny_config(tmp_path, exp_manager={"monitor": "val_wer"})
        train(cfg, trust_targets=True)


def test_model_target_outside_the_package_needs_trust(tmp_path):
    with pytest.raises(ConfigError, match="tiny_model.TinyModel.*outside"):
        train(tiny_config(tmp_path))


def test_corrupt_last_checkpoint_is_named(tmp_path):
    cfg = tiny_config(tmp_path)
    train(cfg, trust_targets=True)
    last = tmp_path / "tiny" / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="last.ckpt"):
        train(cfg, trust_targets=True)
