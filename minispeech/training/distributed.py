"""Data-parallel helpers: the process group from torchrun, DDP wrapping, reductions.

DistributedDataParallel (Li et al. 2020, "PyTorch Distributed: Experiences on
Accelerating Data Parallel Training", arXiv:2006.15704): every rank holds a full copy of
the model, runs its own batches, and the backward pass all-reduces (averages) the
gradients, so all ranks take the same optimizer step. `torchrun --nproc_per_node=N`
(multi-node: `--nnodes`, `--rdzv_endpoint`) sets RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR and MASTER_PORT; a plain `python` run has none of them and is a world of
one, with the same code path.

The training step goes through `StepModule.forward` so that DDP sees the call (its
forward prepares the gradient reduction), as Lightning's wrapper does. A model with
`manual_optimization = True` is not wrapped: DDP's hooks expect one backward per
forward, and such a model runs one per optimizer, so its gradients are averaged by
`average_gradients` before each optimizer step instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistEnv:
    rank: int  # this process, 0..world_size-1
    world_size: int  # number of processes (1 without torchrun)
    local_rank: int  # index of this process on its node: picks the GPU
    device: torch.device  # where the model and batches live
    owns_group: bool = False  # True when setup() created the process group

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def choose_device(accelerator: str, local_rank: int = 0) -> torch.device:
    """The device for `trainer.accelerator`: auto (the GPU if there is one, else the
    CPU), cpu, or gpu (also spelled cuda)."""
    accelerator = str(accelerator).lower()
    if accelerator == "auto":
        accelerator = "cuda" if torch.cuda.is_available() else "cpu"
    if accelerator in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(
                "trainer.accelerator asks for a GPU but CUDA is not available"
            )
        return torch.device("cuda", local_rank)
    if accelerator == "cpu":
        return torch.device("cpu")
    raise ValueError(f"trainer.accelerator {accelerator!r}: use auto, cpu or gpu")


def setup(accelerator: str = "auto") -> DistEnv:
    """Read torchrun's environment; join the process group (gloo CPU, nccl GPU)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = choose_device(accelerator, local_rank)
    owns_group = False
    if world_size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, rank=rank, world_size=world_size)
        owns_group = True
    return DistEnv(rank, world_size, local_rank, device, owns_group)


def teardown(env: DistEnv) -> None:
    if env.owns_group and dist.is_initialized():
        dist.destroy_process_group()


class StepModule(nn.Module):
    """`forward(batch, *args)` = `model.training_step(batch, *args)`, so DDP wraps the
    whole step (`args`: the optimizers of a manual-optimization model)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: dict, *args) -> dict:
        return self.model.training_step(batch, *args)


def wrap(model: nn.Module, env: DistEnv) -> nn.Module:
    """The module the loop calls: DDP around the step when there are several ranks
    (not for manual optimization: see the module doc)."""
    step_module = StepModule(model)
    if env.world_size == 1 or getattr(model, "manual_optimization", False):
        return step_module
    device_ids = [env.device.index] if env.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(step_module, device_ids=device_ids)


def barrier(env: DistEnv) -> None:
    if env.world_size > 1:
        dist.barrier()


def all_true(flag: bool, env: DistEnv) -> bool:
    """True only if `flag` is True on every rank (so all ranks skip a step together)."""
    if env.world_size == 1:
        return bool(flag)
    value = torch.tensor([1.0 if flag else 0.0], device=env.device)  # nccl: GPU tensors
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item() == 1.0)


def average_gradients(params: list, env: DistEnv) -> None:
    """Replace each gradient by its mean over ranks (what DDP's backward does).
    Every rank must hold gradients for the same parameters (one all_reduce each)."""
    if env.world_size == 1:
        return
    for param in params:
        if param.grad is not None:
            dist.all_reduce(param.grad)
            param.grad /= env.world_size


def reduce_stats(stats: dict, env: DistEnv) -> dict:
    """Validation stats over ranks: numbers summed, lists concatenated in rank order
    (every rank must hold the same keys)."""
    lists = {k: v for k, v in stats.items() if isinstance(v, list)}
    numbers = sum_stats({k: v for k, v in stats.items() if k not in lists}, env)
    if lists and env.world_size > 1:
        by_rank = gather(lists, env)  # [{key: list of rank 0}, {... rank 1}, ...]
        lists = {k: [x for rank in by_rank for x in rank[k]] for k in lists}
    return {**numbers, **lists}


def sum_stats(stats: dict, env: DistEnv) -> dict:
    """Add a dict of numbers over ranks (every rank must hold the same keys)."""
    if env.world_size == 1 or not stats:
        return stats
    keys = sorted(stats)
    values = torch.tensor([float(stats[k]) for k in keys], dtype=torch.float64)
    values = values.to(env.device)
    dist.all_reduce(values)
    return dict(zip(keys, values.tolist(), strict=True))


def gather(obj, env: DistEnv) -> list:
    """[obj of rank 0, obj of rank 1, ...] on every rank (small objects only)."""
    if env.world_size == 1:
        return [obj]
    out = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out
