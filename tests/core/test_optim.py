"""Optimizers and learning-rate schedules against torch built-ins and the papers'
formulas."""

import math

import pytest
import torch

from minispeech.core.config import ConfigError
from minispeech.core.optim import build_optimizer, build_scheduler, fused_supported


def params():
    return [torch.nn.Parameter(torch.zeros(3))]


def lrs(sched_cfg: dict, max_steps: int, lr: float = 0.5) -> list:
    optimizer = torch.optim.SGD(params(), lr=lr)
    scheduler = build_scheduler(optimizer, sched_cfg, max_steps)
    out = []
    for _ in range(max_steps):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def test_optimizers_and_their_arguments():
    adamw = build_optimizer(
        params(), {"name": "adamw", "lr": 0.1, "betas": [0.8, 0.9], "weight_decay": 0.5}
    )
    assert isinstance(adamw, torch.optim.AdamW)
    assert (
        adamw.defaults["betas"] == (0.8, 0.9) and adamw.defaults["weight_decay"] == 0.5
    )
    assert isinstance(
        build_optimizer(params(), {"name": "Adam", "lr": 0.1}), torch.optim.Adam
    )
    sgd = build_optimizer(params(), {"name": "sgd", "lr": 0.1, "momentum": 0.9})
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["momentum"] == 0.9


def test_adam_is_fused_by_default_and_updates_as_the_loop_does():
    """The fused AdamW (default where torch has it) takes the same steps as torch's
    for-loop AdamW; `fused: false` and `foreach` are the user's to choose."""
    torch.manual_seed(0)
    start = [torch.randn(7, 5), torch.randn(5)]
    grads = [[torch.randn_like(p) for p in start] for _ in range(5)]
    cfg = {"name": "adamw", "lr": 0.01, "weight_decay": 0.1}
    finals = []
    for extra in ({}, {"fused": False}):
        ps = [p.clone().requires_grad_() for p in start]
        opt = build_optimizer(ps, {**cfg, **extra})
        assert opt.defaults["fused"] == (extra == {} and fused_supported(ps))
        for g in grads:
            for p, gp in zip(ps, g):
                p.grad = gp.clone()
            opt.step()
        finals.append([p.detach() for p in ps])
    for a, b in zip(*finals):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    foreach = build_optimizer(params(), {**cfg, "foreach": True})
    assert not foreach.defaults["fused"] and foreach.defaults["foreach"]
    version = tuple(int(v) for v in torch.__version__.split(".")[:2])
    assert fused_supported(params()) == (version >= (2, 4))  # CPU parameters
    assert not fused_supported([torch.zeros(3, dtype=torch.long)])
    assert fused_supported([{"params": params()}]) == (version >= (2, 4))


def test_bad_optimizer_config_is_named():
    with pytest.raises(ConfigError, match="optim.name 'lamb' unknown.*adamw"):
        build_optimizer(params(), {"name": "lamb", "lr": 0.1})
    with pytest.raises(
        ConfigError, match="optim \\(adam\\): unknown argument 'bet'.*betas"
    ):
        build_optimizer(params(), {"name": "adam", "lr": 0.1, "bet": [0.9, 0.9]})
    with pytest.raises(ConfigError, match="optim.sched.name 'cosin' unknown"):
        build_scheduler(torch.optim.SGD(params(), lr=1.0), {"name": "cosin"}, 10)


def test_cosine_after_warmup_matches_torch():
    warmup, total, lr, min_lr = 5, 40, 0.5, 0.01
    ours = lrs(
        {"name": "CosineAnnealing", "warmup_steps": warmup, "min_lr": min_lr}, total, lr
    )
    assert ours[:warmup] == pytest.approx(
        [lr * (s + 1) / warmup for s in range(warmup)]
    )
    optimizer = torch.optim.SGD(params(), lr=lr)
    reference = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=total - warmup, eta_min=min_lr
    )
    expected = []
    for _ in range(total - warmup):
        expected.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        reference.step()
    assert ours[warmup:] == pytest.approx(expected, rel=1e-12)


def test_cosine_warmup_ratio_and_the_end_value():
    ours = lrs({"name": "cosine", "warmup_ratio": 0.25, "min_lr": 0.0}, 20)
    assert ours[4] == pytest.approx(0.5)  # warmup of 5 steps reached the peak
    assert ours[-1] == pytest.approx(0.5 * 0.5 * (1 + math.cos(math.pi * 14 / 15)))


def test_noam_is_vaswani_equation_3():
    d_model, warmup = 64, 10
    ours = lrs(
        {"name": "NoamAnnealing", "d_model": d_model, "warmup_steps": warmup}, 50, 1.0
    )
    # lrate = d_model^-0.5 * min(step_num^-0.5, step_num * warmup_steps^-1.5), step_num
    # >= 1
    paper = [d_model**-0.5 * min(n**-0.5, n * warmup**-1.5) for n in range(1, 51)]
    assert ours == pytest.approx(paper, rel=1e-12)
    assert (
        max(range(50), key=ours.__getitem__) == warmup - 1
    )  # peak at step_num = warmup
    floored = lrs(
        {"name": "noam", "d_model": d_model, "warmup_steps": warmup, "min_lr": 0.05},
        50,
        1.0,
    )
    assert min(floored) == pytest.approx(0.05)


def test_inverse_square_root():
    ours = lrs({"name": "inverse_sqrt", "warmup_steps": 4}, 16, 2.0)
    assert ours[:4] == pytest.approx([0.5, 1.0, 1.5, 2.0])
    assert ours[4:] == pytest.approx([2.0 * math.sqrt(4 / n) for n in range(5, 17)])


def test_no_schedule_means_constant_lr():
    assert build_scheduler(torch.optim.SGD(params(), lr=1.0), None, 10) is None


def test_scheduler_state_round_trips():
    optimizer = torch.optim.SGD(params(), lr=1.0)
    scheduler = build_scheduler(optimizer, {"name": "cosine", "warmup_steps": 3}, 20)
    for _ in range(7):
        optimizer.step()
        scheduler.step()
    state = scheduler.state_dict()
    fresh_opt = torch.optim.SGD(params(), lr=1.0)
    fresh = build_scheduler(fresh_opt, {"name": "cosine", "warmup_steps": 3}, 20)
    fresh.load_state_dict(state)
    fresh_opt.load_state_dict(optimizer.state_dict())
    for _ in range(5):
        optimizer.step(), scheduler.step(), fresh_opt.step(), fresh.step()
        assert fresh_opt.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"]
