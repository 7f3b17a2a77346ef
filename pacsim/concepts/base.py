"""What every concept (target) offers, whatever its family.

A concept is drawn once from a run's ``concept`` stream (``family.make(cfg, rng)``) and can then
label any number of inputs. Two kinds exist:

* ``"sequence"``: ``X`` of shape (n, L, d_x) (row 0 is the start position and carries no
  token), ``Y`` of shape (n, L, d); only the 0-based ``positions`` are scored. A sequence
  concept exposes the ints ``L``, ``d_x``, ``d`` and the int array ``positions`` (ascending).
  Families labelled at the end (PG21, regular languages) also keep row ``L - 1`` free of a
  token (the end position) and score only ``positions = [L - 1]``.
* ``"vector"``: ``X`` of shape (n, d_in), ``Y`` of shape (n, d); one output, always scored. A
  vector concept exposes the ints ``d_in`` and ``d``; its ``positions`` is ``None``.

Concepts of the form ``H = beta F + alpha G(F)`` (the AZL-ResNet families ``resnet``,
``resnet-parity`` and ``resnet-hard``) derive from :class:`Composite` and also offer
``components(X) -> (F, alpha G(F))``, from which :mod:`pacsim.decomp` measures how much of each
a learner has learned. Use :func:`components` to ask any concept (``None``: not of that form).

Every concept also has ``labels(X)`` (the noise-free labels of given inputs), ``info()``
(scalars recorded with every run as ``concept_info.*``: complexity measures, label scale, a
fingerprint of the target) and an optional ``cfg`` (the family ``Config`` it was made from);
:func:`pacsim.concepts.save` and :func:`pacsim.concepts.load` store and restore it exactly.

``sample(n, rng)`` must be *nested*: drawing ``n1`` then ``n2`` samples from one generator gives
exactly the first ``n1 + n2`` samples of a single draw, so training sets are nested in N and the
online stream does not depend on the chunk size. Every family checks this in its tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Concept(Protocol):
    family: str
    kind: Literal["sequence", "vector"]
    d: int  #: output dimension

    @property
    def positions(self) -> np.ndarray | None:
        """0-based scored output positions (sequence concepts); ``None`` for vector concepts."""

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` labelled samples ``(X, Y)`` (nested in ``n``; see the module docstring)."""

    def labels(self, X: np.ndarray) -> np.ndarray:
        """Noise-free labels of inputs ``X`` (the shape of ``sample``'s ``Y``)."""

    def info(self) -> dict[str, float | int | str]:
        """Scalars recorded with every run (complexity measures, label scale, ...)."""


def scored(concept: Concept, Y: np.ndarray) -> np.ndarray:
    """The scored labels as a float64 array of shape (n, S, d): the scored positions of a
    sequence concept (S = len(positions)), or S = 1 for a vector concept."""
    Y = np.asarray(Y, dtype=np.float64)
    if concept.kind == "sequence":
        return Y[:, concept.positions]
    return Y[:, None, :]


def n_scored(concept: Concept) -> int:
    """S, the number of scored outputs per sample."""
    return len(concept.positions) if concept.kind == "sequence" else 1


class Composite:
    """Base of the vector concepts ``H(x) = beta F(x) + alpha G(F(x))`` (AZL-ResNet,
    arXiv 1905.10337, Concept 1 and its experiment): a subclass defines ``F(x)`` (n, d_in) ->
    (n, d), ``G(y)`` (n, d) -> (n, d) and the float attributes ``alpha`` and ``beta``."""

    def components(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The two signals of the labels at inputs ``x``: ``F(x)`` and ``alpha G(F(x))``, each
        (n, d); the noise-free labels are ``beta F + alpha G(F)``."""
        F = self.F(x)
        return F, self.alpha * self.G(F)

    def labels(self, x: np.ndarray) -> np.ndarray:
        F, alpha_G = self.components(x)
        return self.beta * F + alpha_G


def components(concept: Concept, x: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(F(x), alpha G(F(x)))`` of a :class:`Composite` concept; ``None`` for any other."""
    return concept.components(x) if isinstance(concept, Composite) else None


@dataclass(frozen=True)
class ConceptFamily:
    """The contract of one concept family, declared once by its module as ``FAMILY`` and read
    by the registry (:data:`pacsim.concepts.FAMILIES`), the config loader, the learners and
    ``pacsim concepts``: ``name`` (the ``concept.family`` value), ``Config`` (its
    ``[base.concept]`` settings, with ``family: Literal[name]``), ``make(cfg, rng)``,
    ``KIND`` (``"sequence"`` or ``"vector"``), ``CONCEPT`` (the class of its sampled
    targets) and the texts ``SUMMARY``, ``FORMULA``, ``SOURCE`` and ``LABEL_SCALE``."""

    name: str
    Config: type
    make: Callable[..., Concept]
    KIND: str
    CONCEPT: type
    SUMMARY: str
    FORMULA: str
    SOURCE: str
    LABEL_SCALE: str

    def __post_init__(self):
        family = self.Config.model_fields.get("family")
        if family is None or family.default != self.name:
            raise TypeError(f"family {self.name!r}: its Config must have family = {self.name!r}")
        if self.KIND not in ("sequence", "vector"):
            raise TypeError(f"family {self.name!r}: KIND must be 'sequence' or 'vector'")
