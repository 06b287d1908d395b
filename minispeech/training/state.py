"""The loop's counters: where the run is (step, epoch, batch) and what it has seen.

`LoopState` is saved in `last.ckpt` as a plain dict (`dataclasses.asdict`) and read back
with `LoopState.from_dict`, so a resumed run continues counting where it stopped. It
only counts: gathering over ranks, logging and aborting are the loop's job
(training/loop.py).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass


@dataclass
class LoopState:
    step: int = 0  # optimizer steps taken (windows that stepped)
    epoch: int = 0  # current epoch
    batch_in_epoch: int = 0  # batches of this epoch already consumed (on this rank)
    micro_batch: int = 0  # position inside the accumulation window
    elapsed: float = 0.0  # training seconds, summed over resumed runs
    window_loss: float = 0.0  # sum of the window's finite losses ...
    window_count: int = 0  # ... and their number
    consecutive_nonfinite: int = 0  # non-finite losses in a row (reset by a finite one)
    nonfinite_total: int = 0  # non-finite losses and gradients in the whole run
    last_loss: float = math.nan  # mean loss of the last step (progress bar, log)
    last_lr: float = math.nan  # lr of the last step (of the first optimizer)

    @classmethod
    def from_dict(cls, values: dict) -> "LoopState":
        """Counters from `last.ckpt`; keys of older versions (window_finite) dropped."""
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    def add_loss(self, loss: float) -> None:
        """A finite micro-batch loss: into the window's mean, and the streak ends."""
        self.window_loss += loss
        self.window_count += 1
        self.consecutive_nonfinite = 0

    def count_nonfinite(self) -> None:
        self.consecutive_nonfinite += 1
        self.nonfinite_total += 1

    def reset_window(self) -> None:
        self.window_loss, self.window_count = 0.0, 0

    def finish_step(self, lr: float) -> None:
        """One more optimizer step; its mean loss and lr become the last ones."""
        self.step += 1
        self.last_lr = lr
        self.last_loss = self.window_loss / max(1, self.window_count)
        self.reset_window()
