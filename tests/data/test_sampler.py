"""BucketingBatchSampler: coverage, limits, ranks, resume, shuffling."""

import random

import pytest
import torch

from minispeech.data.sampler import BucketingBatchSampler


def random_durations(n: int = 203, seed: int = 0) -> list[float]:
    rng = random.Random(seed)
    return [round(rng.uniform(0.5, 8.0), 3) for _ in range(n)]


def epoch_batches(sampler: BucketingBatchSampler, epoch: int) -> list[list[int]]:
    sampler.set_epoch(epoch)
    return list(sampler)


LIMITS = [{"batch_size": 7}, {"max_seconds": 30}, {"batch_size": 5, "max_seconds": 20}]


@pytest.mark.parametrize("limits", LIMITS)
def test_every_utterance_exactly_once_and_limits_hold(limits):
    durations = random_durations()
    sampler = BucketingBatchSampler(durations, **limits, seed=3)
    for epoch in range(3):
        batches = epoch_batches(sampler, epoch)
        assert len(batches) == len(sampler)
        assert sorted(i for b in batches for i in b) == list(range(len(durations)))
        for batch in batches:
            assert len(batch) <= limits.get("batch_size", len(durations))
            cost = max(durations[i] for i in batch) * len(batch)
            assert cost <= limits.get("max_seconds", float("inf"))


def test_batches_are_greedy_and_sorted_without_shuffle():
    durations = random_durations()
    sampler = BucketingBatchSampler(
        durations, max_seconds=25.0, shuffle=False, num_buckets=1
    )
    batches = list(sampler)
    flat = [i for b in batches for i in b]
    assert [durations[i] for i in flat] == sorted(durations)
    for batch, following in zip(batches, batches[1:]):
        # Greedy: one more utterance would have broken the limit.
        grown = batch + following[:1]
        assert max(durations[i] for i in grown) * len(grown) > 25.0


def test_bucketing_reduces_padding():
    durations = random_durations(500)
    sampler = BucketingBatchSampler(durations, batch_size=10, seed=1)

    def padding(batches):
        cost = sum(max(durations[i] for i in b) * len(b) for b in batches)
        return cost - sum(durations)

    shuffled = torch.randperm(500).tolist()
    unbucketed = [shuffled[k : k + 10] for k in range(0, 500, 10)]
    assert padding(list(sampler)) < 0.3 * padding(unbucketed)


def test_order_depends_on_seed_and_epoch_only():
    durations = random_durations()
    a = BucketingBatchSampler(durations, batch_size=8, seed=5)
    b = BucketingBatchSampler(durations, batch_size=8, seed=5)
    c = BucketingBatchSampler(durations, batch_size=8, seed=6)
    assert epoch_batches(a, 0) == epoch_batches(b, 0)
    assert epoch_batches(a, 1) == epoch_batches(b, 1)
    assert epoch_batches(a, 0) != epoch_batches(a, 1)
    assert epoch_batches(a, 0) != epoch_batches(c, 0)
    assert list(a) == list(a)  # iterating twice in one epoch repeats the order


@pytest.mark.parametrize("n_ranks", [2, 3, 4])
def test_ranks_disjoint_with_equal_counts_drop_last(n_ranks):
    durations = random_durations()
    kwargs = dict(max_seconds=20.0, seed=2, drop_last=True, num_replicas=n_ranks)
    ranks = [BucketingBatchSampler(durations, **kwargs, rank=r) for r in range(n_ranks)]
    for epoch in range(2):
        per_rank = [epoch_batches(s, epoch) for s in ranks]
        assert len({len(b) for b in per_rank}) == 1
        assert len(per_rank[0]) == len(ranks[0])
        seen = [i for batches in per_rank for b in batches for i in b]
        assert len(seen) == len(set(seen))  # disjoint
        single = BucketingBatchSampler(durations, max_seconds=20.0, seed=2)
        n_global = len(epoch_batches(single, epoch))
        assert len(per_rank[0]) == n_global // n_ranks  # only the remainder dropped


@pytest.mark.parametrize("n_ranks", [2, 3, 4])
def test_ranks_padded_cover_everything_with_equal_counts(n_ranks):
    durations = random_durations()
    single = BucketingBatchSampler(durations, batch_size=9, seed=4)
    global_batches = list(single)
    kwargs = dict(batch_size=9, seed=4, num_replicas=n_ranks)
    per_rank = [
        list(BucketingBatchSampler(durations, **kwargs, rank=r)) for r in range(n_ranks)
    ]
    assert len({len(b) for b in per_rank}) == 1
    dealt = [b for k in range(len(per_rank[0])) for b in (r[k] for r in per_rank)]
    n_pad = -len(global_batches) % n_ranks
    assert dealt == global_batches + global_batches[:n_pad]  # pad = repeats
    assert {i for b in dealt for i in b} == set(range(len(durations)))


def test_exact_resume_mid_epoch():
    durations = random_durations()
    kwargs = dict(max_seconds=20.0, seed=9, num_replicas=2, rank=1)
    first = BucketingBatchSampler(durations, **kwargs)
    first.set_epoch(3)
    uninterrupted = list(first)
    it = iter(first)
    taken = [next(it) for _ in range(5)]
    state = first.state_dict()
    assert state["epoch"] == 3 and state["batches_done"] == 5
    resumed = BucketingBatchSampler(durations, **kwargs)
    resumed.load_state_dict(state)
    resumed.set_epoch(3)  # what a training loop does at the top of the epoch
    assert taken + list(resumed) == uninterrupted
    assert list(resumed) == uninterrupted  # the epoch's next pass is whole again
    resumed.set_epoch(4)
    assert list(resumed) == epoch_batches(first, 4)


def test_resume_from_batches_done_and_reject_other_setup():
    durations = random_durations()
    sampler = BucketingBatchSampler(durations, batch_size=4, seed=1)
    full = list(sampler)
    state = sampler.state_dict(batches_done=10)  # a loader prefetched past step 10
    other = BucketingBatchSampler(durations, batch_size=4, seed=1)
    other.load_state_dict(state)
    assert list(other) == full[10:]
    with pytest.raises(ValueError, match="different setup"):
        BucketingBatchSampler(durations, batch_size=4, seed=2).load_state_dict(state)


def test_distributed_defaults(monkeypatch):
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 4)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 3)
    sampler = BucketingBatchSampler([1.0] * 10, batch_size=1)
    assert (sampler.num_replicas, sampler.rank) == (4, 3)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: False)
    sampler = BucketingBatchSampler([1.0] * 10, batch_size=1)
    assert (sampler.num_replicas, sampler.rank) == (1, 0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="utterance 1 lasts 9.00 s"):
        BucketingBatchSampler([1.0, 9.0], max_seconds=5.0)
    with pytest.raises(ValueError, match="batch_size, max_seconds or both"):
        BucketingBatchSampler([1.0])
    with pytest.raises(ValueError, match=r"positive and finite: \[\(1, 0.0\)"):
        BucketingBatchSampler([1.0, 0.0], batch_size=2)
    with pytest.raises(ValueError, match="empty"):
        BucketingBatchSampler([], batch_size=2)
    with pytest.raises(ValueError, match="rank < num_replicas"):
        BucketingBatchSampler([1.0], batch_size=1, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="fewer than 4 ranks"):
        kwargs = dict(batch_size=1, num_replicas=4, rank=0, drop_last=True)
        len(BucketingBatchSampler([1.0] * 3, **kwargs))
