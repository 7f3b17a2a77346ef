"""Interleaved timing: the implementations take turns, in a new shuffled order every round.

A fixed rotation (each round starting one further along) keeps every implementation behind the
same predecessor, so one implementation always finds the caches, the allocator and the BLAS
buffers as one particular other left them. Measured on the m = 2000 three-layer net
(``ff_batch.py``): with the rotation pacsim's and the plain NumPy gradient, which run the same
BLAS calls, differed by 6-7% in every run; taking turns two by two they agreed to 0.1%. A
shuffled order (one seeded permutation per round) gives every implementation every
predecessor, and the median removes the rest.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np


def median_times(impls: dict[str, Callable[[], object]], repeats: int,
                 seed: int = 0) -> dict[str, float]:
    """Median wall time (s) of each ``impls[name]()`` over ``repeats`` rounds.

    Each implementation is called once untimed first (compile, allocate, load kernels). Every
    round then calls each once, in an order drawn from a generator seeded with ``seed``, so a
    change of load on a shared machine falls on all of them alike and the ratios stay fair.
    """
    for f in impls.values():
        f()
    names = list(impls)
    rng = np.random.default_rng(seed)
    times: dict[str, list[float]] = {k: [] for k in names}
    for _ in range(repeats):
        for i in rng.permutation(len(names)):
            k = names[i]
            t0 = time.perf_counter()
            impls[k]()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}
