"""``kind = "poly"``: kernel ridge regression with the polynomial kernel ``(<x, x'> + c)^p``.

:func:`pacsim.kernels.classical.polynomial` (``degree = p``, ``offset = c``; listed among
AZL-ResNet's kernel baselines, arXiv 1905.10337) on the feed-forward view
of the inputs, one kernel for all scored outputs, the ridge chosen on a validation split of the
training samples (:mod:`pacsim.learners._kernel`).
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from .._config_base import NonNegFloat, PosInt
from ..kernels import classical, krr
from ._kernel import ACCEPTS, SGD, FlatKernelLearner, KernelConfig, Ridges, ValFraction
from .base import LearnerKind

__all__ = ["ACCEPTS", "SGD", "Config", "make", "warmup"]


class Config(KernelConfig):
    """Polynomial kernel ``(<x, x'> + offset)^degree``."""

    kind: Literal["poly"] = "poly"
    degree: Annotated[int, Field(ge=1, le=32)] = 2  #: p
    offset: NonNegFloat = 1.0  #: c
    ridges: Ridges = None  #: relative ridge candidates; None: krr.RIDGES
    val_fraction: ValFraction = krr.VAL_FRACTION  #: training share held out for selection
    max_n: PosInt = 8192  #: most training samples fit accepts (Gram matrices are O(n^2))


class PolyLearner(FlatKernelLearner):
    def kernel(self, X1, X2=None):
        return classical.polynomial(X1, X2, degree=self.cfg.degree, offset=self.cfg.offset)


def make(cfg: Config, concept, rng: np.random.Generator) -> PolyLearner:
    return PolyLearner(cfg, concept)


def warmup(dtypes) -> None:
    """Nothing to compile (NumPy only)."""


#: This kind's contract (:class:`pacsim.learners.base.LearnerKind`).
KIND = LearnerKind("poly", Config, make, warmup, SGD=SGD, ACCEPTS=ACCEPTS)
