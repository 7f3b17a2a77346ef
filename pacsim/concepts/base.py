"""What every concept (target) offers, whatever its family.

A concept is drawn once from a run's ``concept`` stream (``family.make(cfg, rng)``) and can then
label any number of inputs. Two kinds exist:

* ``"sequence"``: ``X`` of shape (n, L, d_x) (row 0 is the start position and carries no
  token), ``Y`` of shape (n, L, d); only the 0-based ``positions`` are scored.
* ``"vector"``: ``X`` of shape (n, d_in), ``Y`` of shape (n, d); one output, always scored.

``sample(n, rng)`` must be *nested*: drawing ``n1`` then ``n2`` samples from one generator gives
exactly the first ``n1 + n2`` samples of a single draw, so training sets are nested in N and the
online stream does not depend on the chunk size. Every family checks this in its tests.
"""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Concept(Protocol):
    family: str
    kind: Literal["sequence", "vector"]

    @property
    def positions(self) -> np.ndarray | None:
        """0-based scored output positions (sequence concepts); ``None`` for vector concepts."""

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` labelled samples ``(X, Y)`` (nested in ``n``; see the module docstring)."""

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
