"""``kind = "gaussian"``: kernel ridge regression with the Gaussian kernel.

``exp(-||x - x'||^2 / (2 h^2))`` (:func:`pacsim.kernels.classical.gaussian`; AZL-ResNet's
``exp(-||x - y||^2 / H)`` with ``H = 2 h^2``) on the feed-forward view of the inputs, one kernel
for all scored outputs. The bandwidth ``h`` and the ridge are chosen together on a validation
split of the training samples: the candidates are ``bandwidths`` times the median distance
between training inputs (the median heuristic, computed on at most :data:`MEDIAN_SAMPLES` of
them; inputs only, no labels).
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Field, field_validator

from .._config_base import PosFloat, PosInt
from ..kernels import classical, krr
from ._kernel import ACCEPTS, SGD, FlatKernelLearner, KernelConfig, Ridges, ValFraction
from .base import LearnerKind

__all__ = ["ACCEPTS", "SGD", "BANDWIDTHS", "Config", "median_distance", "make", "warmup"]

#: Default bandwidth candidates, in units of the median distance between training inputs.
BANDWIDTHS = (0.25, 0.5, 1.0, 2.0, 4.0)
#: Training inputs (the first ones) the median distance is computed on.
MEDIAN_SAMPLES = 1000


class Config(KernelConfig):
    """Gaussian kernel, bandwidth chosen on validation among multiples of the median distance."""

    kind: Literal["gaussian"] = "gaussian"
    #: bandwidth candidates h in units of the median pairwise distance; None: BANDWIDTHS
    bandwidths: Annotated[tuple[PosFloat, ...], Field(min_length=1)] | None = None
    ridges: Ridges = None  #: relative ridge candidates; None: krr.RIDGES
    val_fraction: ValFraction = krr.VAL_FRACTION  #: training share held out for selection
    max_n: PosInt = 8192  #: most training samples fit accepts (Gram matrices are O(n^2))

    @field_validator("bandwidths", mode="before")
    @classmethod
    def _list_to_tuple_bw(cls, v):
        return tuple(v) if isinstance(v, list) else v


def median_distance(X: np.ndarray) -> float:
    """Median of ``||x_i - x_j||`` over pairs ``i < j`` of the first :data:`MEDIAN_SAMPLES`
    rows of ``X`` (1.0 if it is 0: all inputs equal)."""
    Z = X[:MEDIAN_SAMPLES]
    sq = np.einsum("ij,ij->i", Z, Z)
    D2 = sq[:, None] + sq[None, :] - 2.0 * (Z @ Z.T)
    iu = np.triu_indices(len(Z), k=1)
    med = float(np.sqrt(np.median(np.maximum(D2[iu], 0.0)))) if len(Z) > 1 else 0.0
    return med if med > 0 else 1.0


class GaussianLearner(FlatKernelLearner):
    def kernel(self, X1, X2=None, bandwidth=1.0):
        return classical.gaussian(X1, X2, bandwidth=bandwidth)

    def params(self, X):
        self._median = median_distance(X)
        factors = BANDWIDTHS if self.cfg.bandwidths is None else self.cfg.bandwidths
        return [{"bandwidth": f * self._median} for f in factors]

    def _fit(self, X, targets, seed):
        info = super()._fit(X, targets, seed)
        info["median_distance"] = self._median
        info["bandwidth_factor"] = info["bandwidth"] / self._median
        return info


def make(cfg: Config, concept, rng: np.random.Generator) -> GaussianLearner:
    return GaussianLearner(cfg, concept)


def warmup(dtypes) -> None:
    """Nothing to compile (NumPy only)."""


#: This kind's contract (:class:`pacsim.learners.base.LearnerKind`).
KIND = LearnerKind("gaussian", Config, make, warmup, SGD=SGD, ACCEPTS=ACCEPTS)
