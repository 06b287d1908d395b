"""Optimizers as a training step drives them: scaled backward, accumulation, clipping.

Every optimizer from `configure_optimizers` (with its scheduler) becomes a
`LoopOptimizer` with two calls:

  backward(loss)  if the loss is finite on every rank, backpropagate
                  `scaler.scale(loss / accumulate_grad_batches)` into this optimizer's
                  parameters (loss scaling: Micikevicius et al. 2018, "Mixed Precision
                  Training", arXiv:1710.03740, Sec. 3.2); else mark the window bad.
  step()          on the last micro-batch of the accumulation window: unscale, clip the
                  global gradient norm to `gradient_clip_val` (Pascanu et al. 2013,
                  arXiv:1211.5063, Sec. 3.2), step the optimizer, then its scheduler.
                  The step is skipped (the gradient dropped) when the window saw a
                  non-finite loss or the gradient is not finite. On other micro-batches
                  `step()` does nothing.

The loop makes these calls itself for a model with one optimizer. A model with
`manual_optimization = True` gets the list in `training_step(batch, optimizers)` and
makes them, e.g. a GAN vocoder (HiFi-GAN, Kong et al. 2020, arXiv:2010.05646, Sec. 2.4):
`opt_d.backward(loss_d); opt_d.step()`, then the same for the generator. After the
window `Optimizers.end_window` updates the GradScaler once for all optimizers (PyTorch's
AMP recipe for several optimizers: one `update()` per iteration), so every loss of the
window was scaled by the same factor.

Under DDP a manual model is not wrapped in DistributedDataParallel (its hooks expect one
backward per forward); `step()` averages the gradients over ranks itself.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from minispeech.core.config import ConfigError
from minispeech.training import distributed


class StepResult(NamedTuple):
    outcome: str  # idle, stepped, nonfinite_loss, nonfinite_grad or overflow (fp16)
    lr: float = math.nan  # the lr the step used (before the schedule moved)
    grad_norm: float = math.nan  # global gradient norm before clipping


IDLE = StepResult("idle")


def as_lists(configured, manual: bool) -> tuple[list, list]:
    """What `configure_optimizers` returned (an optimizer, (optimizer, scheduler) or
    ([opt, ...], [sched, ...])) as two lists, one scheduler (or None) per optimizer."""
    if isinstance(configured, torch.optim.Optimizer):
        configured = (configured, None)
    optimizers, schedulers = configured
    if isinstance(optimizers, torch.optim.Optimizer):
        optimizers, schedulers = [optimizers], [schedulers]
    if schedulers is None:
        schedulers = [None] * len(optimizers)
    optimizers, schedulers = list(optimizers), list(schedulers)
    if len(schedulers) != len(optimizers):
        raise ConfigError(
            f"configure_optimizers: {len(optimizers)} optimizers but "
            f"{len(schedulers)} schedulers (use None for no schedule)"
        )
    if len(optimizers) > 1 and not manual:
        raise ConfigError(
            f"configure_optimizers returned {len(optimizers)} optimizers: the model "
            "must set manual_optimization = True and step them in training_step"
        )
    return optimizers, schedulers


class Optimizers:
    """The run's LoopOptimizers, the GradScaler they share and the window's flags."""

    def __init__(self, optimizers, schedulers, scaler, opts, env, manual: bool):
        self.scaler, self.opts, self.env, self.manual = scaler, opts, env, manual
        self.optimizers, self.schedulers = list(optimizers), list(schedulers)
        self.items = [
            LoopOptimizer(self, optimizer, scheduler)
            for optimizer, scheduler in zip(optimizers, schedulers, strict=True)
        ]
        self.window_end = False  # this micro-batch closes the accumulation window
        self.window_finite = True  # every loss of the window so far was finite
        self.finite = self.own_finite = True  # this micro-batch: all ranks / this rank

    def start_micro_batch(self, window_end: bool) -> None:
        self.window_end = window_end
        self.finite = self.own_finite = True

    def end_window(self) -> list[StepResult]:
        """Update the GradScaler once; what each optimizer did in this window."""
        results = [item.result for item in self.items]
        # update() needs an unscale_ first; a window skipped for its loss had none
        if any(r.outcome not in ("idle", "nonfinite_loss") for r in results):
            self.scaler.update()
        for item in self.items:
            item.result = IDLE
        self.window_finite = True
        return results


class LoopOptimizer:
    """One optimizer and its scheduler: `backward(loss)`, then `step()` (module doc)."""

    def __init__(self, group: Optimizers, optimizer, scheduler):
        self.group, self.optimizer, self.scheduler = group, optimizer, scheduler
        self.params = [
            p for g in optimizer.param_groups for p in g["params"] if p.requires_grad
        ]
        self.result = IDLE

    def backward(self, loss: torch.Tensor) -> bool:
        """Backpropagate scale * loss / accumulate_grad_batches into this optimizer's
        parameters and return True; return False (and skip) if the loss is not
        finite on some rank."""
        group = self.group
        own_finite = bool(torch.isfinite(loss))
        finite = distributed.all_true(own_finite, group.env)  # all ranks skip together
        group.own_finite &= own_finite
        group.finite &= finite
        if not finite:
            group.window_finite = False
            return False
        # a manual model's losses reach only their own optimizer's parameters (a GAN's
        # generator loss must not add to the discriminator's gradient)
        inputs = self.params if group.manual else None
        scaled = group.scaler.scale(loss / group.opts.accumulate_grad_batches)
        # a manual model calls this under the loop's autocast, which torch.amp advises
        # against for backward passes
        with torch.autocast(group.env.device.type, enabled=False):
            scaled.backward(inputs=inputs)
        return True

    def step(self) -> None:
        """At the window's end: unscale, clip, step, schedule (or skip)."""
        group = self.group
        if not group.window_end:
            return
        if self.result.outcome != "idle":
            raise RuntimeError("step() was called twice in one accumulation window")
        if not group.window_finite:
            return self._skip("nonfinite_loss", math.nan)
        if group.manual:  # no DDP wrapper: average the gradients here
            distributed.average_gradients(self.params, group.env)
        group.scaler.unscale_(self.optimizer)  # no-op unless 16-mixed: clip true grads
        clip = group.opts.gradient_clip_val
        max_norm = clip if clip > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, max_norm)
        if not torch.isfinite(grad_norm):
            # with 16-mixed this is an overflow: the scaler lowers its scale and the
            # step is skipped without a report, as GradScaler.step would skip it
            overflow = group.scaler.is_enabled()
            return self._skip("overflow" if overflow else "nonfinite_grad", grad_norm)
        lr = self.optimizer.param_groups[0]["lr"]  # this step's lr, before the schedule
        group.scaler.step(self.optimizer)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scheduler is not None:
            self.scheduler.step()
        self.result = StepResult("stepped", lr, float(grad_norm))

    def _skip(self, outcome: str, grad_norm) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.result = StepResult(outcome, grad_norm=float(grad_norm))
