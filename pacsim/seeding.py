"""One integer seed per run, split by purpose into independent NumPy streams.

``streams(seed)`` gives one :class:`numpy.random.Generator` per purpose, each from
``SeedSequence(seed, spawn_key=(i,))`` with a fixed index ``i``. Because every purpose has its
own stream, changing the width ``m``, the number of samples ``N`` or the learner keeps the
same target (``concept``) and the same test set (``eval``). New purposes are only ever appended,
so existing streams never shift.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

#: Stream names in spawn-key order. Append only; never reorder.
PURPOSES = ("concept", "data", "init", "sgd", "eval", "val")


class Streams(NamedTuple):
    """Independent generators for one run, one per purpose."""

    concept: np.random.Generator  #: the target (weights, links, signs)
    data: np.random.Generator  #: training samples
    init: np.random.Generator  #: network initialisation
    sgd: np.random.Generator  #: sample order (per-epoch permutations)
    eval: np.random.Generator  #: the test set
    val: np.random.Generator  #: the validation set (learning-rate selection)


def streams(seed: int) -> Streams:
    """Split ``seed`` into the named, independent streams of :data:`PURPOSES`."""
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    return Streams(
        *(np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(i,))) for i in range(len(PURPOSES)))
    )
