"""The loop's data loaders: one per training epoch (resumable), one for validation.

Batches come from the model's sampler (the bucketing sampler, one shard per DDP rank)
and `collate`; `to_device` moves a batch's tensors to the run's device.
"""

from __future__ import annotations

import torch

from minispeech.core.model import SpeechModel


def build_validation_loader(model: SpeechModel, env, seed: int):
    """Validation batches (each rank its shard, in a fixed order), or None. Its own
    generator: without one, each pass over a DataLoader draws its base seed from the
    global torch RNG, and a validation would change the training's random numbers."""
    val_cfg = model.cfg.get("validation_ds")
    if not val_cfg:
        return None
    val_set = model.build_dataset(val_cfg)
    val_cfg = {**val_cfg, "shuffle": False}
    sampler = model.build_sampler(val_cfg, val_set, env.world_size, env.rank, seed)
    return torch.utils.data.DataLoader(
        val_set,
        batch_sampler=sampler,
        collate_fn=model.collate,
        num_workers=val_cfg.get("num_workers", 0),
        generator=torch.Generator().manual_seed(seed),
    )


def epoch_loader(model, train_set, sampler, train_cfg: dict, epoch: int, seed: int):
    """A DataLoader over this epoch (after a resume, the sampler skips the batches
    already trained on). Its own generator keeps the global torch RNG untouched, so a
    resumed run draws the same random numbers as an unbroken one."""
    generator = torch.Generator().manual_seed(seed + epoch)
    return torch.utils.data.DataLoader(
        train_set,
        batch_sampler=sampler,
        collate_fn=model.collate,
        num_workers=train_cfg.get("num_workers", 0),
        generator=generator,
    )


def to_device(batch, device: torch.device):
    """Tensors (in dicts, lists, tuples) to `device`; everything else unchanged."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch
