"""Learners: SGD-trained networks and closed-form baselines, one module per family.

Every learner module defines ``ACCEPTS`` (the concept kinds it can learn), ``SGD`` (trained by
SGD, or fitted in closed form), ``Config`` (its ``[base.model]`` settings, with
``kind: Literal[name]``), ``make(cfg, concept, rng) -> Learner`` (see
:mod:`pacsim.learners.base`) and ``warmup(dtypes)`` (compile its kernels once, before workers
start). :data:`LEARNERS` is the registry the sweep config is built from.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from . import mlp2, mlp3, resnet, rnn
from .base import Learner, LearnerError

__all__ = ["LEARNERS", "Learner", "LearnerError", "make", "warmup"]

#: kind -> module with ``Config``, ``make`` and ``warmup``.
LEARNERS: dict[str, ModuleType] = {
    "rnn": rnn,
    "resnet": resnet,
    "mlp2": mlp2,
    "mlp3": mlp3,
}


def make(cfg, concept, rng: np.random.Generator) -> Learner:
    """Build the learner of ``cfg`` (any learner's ``Config``) for ``concept``."""
    check(cfg, concept.kind)
    return LEARNERS[cfg.kind].make(cfg, concept, rng)


def check(cfg, concept_kind: str) -> None:
    """Raise :class:`LearnerError` if learner ``cfg`` cannot learn a ``concept_kind`` concept."""
    accepts = getattr(LEARNERS[cfg.kind], "ACCEPTS", ("sequence", "vector"))
    if concept_kind not in accepts:
        raise LearnerError(
            f"model.kind = {cfg.kind!r} cannot learn a {concept_kind} concept; "
            f"allowed: {', '.join(accepts)} concepts"
        )


def warmup(kinds_dtypes) -> None:
    """Compile the kernels of every (kind, dtype) pair once."""
    by_kind: dict[str, set] = {}
    for kind, dtype in kinds_dtypes:
        by_kind.setdefault(kind, set()).add(dtype)
    for kind, dtypes in by_kind.items():
        LEARNERS[kind].warmup(sorted(dtypes))
