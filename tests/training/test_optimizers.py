"""Several optimizers: a tiny GAN (tests/tiny_model.py TinyGan) trains with manual
optimization, resumes bit for bit, and steps both its optimizers; the one-optimizer
path still reads the old `last.ckpt` format.
"""

import pytest
import torch
from test_loop import assert_same_weights, log_records, read_last
from test_loop import crash_on_call as crash_tiny_model_on_call
from tiny_model import LAST, TinyGan, tiny_config

from minispeech.core.config import ConfigError
from minispeech.training.checkpointer import seed_everything
from minispeech.training.distributed import DistEnv
from minispeech.training.loop import train
from minispeech.training.optimizers import Optimizers
from minispeech.training.options import TrainerOptions


def gan_config(exp_dir, **trainer) -> dict:
    cfg = tiny_config(exp_dir, trainer=trainer)
    cfg["model"]["_target_"] = "tiny_model.TinyGan"
    return cfg


def crash_gan_on_call(monkeypatch, n: int) -> None:
    """Make the n-th TinyGan.training_step raise, as a crash in the middle of a run."""
    calls = {"n": 0}
    original = TinyGan.training_step

    def step(self, batch, optimizers):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt("simulated crash")
        return original(self, batch, optimizers)

    monkeypatch.setattr(TinyGan, "training_step", step)


@pytest.mark.parametrize("precision", ["32", "16-mixed"])
def test_two_optimizers_resume_bit_identical(tmp_path, monkeypatch, precision):
    trainer = dict(precision=precision, accumulate_grad_batches=2, gradient_clip_val=1)
    straight = train(gan_config(tmp_path / "a", **trainer), trust_targets=True)

    cfg = gan_config(tmp_path / "b", **trainer)
    crash_gan_on_call(monkeypatch, 12)  # micro-batch 12 of 16; last.ckpt: step 4
    with pytest.raises(KeyboardInterrupt):
        train(cfg, trust_targets=True)
    last = read_last(tmp_path / "b" / "tiny")
    assert 2 <= last["loop"]["step"] < 8 and len(last["optimizers"]) == 2
    assert last["schedulers"][0] is not None and last["schedulers"][1] is None
    monkeypatch.undo()
    resumed = train(cfg, trust_targets=True)

    assert_same_weights(straight, resumed)  # generator and discriminator
    records = log_records(tmp_path / "a" / "tiny")
    assert records == log_records(tmp_path / "b" / "tiny")
    steps = [r for r in records if "lr_1" in r]
    assert [r["step"] for r in steps] == list(range(1, 9))
    # the discriminator's lr has no schedule: half the generator's base lr throughout
    assert all(r["lr_1"] == pytest.approx(0.005) for r in steps)


def test_both_optimizers_change_their_parameters(tmp_path):
    cfg = gan_config(tmp_path)
    seed_everything(cfg["trainer"]["seed"])  # the loop builds the model after this
    before = {k: v.clone() for k, v in TinyGan(cfg["model"]).state_dict().items()}
    train(cfg, trust_targets=True)
    after = LAST[0].state_dict()
    for key in before:
        assert key.startswith(("net.", "discriminator."))
        assert not torch.equal(before[key], after[key]), f"{key} did not train"
        assert torch.isfinite(after[key]).all()


def test_gan_skips_nonfinite_steps(tmp_path):
    cfg = gan_config(tmp_path, max_steps=12)
    cfg["model"]["train_ds"]["nan_ids"] = ["utt003"]
    model_file = train(cfg, trust_targets=True)
    records = log_records(tmp_path / "tiny")
    assert [r["step"] for r in records if "loss" in r] == list(range(1, 13))
    assert any(r.get("event") == "nonfinite_loss" for r in records)
    assert model_file.exists()
    for key, value in LAST[0].state_dict().items():
        assert torch.isfinite(value).all(), key


def optimizers_for(*params, manual=True, accumulate=1) -> Optimizers:
    opts = TrainerOptions(max_steps=1, accumulate_grad_batches=accumulate)
    env = DistEnv(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    sgd = [torch.optim.SGD([p], lr=1.0) for p in params]
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    return Optimizers(sgd, [None] * len(sgd), scaler, opts, env, manual)


def test_a_manual_loss_reaches_only_its_own_parameters():
    a, b = torch.tensor(2.0, requires_grad=True), torch.tensor(3.0, requires_grad=True)
    optim = optimizers_for(a, b)
    optim.start_micro_batch(window_end=False)
    opt_a, _ = optim.items
    assert opt_a.backward(a * b)
    assert a.grad == 3.0 and b.grad is None  # b's optimizer never sees a's loss


def test_accumulation_steps_once_per_window_with_the_mean_gradient():
    w = torch.tensor(1.0, requires_grad=True)
    optim = optimizers_for(w, accumulate=2)
    (opt,) = optim.items
    for window_end, x in [(False, 2.0), (True, 4.0)]:
        optim.start_micro_batch(window_end)
        opt.backward(w * x)
        opt.step()
        if not window_end:
            assert w.item() == 1.0 and w.grad == 1.0  # (2 / 2) so far, no step yet
    [result] = optim.end_window()
    assert result.outcome == "stepped" and result.grad_norm == pytest.approx(3.0)
    assert w.item() == pytest.approx(1.0 - 3.0)  # lr 1 x mean gradient (2 + 4) / 2


def test_a_nonfinite_loss_skips_every_optimizer_of_the_window():
    a, b = torch.tensor(1.0, requires_grad=True), torch.tensor(1.0, requires_grad=True)
    optim = optimizers_for(a, b)
    optim.start_micro_batch(window_end=True)
    opt_a, opt_b = optim.items
    assert not opt_a.backward(a * float("nan"))
    opt_a.step()
    opt_b.backward(b * 2.0)
    opt_b.step()
    outcomes = [r.outcome for r in optim.end_window()]
    assert outcomes == ["nonfinite_loss", "nonfinite_loss"]
    assert a.item() == b.item() == 1.0 and b.grad is None


def test_several_optimizers_need_manual_optimization(tmp_path, monkeypatch):
    monkeypatch.setattr(TinyGan, "manual_optimization", False)
    with pytest.raises(ConfigError, match="2 optimizers.*manual_optimization = True"):
        train(gan_config(tmp_path), trust_targets=True)


def test_old_single_optimizer_last_ckpt_still_resumes(tmp_path, monkeypatch):
    straight = train(tiny_config(tmp_path / "a"), trust_targets=True)
    cfg = tiny_config(tmp_path / "b")
    crash_tiny_model_on_call(monkeypatch, 6)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, trust_targets=True)
    monkeypatch.undo()
    # rewrite last.ckpt in the format of a single optimizer
    path = tmp_path / "b" / "tiny" / "checkpoints" / "last.ckpt"
    last = torch.load(path, weights_only=True)
    last["optimizer"] = last.pop("optimizers")[0]
    last["scheduler"] = last.pop("schedulers")[0]
    last["loop"]["window_finite"] = True  # a counter of the old format
    torch.save(last, path)
    assert_same_weights(straight, train(cfg, trust_targets=True))
