"""Timing shared by the benchmarks: the median wall time of functions taking turns.

A benchmark runs as a script, `python benchmarks/NAME.py`, so `from common import ...`
finds this file beside it.
"""

import statistics
import time
from typing import Callable


def median_ms(
    fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1
) -> dict[str, float]:
    """Median wall time in ms of each function, over `repeats` rounds.

    The functions take turns within each round, so load on a shared machine slows all
    of them alike. The first `warmup` rounds (allocations, FFT plans, optimizer state)
    are timed but dropped.
    """
    times = {name: [] for name in fns}
    for _ in range(warmup + repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: 1e3 * statistics.median(t[warmup:]) for name, t in times.items()}
