"""Every recipe family in configs/ survives SIGKILL at a random step: the resumed run
ends bit for bit where an unbroken run ends (model weights compared with torch.equal).

Each family is its shipped recipe with a short schedule and small batches; the killed
run is a separate process, killed at a random moment after its first `last.ckpt`
(possibly in the middle of writing the next one).
"""

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from minispeech.core.checkpoint import read_checkpoint
from minispeech.core.config import load_recipe
from minispeech.training.loop import train

REPO = Path(__file__).resolve().parents[2]
# one recipe per model family; a new task adds its recipe here
FAMILIES = {
    "ctc": "configs/asr/conformer_ctc_tiny.yaml",
    "rnnt": "configs/asr/fastconformer_transducer_tiny.yaml",
    "tdt": "configs/asr/fastconformer_tdt_tiny.yaml",
    "fastpitch": "configs/tts/fastpitch_tiny.yaml",
}
STEPS = 8

# The killed run sleeps 50 ms per step (the same numbers, slower), so the kill lands
# before the last step; one thread in every run so the float sums are the same.
KILL_SCRIPT = """
import sys, time, torch
torch.set_num_threads(1)
sys.path.insert(0, {tests!r})
from test_kill_recipes import short_recipe
from minispeech.core.config import locate
from minispeech.training.loop import train
cfg = short_recipe({name!r}, {exp!r})
cls = locate(cfg["model"]["_target_"])
step = cls.training_step
cls.training_step = lambda self, batch: time.sleep(0.05) or step(self, batch)
train(cfg)
"""


def short_recipe(name: str, exp_dir) -> dict:
    """The family's recipe: 8 steps of 8-second batches, a checkpoint every step."""
    cfg = load_recipe(
        REPO / FAMILIES[name],
        REPO,
        exp_dir,
        max_steps=STEPS,
        max_time=None,
        val_check_interval=1000,
    )
    cfg["model"]["train_ds"].update(max_seconds=8.0, cache_audio=False)
    cfg["model"].pop("validation_ds", None)
    cfg["exp_manager"].update(
        every_n_train_steps=1, save_top_k=0, resume_if_exists=True
    )
    return cfg


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_recipe_killed_at_a_random_step_resumes_bit_exact(name, tmp_path, one_thread):
    exp = tmp_path / "killed"
    script = KILL_SCRIPT.format(
        tests=str(Path(__file__).parent), name=name, exp=str(exp)
    )
    process = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE)
    run_name = short_recipe(name, exp)["exp_manager"]["name"]
    last = exp / run_name / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 120
    while not last.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    time.sleep(random.uniform(0.0, 0.2))  # a random moment, possibly mid-save
    process.send_signal(signal.SIGKILL)
    _, stderr = process.communicate()
    assert process.returncode == -signal.SIGKILL, stderr.decode()[-2000:]
    killed_at = torch.load(last, weights_only=True)["loop"]["step"]
    assert 1 <= killed_at < STEPS, "the run must be killed before it finishes"

    resumed = read_checkpoint(train(short_recipe(name, exp))).state_dict
    straight = read_checkpoint(train(short_recipe(name, tmp_path / "straight")))
    assert resumed.keys() == straight.state_dict.keys()
    for key, value in straight.state_dict.items():
        assert torch.equal(resumed[key], value), f"{name}: {key} differs"
