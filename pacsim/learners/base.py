"""What every learner offers to :func:`pacsim.train.run`.

A learner is built once per run from its config, the run's concept and the run's ``init``
stream, and then either

* trained by vanilla SGD (``sgd = True``): :meth:`Learner.sgd_chunk` takes one step per sample
  and :meth:`Learner.step_size` converts the config's step size to the raw ``eta``; or
* fitted in closed form (``sgd = False``: kernels, random features): :meth:`Learner.fit` on the
  training samples only, choosing its own hyper-parameters on a split of them.

In both cases :meth:`Learner.predict` gives the scored outputs, shape (n, S, d), float64, which
the run compares with :func:`pacsim.concepts.scored` labels of the test set. The test labels
never reach a learner.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np


class Learner:
    """Base class; subclasses set ``name`` and ``sgd`` and implement the methods they use."""

    name: ClassVar[str]
    sgd: ClassVar[bool] = True

    def encode(self, X: np.ndarray) -> Any:
        """Concept inputs -> model inputs (done once per data set)."""
        return X

    def predict(self, inputs) -> np.ndarray:
        """Scored outputs, shape (n, S, d), float64."""
        raise NotImplementedError

    def step_size(self, lr: float, units: str) -> float:
        """The raw SGD step ``eta`` for step size ``lr`` given in ``units`` ("ntk" or "raw")."""
        raise NotImplementedError

    def sgd_chunk(self, inputs, Y: np.ndarray, eta: float, order) -> tuple[int, np.ndarray]:
        """One SGD step per entry of ``order`` (``None``: every sample in order), in place.

        Returns the number of steps taken (fewer if a loss was not finite: divergence) and the
        per-step losses.
        """
        raise NotImplementedError

    def trained(self) -> list[np.ndarray]:
        """The trained weight arrays (updated in place by the mini-batch optimiser)."""
        raise NotImplementedError

    def batch_grad(self, inputs, Y: np.ndarray) -> tuple[float, list[np.ndarray]]:
        """Mean loss over the batch and its gradients, one per :meth:`trained` array."""
        raise NotImplementedError

    def fit(self, inputs, Y: np.ndarray, rng: np.random.Generator) -> None:
        """Fit on training samples only (closed-form learners)."""
        raise NotImplementedError

    def laziness(self) -> dict[str, float]:
        """SGD learners: how far training has left the initialisation, recorded on every
        evaluated row as ``lazy.*`` columns (:mod:`pacsim.learners._lazy`): ``move_<M>`` per
        trained array, ``sign_flip``, ``ntk_align``, ``ntk_align_c``, ``trace``, ``trace0``.
        ``{}`` (no columns) for a learner that does not measure them; docs/analysis.md lists
        which do."""
        return {}

    def info(self) -> dict[str, float | int | str]:
        """Scalars recorded with the run (chosen hyper-parameters, NTK trace, ...)."""
        return {}


@dataclass(frozen=True)
class LearnerKind:
    """The contract of one learner kind, declared once by its module as ``KIND`` and read by
    the registry (:data:`pacsim.learners.LEARNERS`), the config loader, the sweep and the
    tables; nothing looks for hooks by name.

    Required: ``name`` (the ``model.kind`` value), ``Config`` (its ``[base.model]`` settings,
    a pydantic model with ``kind: Literal[name]``), ``make(cfg, concept, rng) -> Learner``,
    ``warmup(dtypes)`` (compile its kernels once, before the workers start), ``SGD`` (trained
    by SGD, else fitted in closed form) and ``ACCEPTS`` (the concept kinds it can learn).
    Optional: ``narrow(cfg)`` (the concept kinds with these settings, when they narrow
    ``ACCEPTS``), ``concept_check(cfg, concept_cfg)`` (what else about the concept must fit,
    raising :class:`LearnerError`; checked when a config is loaded) and
    ``sample_cap(cfg, concept_cfg)`` (the most training samples it can fit, when that depends
    on the concept; otherwise a closed-form learner's ``max_n`` setting).
    """

    name: str
    Config: type
    make: Callable[..., Learner]
    warmup: Callable[[Sequence[str]], None]
    SGD: bool
    ACCEPTS: tuple[str, ...]
    narrow: Callable[[Any], tuple[str, ...]] | None = None
    concept_check: Callable[[Any, Any], None] | None = None
    sample_cap: Callable[[Any, Any], int | None] | None = None

    def __post_init__(self):
        kind = self.Config.model_fields.get("kind")
        if kind is None or kind.default != self.name:
            raise TypeError(f"learner {self.name!r}: its Config must have kind = {self.name!r}")

    def accepts(self, cfg) -> tuple[str, ...]:
        """The concept kinds learner ``cfg`` (a ``Config`` of this kind) can learn."""
        return self.narrow(cfg) if self.narrow is not None else self.ACCEPTS

    def check_concept(self, cfg, concept_cfg) -> None:
        """Raise :class:`LearnerError` if ``cfg`` cannot learn the concept of ``concept_cfg``
        beyond its kind (e.g. an RNN mode's scored positions)."""
        if self.concept_check is not None:
            self.concept_check(cfg, concept_cfg)

    def max_n(self, cfg, concept_cfg) -> int | None:
        """The most training samples ``cfg`` can fit on that concept (``None``: no limit)."""
        if self.sample_cap is not None:
            return self.sample_cap(cfg, concept_cfg)
        return cfg.max_n if "max_n" in type(cfg).model_fields else None


class LearnerError(ValueError):
    """A learner cannot be used with this concept (raised before training)."""
