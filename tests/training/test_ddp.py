"""Two CPU processes (gloo backend) train like one process on the global batch.

Each rank takes its own batches from the bucketing sampler; DistributedDataParallel
averages the gradients, so both ranks must hold identical weights, and those weights
must match a single process whose every batch is the union of the two ranks' batches
(the mean loss over 4 items equals the mean of two 2-item means). The same holds for
a two-optimizer GAN (manual optimization: no DDP wrapper, the loop averages the
gradients), and validation list stats reach every rank concatenated in rank order.
"""

import json
import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp
from tiny_model import LAST, ScoringTinyModel, TinyDataset, TinyGan, tiny_config

from minispeech.training.loop import train


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ddp_config(exp_dir: Path, **model) -> dict:
    cfg = tiny_config(
        exp_dir,
        trainer={"max_steps": 4, "val_check_interval": 2, "gradient_clip_val": 5.0},
        exp_manager={"every_n_train_steps": 2},
    )
    cfg["model"].update(dropout=0.0, **model)  # dropout masks differ per rank by design
    # one bucket: every batch holds exactly 2 items, so per-rank means average exactly
    cfg["model"]["train_ds"].update(n=16, batch_size=2, augment=False, num_buckets=1)
    return cfg


def worker(rank: int, port: int, out: str, nan_ids: list, target: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE="2",
        LOCAL_RANK=str(rank),
    )
    cfg = ddp_config(Path(out) / "exp", _target_=target)
    cfg["model"]["train_ds"]["nan_ids"] = nan_ids
    train(cfg, trust_targets=True)
    model = LAST[0]
    torch.save(model.state_dict(), Path(out) / f"weights{rank}.pt")
    (Path(out) / f"ids{rank}.json").write_text(json.dumps(model.seen_ids))
    val_lists = getattr(model, "val_lists", {})
    (Path(out) / f"val{rank}.json").write_text(json.dumps(val_lists))


class ReplaySampler:
    """Fixed batches of indices (one epoch) with the sampler interface of the loop."""

    def __init__(self, batches: list):
        self.batches, self.skip = batches, 0

    def set_epoch(self, epoch: int) -> None:
        pass

    def __iter__(self):
        yield from self.batches[self.skip :]
        self.skip = 0

    def __len__(self) -> int:
        return len(self.batches)

    def state_dict(self, batches_done: int = 0) -> dict:
        return {"batches_done": batches_done}

    def load_state_dict(self, state: dict) -> None:
        self.skip = state["batches_done"]


class Replay:
    """Mixin: a tiny model whose training batches are given in its config (`replay`)."""

    def build_sampler(self, ds_cfg, dataset, num_replicas, rank, seed):
        if ds_cfg is not self.cfg.get("train_ds"):
            return super().build_sampler(ds_cfg, dataset, num_replicas, rank, seed)
        return ReplaySampler(self.cfg["replay"])


class ReplayModel(Replay, ScoringTinyModel):
    pass


class ReplayGan(Replay, TinyGan):
    pass


def run_two_ranks(tmp_path: Path, target: str, nan_ids=()) -> tuple:
    mp.start_processes(
        worker,
        args=(free_port(), str(tmp_path), list(nan_ids), target),
        nprocs=2,
        start_method="spawn",
    )
    weights = [
        torch.load(tmp_path / f"weights{r}.pt", weights_only=True) for r in (0, 1)
    ]
    ids = [json.loads((tmp_path / f"ids{r}.json").read_text()) for r in (0, 1)]
    return weights, ids


def test_two_gloo_ranks_match_one_process_on_the_global_batch(tmp_path):
    # utt005 has a NaN target: its step must be skipped on both ranks together
    target = "tiny_model.ScoringTinyModel"
    (w0, w1), (ids0, ids1) = run_two_ranks(tmp_path, target, nan_ids=["utt005"])
    for key in w0:
        assert torch.equal(w0[key], w1[key]), f"ranks disagree on {key}"
        assert torch.isfinite(w0[key]).all()
    log = (tmp_path / "exp" / "tiny" / "metrics.jsonl").read_text().splitlines()
    events = [json.loads(x) for x in log if "nonfinite_loss" in x]
    assert len(events) == 1 and events[0]["ids"] and "utt005" in events[0]["ids"]
    # each rank its own batches: disjoint within the first epoch (8 batches of 2)
    seen0 = {i for batch in ids0[:4] for i in batch}
    seen1 = {i for batch in ids1[:4] for i in batch}
    assert (
        len(ids0) == len(ids1) == 5 and not seen0 & seen1 and len(seen0 | seen1) == 16
    )

    # one process, each step on the union of the two ranks' batches (the NaN one too)
    replay = "test_ddp.ReplayModel"
    assert_matches_one_process(tmp_path, w0, ids0, ids1, replay, nan_ids=["utt005"])

    # validation lists: every rank holds rank 0's items, then rank 1's
    val0, val1 = (json.loads((tmp_path / f"val{r}.json").read_text()) for r in (0, 1))
    assert val0 == val1 and len(val0["errors"]) == 8
    val_cfg = {**ddp_config(tmp_path)["model"]["validation_ds"], "shuffle": False}
    dataset = TinyDataset(8, 16, seed=2)
    model = ScoringTinyModel(ddp_config(tmp_path)["model"])
    shards = [model.build_sampler(val_cfg, dataset, 2, r, seed=7) for r in (0, 1)]
    assert val0["ids"] == [dataset.ids[i] for s in shards for b in s for i in b]


def test_two_gloo_ranks_train_a_two_optimizer_gan_like_one_process(tmp_path):
    (w0, w1), (ids0, ids1) = run_two_ranks(tmp_path, "tiny_model.TinyGan")
    assert any(key.startswith("discriminator.") for key in w0)
    for key in w0:
        assert torch.equal(w0[key], w1[key]), f"ranks disagree on {key}"
    assert_matches_one_process(tmp_path, w0, ids0, ids1, "test_ddp.ReplayGan")


def assert_matches_one_process(tmp_path, weights, ids0, ids1, target, nan_ids=()):
    """One process, each step on the union of the two ranks' batches, ends with the
    ranks' weights."""
    index = {f"utt{i:03d}": i for i in range(16)}
    replay = [[index[u] for u in a + b] for a, b in zip(ids0, ids1, strict=True)]
    cfg = ddp_config(tmp_path / "single", replay=replay, _target_=target)
    cfg["model"]["train_ds"]["nan_ids"] = list(nan_ids)
    train(cfg, trust_targets=True)
    single = LAST[0].state_dict()
    for key in weights:
        torch.testing.assert_close(weights[key], single[key], rtol=1e-5, atol=1e-6)
