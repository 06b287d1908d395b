"""Duration-bucketing batch sampler: similar lengths together, resumable, DDP-aware.

Padding a batch to its longest utterance wastes compute on the shorter ones, so we
group utterances of similar duration (the "bucketing" of Khomenko et al. 2016,
"Accelerating recurrent neural network training using sequence bucketing and
multi-GPU data parallelization", arXiv:1708.05604; here with fixed quantile buckets).

Per epoch, from a generator seeded with (seed, epoch) so every rank agrees:
  1) sort utterances by duration and cut them into ``num_buckets`` buckets of equal
     count (contiguous in duration);
  2) shuffle inside each bucket, then fill batches bucket by bucket: a batch closes
     when it holds ``batch_size`` utterances or when adding one more would make its
     padded cost ``max duration x count`` exceed ``max_seconds``;
  3) shuffle the order of the batches;
  4) ranks take batches ``rank, rank + R, rank + 2R, ...``. To give every rank the
     same number of batches, ``drop_last=True`` drops the last ``n_batches % R``
     batches; ``drop_last=False`` pads by repeating batches from the start of the
     list (as torch's DistributedSampler repeats indices), so those few utterances
     are seen twice in that epoch. Ranks are disjoint apart from that padding.
With ``shuffle=False`` steps 2 and 3 are skipped: batches come in increasing duration.

Resume: ``state_dict()`` stores the epoch and how many batches this rank has taken;
``load_state_dict`` makes the next iteration skip exactly those, so the remaining
batches come in the same order as without the interruption. A DataLoader with workers
pulls batches ahead of the training step, so the loop should pass the number of
batches it actually trained on: ``state_dict(batches_done=k)``.
"""

import math
from collections.abc import Iterator, Sequence

import torch

__all__ = ["BucketingBatchSampler"]


def _distributed_defaults(num_replicas: int | None, rank: int | None) -> tuple:
    """World size and rank from torch.distributed when it is initialized, else 1, 0."""
    ready = torch.distributed.is_available() and torch.distributed.is_initialized()
    if num_replicas is None:
        num_replicas = torch.distributed.get_world_size() if ready else 1
    if rank is None:
        rank = torch.distributed.get_rank() if ready else 0
    if num_replicas < 1 or not 0 <= rank < num_replicas:
        raise ValueError(f"need 0 <= rank < num_replicas, got {rank=} {num_replicas=}")
    return num_replicas, rank


def _permuted(items: list, generator: torch.Generator) -> list:
    return [items[i] for i in torch.randperm(len(items), generator=generator)]


class BucketingBatchSampler:
    """Yields lists of dataset indices; see the module docstring for the recipe."""

    def __init__(
        self,
        durations: Sequence[float],
        batch_size: int | None = None,
        max_seconds: float | None = None,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        drop_last: bool = False,
        num_buckets: int = 10,
    ):
        self.durations = [float(d) for d in durations]
        self._check_arguments(batch_size, max_seconds, num_buckets)
        self.batch_size, self.max_seconds = batch_size, max_seconds
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.num_buckets = min(num_buckets, len(self.durations))
        self.num_replicas, self.rank = _distributed_defaults(num_replicas, rank)
        self.epoch = 0
        self._skip = 0  # batches of the current epoch already taken (resume)
        self._taken = 0  # batches this rank has yielded in the current epoch
        self._cache: tuple[int, list[list[int]]] | None = None  # (epoch, batches)

    def _check_arguments(self, batch_size, max_seconds, num_buckets) -> None:
        if not self.durations:
            raise ValueError("no durations: the dataset is empty")
        bad = [(i, d) for i, d in enumerate(self.durations) if not 0 < d < math.inf]
        if bad:
            raise ValueError(f"durations must be positive and finite: {bad[:5]}")
        if batch_size is None and max_seconds is None:
            raise ValueError("give batch_size, max_seconds or both")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if num_buckets < 1:
            raise ValueError(f"num_buckets must be >= 1, got {num_buckets}")
        if max_seconds is not None:
            longest = max(range(len(self.durations)), key=self.durations.__getitem__)
            if self.durations[longest] > max_seconds:
                raise ValueError(
                    f"utterance {longest} lasts {self.durations[longest]:.2f} s, more "
                    f"than max_seconds={max_seconds}; filter it out with max_duration"
                )

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch's shuffle; a new epoch forgets any resume position."""
        if epoch != self.epoch:
            self._skip = self._taken = 0
        self.epoch = epoch

    def _global_batches(self) -> list[list[int]]:
        """All batches of this epoch, identical on every rank."""
        if self._cache is not None and self._cache[0] == self.epoch:
            return self._cache[1]
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = sorted(range(len(self.durations)), key=lambda i: (self.durations[i], i))
        batches = []
        for k in range(self.num_buckets):  # 1) equal-count buckets
            lo = k * len(order) // self.num_buckets
            bucket = order[lo : (k + 1) * len(order) // self.num_buckets]
            if self.shuffle:  # 2) shuffle inside the bucket, then fill batches
                bucket = _permuted(bucket, generator)
            batches += self._fill_batches(bucket)
        if self.shuffle:  # 3) shuffle the batch order
            batches = _permuted(batches, generator)
        self._cache = (self.epoch, batches)
        return batches

    def _fill_batches(self, indices: list[int]) -> list[list[int]]:
        batches, batch, longest = [], [], 0.0
        for i in indices:
            longest_if_added = max(longest, self.durations[i])
            full = self.batch_size is not None and len(batch) == self.batch_size
            too_long = (
                self.max_seconds is not None
                and longest_if_added * (len(batch) + 1) > self.max_seconds
            )
            if batch and (full or too_long):
                batches.append(batch)
                batch, longest_if_added = [], self.durations[i]
            batch.append(i)
            longest = longest_if_added
        return batches + ([batch] if batch else [])

    def _rank_batches(self) -> list[list[int]]:
        """4) equal counts per rank (drop or pad by repeating); this rank's share."""
        batches, n_ranks = self._global_batches(), self.num_replicas
        if self.drop_last:
            batches = batches[: len(batches) - len(batches) % n_ranks]
        else:
            n_pad = -len(batches) % n_ranks
            batches = batches + [batches[k % len(batches)] for k in range(n_pad)]
        if not batches:
            raise ValueError(f"no batches: fewer than {n_ranks} ranks with drop_last")
        return batches[self.rank :: n_ranks]

    def __len__(self) -> int:
        """Batches this rank yields in a full pass of the current epoch."""
        return len(self._rank_batches())

    def __iter__(self) -> Iterator[list[int]]:
        mine = self._rank_batches()
        self._taken = self._skip
        for batch in mine[self._skip :]:
            self._taken += 1
            yield list(batch)
        self._skip = 0  # the next pass of this epoch (if any) starts from the top

    def state_dict(self, batches_done: int | None = None) -> dict:
        """Position to resume from: the epoch and how many batches were taken."""
        taken = self._taken if batches_done is None else batches_done
        return {
            "epoch": self.epoch,
            "batches_done": int(taken),
            "seed": self.seed,
            "num_replicas": self.num_replicas,
            "num_utterances": len(self.durations),
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state``: the next iteration skips the batches taken."""
        mine = (self.seed, self.num_replicas, len(self.durations))
        theirs = (state["seed"], state["num_replicas"], state["num_utterances"])
        if mine != theirs:
            raise ValueError(
                "sampler state from a different setup: (seed, num_replicas, "
                f"num_utterances) was {theirs}, is {mine}"
            )
        self.epoch = int(state["epoch"])
        self._skip = self._taken = int(state["batches_done"])
