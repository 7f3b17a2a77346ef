"""Shared fixtures: a fixed seed, a seeded generator, and the kernels compiled once per session."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np
import pytest

SEED = 189212


@pytest.fixture
def rng():
    return np.random.default_rng(SEED)


@pytest.fixture(scope="session", autouse=True)
def _warm_kernels():
    """Compile (or load from cache) every jitted kernel once, for both dtypes."""
    from pacsim.models import rnn

    rnn.warmup(("float64", "float32"))
