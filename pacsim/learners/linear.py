"""``kind = "linear"``: linear regression on the monomials of the inputs up to ``degree``.

AZL-ResNet's "linear regression over feature mappings" baseline (arXiv 1905.10337, Theorem 3):
the features are every monomial of total degree ``<= degree`` of the
feed-forward view of the inputs, the constant included
(:func:`pacsim.kernels.classical.monomial_features`; ``multilinear``: square-free monomials
only, all that matter on the Boolean cube). Least squares (``ridges = [0.0]``) or ridge with
the ridge chosen on a validation split of the training samples (the default grid, 0 included).
"""

from __future__ import annotations

import functools
from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from .. import concepts
from .._config_base import PosInt
from ..kernels import classical, krr
from ._kernel import (
    ACCEPTS,
    SGD,
    KernelConfig,
    KernelLearner,
    Ridges,
    ValFraction,
    flat_dim,
    flat_inputs,
)
from .base import LearnerError, LearnerKind

__all__ = ["ACCEPTS", "SGD", "Config", "MAX_ENTRIES", "make", "max_n", "warmup"]

#: Largest feature matrix (samples x monomials) fit builds: 10^8 float64 entries, 0.8 GB.
MAX_ENTRIES = 10**8


class Config(KernelConfig):
    """Least squares / ridge on monomial features."""

    kind: Literal["linear"] = "linear"
    degree: Annotated[int, Field(ge=1, le=16)] = 1  #: highest total degree of the monomials
    multilinear: bool = False  #: square-free monomials only
    ridges: Ridges = None  #: relative ridge candidates; None: krr.RIDGES
    val_fraction: ValFraction = krr.VAL_FRACTION  #: training share held out for selection
    max_n: PosInt = 8192  #: most training samples fit accepts


def max_n(cfg: Config, concept_cfg) -> int:
    """The most training samples a fit can take: ``cfg.max_n``, or fewer when the feature
    matrix (samples x monomials) would exceed :data:`MAX_ENTRIES`; the sweep caps the cell
    there and records it as censored by ``max_n``."""
    n_features = classical.feature_count(_input_dim(concept_cfg), cfg.degree, cfg.multilinear)
    return min(cfg.max_n, MAX_ENTRIES // n_features)


@functools.lru_cache(maxsize=256)
def _input_dim(concept_cfg) -> int:
    """Length of the feed-forward inputs of the concept of ``concept_cfg`` (drawn once with a
    fixed generator: the dimensions do not depend on the draw)."""
    return flat_dim(concepts.make(concept_cfg, np.random.default_rng(0)))


class LinearLearner(KernelLearner):
    def __init__(self, cfg, concept):
        super().__init__(cfg, concept)
        self.n_features = classical.feature_count(flat_dim(concept), cfg.degree,
                                                  cfg.multilinear)

    def encode(self, X):
        return flat_inputs(self.concept, X)

    def _fit(self, X, targets, seed):
        if len(X) * self.n_features > MAX_ENTRIES:
            raise LearnerError(
                f"model.kind = 'linear': {len(X)} samples x {self.n_features} monomials of "
                f"degree <= {self.cfg.degree} exceed {MAX_ENTRIES:.0e} feature entries; lower "
                f"model.degree or target.n_max"
            )
        c = self.cfg
        self.model = classical.fit_monomial(X, targets.reshape(len(targets), -1), c.degree,
                                            multilinear=c.multilinear, ridges=self.ridges,
                                            val_fraction=c.val_fraction, seed=seed)
        chosen = [s.val_mse for s in self.model.readout.selection if s.ridge == self.model.ridge]
        return {"ridge": self.model.ridge, "val_mse": chosen[0] if chosen else float("nan"),
                "n_features": self.n_features}

    def _predict(self, X):
        return self.model.predict(X)


def make(cfg: Config, concept, rng: np.random.Generator) -> LinearLearner:
    return LinearLearner(cfg, concept)


def warmup(dtypes) -> None:
    """Nothing to compile (NumPy only)."""


#: This kind's contract (:class:`pacsim.learners.base.LearnerKind`).
KIND = LearnerKind("linear", Config, make, warmup, SGD=SGD, ACCEPTS=ACCEPTS,
                   sample_cap=max_n)
