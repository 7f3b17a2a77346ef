"""Learners: SGD-trained networks and closed-form baselines, one module per family.

Every learner module declares its contract once, as ``KIND`` (or,
for the modules of two near-identical kinds, ``mlp`` and ``relu_kernels``, ``KINDS``), a
:class:`~pacsim.learners.base.LearnerKind`: its ``Config`` (``[base.model]`` settings, with
``kind: Literal[name]``), ``make(cfg, concept, rng) -> Learner`` (see
:class:`pacsim.learners.base.Learner`), ``warmup(dtypes)``, ``SGD`` (trained by SGD, or
fitted in closed form), ``ACCEPTS`` (the concept kinds it can learn) and the optional
``narrow``, ``concept_check`` and ``sample_cap``. :data:`LEARNERS` is the registry the sweep
config is built from; adding a learner is adding a module and one name there.

SGD learners: ``rnn``, ``resnet``, ``mlp2``, ``mlp3``. Closed-form (kernel) learners, fitted on
the training samples with hyper-parameters chosen on a split of them
(:mod:`pacsim.learners._kernel`): ``ntk``, ``nngp``, ``rntk``, ``entk``, ``random_features``,
``poly``, ``gaussian``, ``linear``.
"""

from __future__ import annotations

import numpy as np

from .. import concepts
from . import (
    entk,
    gaussian,
    linear,
    mlp,
    poly,
    random_features,
    relu_kernels,
    resnet,
    rnn,
    rntk,
)
from .base import Learner, LearnerError, LearnerKind

__all__ = ["LEARNERS", "Learner", "LearnerError", "LearnerKind", "check", "check_concept", "make", "max_n",
           "warmup"]

#: kind -> its contract (:class:`~pacsim.learners.base.LearnerKind`), declared by its module.
LEARNERS: dict[str, LearnerKind] = {k.name: k for k in (
    rnn.KIND, resnet.KIND, *mlp.KINDS, *relu_kernels.KINDS, rntk.KIND, entk.KIND,
    random_features.KIND, poly.KIND, gaussian.KIND, linear.KIND)}


def make(cfg, concept, rng: np.random.Generator) -> Learner:
    """Build the learner of ``cfg`` (any learner's ``Config``) for ``concept``."""
    check(cfg, concept.kind)
    return LEARNERS[cfg.kind].make(cfg, concept, rng)


def check(cfg, concept_kind: str) -> None:
    """Raise :class:`LearnerError` if learner ``cfg`` cannot learn a ``concept_kind`` concept."""
    kind = LEARNERS[cfg.kind]
    accepts = kind.accepts(cfg)
    if concept_kind not in accepts:
        narrowed = " with these settings" if kind.narrow is not None else ""
        raise LearnerError(
            f"model.kind = {cfg.kind!r}{narrowed} cannot learn a {concept_kind} concept; "
            f"allowed: {', '.join(accepts)} concepts"
        )


def check_concept(cfg, concept_cfg) -> None:
    """Raise :class:`LearnerError` if learner ``cfg`` cannot learn the concept of
    ``concept_cfg`` (a concept config): its kind (:func:`check`) and what else its contract
    says must fit (e.g. the RNN mode's scored positions)."""
    check(cfg, concepts.FAMILIES[concept_cfg.family].KIND)
    LEARNERS[cfg.kind].check_concept(cfg, concept_cfg)


def max_n(cfg, concept_cfg) -> int | None:
    """The most training samples learner ``cfg`` can fit on the concept of ``concept_cfg``
    (``None``: no limit; :meth:`LearnerKind.max_n`)."""
    return LEARNERS[cfg.kind].max_n(cfg, concept_cfg)


def warmup(kinds_dtypes) -> None:
    """Compile the kernels of every (kind, dtype) pair once."""
    by_kind: dict[str, set] = {}
    for kind, dtype in kinds_dtypes:
        by_kind.setdefault(kind, set()).add(dtype)
    for kind, dtypes in by_kind.items():
        LEARNERS[kind].warmup(sorted(dtypes))
