"""Learners: SGD-trained networks and closed-form baselines, one module per family.

Every learner module defines ``ACCEPTS`` (the concept kinds it can learn), ``SGD`` (trained by
SGD, or fitted in closed form), ``Config`` (its ``[base.model]`` settings, with
``kind: Literal[name]``), ``make(cfg, concept, rng) -> Learner`` (see
:mod:`pacsim.learners.base`) and ``warmup(dtypes)`` (compile its kernels once, before workers
start); a module whose concept kinds depend on its settings also defines ``accepts(cfg)``.
Optional hooks: ``check_concept(cfg, concept_cfg)`` (what else about the concept the learner
must fit, checked when the config is loaded; :func:`check_concept`) and
``max_n(cfg, concept_cfg)`` (the most training samples the learner can fit when that depends on
the concept; :func:`max_n`). :data:`LEARNERS` is the registry the sweep config is built from.

SGD learners: ``rnn``, ``resnet``, ``mlp2``, ``mlp3``. Closed-form (kernel) learners, fitted on
the training samples with hyper-parameters chosen on a split of them
(:mod:`pacsim.learners._kernel`): ``ntk``, ``nngp``, ``rntk``, ``entk``, ``random_features``,
``poly``, ``gaussian``, ``linear``.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from .. import concepts
from . import (
    entk,
    gaussian,
    linear,
    mlp2,
    mlp3,
    nngp,
    ntk,
    poly,
    random_features,
    resnet,
    rnn,
    rntk,
)
from .base import Learner, LearnerError

__all__ = ["LEARNERS", "Learner", "LearnerError", "check", "check_concept", "make", "max_n",
           "warmup"]

#: kind -> module with ``Config``, ``make`` and ``warmup``.
LEARNERS: dict[str, ModuleType] = {
    "rnn": rnn,
    "resnet": resnet,
    "mlp2": mlp2,
    "mlp3": mlp3,
    "ntk": ntk,
    "nngp": nngp,
    "rntk": rntk,
    "entk": entk,
    "random_features": random_features,
    "poly": poly,
    "gaussian": gaussian,
    "linear": linear,
}


def make(cfg, concept, rng: np.random.Generator) -> Learner:
    """Build the learner of ``cfg`` (any learner's ``Config``) for ``concept``."""
    check(cfg, concept.kind)
    return LEARNERS[cfg.kind].make(cfg, concept, rng)


def check(cfg, concept_kind: str) -> None:
    """Raise :class:`LearnerError` if learner ``cfg`` cannot learn a ``concept_kind`` concept."""
    module = LEARNERS[cfg.kind]
    if hasattr(module, "accepts"):
        accepts = module.accepts(cfg)
    else:
        accepts = getattr(module, "ACCEPTS", ("sequence", "vector"))
    if concept_kind not in accepts:
        narrowed = " with these settings" if hasattr(module, "accepts") else ""
        raise LearnerError(
            f"model.kind = {cfg.kind!r}{narrowed} cannot learn a {concept_kind} concept; "
            f"allowed: {', '.join(accepts)} concepts"
        )


def check_concept(cfg, concept_cfg) -> None:
    """Raise :class:`LearnerError` if learner ``cfg`` cannot learn the concept of
    ``concept_cfg`` (a concept config): its kind (:func:`check`) and, for learners with the
    hook, what else must fit (e.g. the RNN mode's scored positions)."""
    check(cfg, concepts.FAMILIES[concept_cfg.family].KIND)
    hook = getattr(LEARNERS[cfg.kind], "check_concept", None)
    if hook is not None:
        hook(cfg, concept_cfg)


def max_n(cfg, concept_cfg) -> int | None:
    """The most training samples learner ``cfg`` can fit on the concept of ``concept_cfg``
    (``None``: no limit): the module's ``max_n`` hook if it has one, else ``cfg.max_n`` (the
    closed-form learners' key)."""
    hook = getattr(LEARNERS[cfg.kind], "max_n", None)
    if hook is not None:
        return hook(cfg, concept_cfg)
    return getattr(cfg, "max_n", None)


def warmup(kinds_dtypes) -> None:
    """Compile the kernels of every (kind, dtype) pair once."""
    by_kind: dict[str, set] = {}
    for kind, dtype in kinds_dtypes:
        by_kind.setdefault(kind, set()).add(dtype)
    for kind, dtypes in by_kind.items():
        LEARNERS[kind].warmup(sorted(dtypes))
