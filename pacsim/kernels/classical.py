"""Classical kernels and explicit polynomial features: the baselines listed by Allen-Zhu & Li
(arXiv 1905.10337; the feature-map regression of their Theorem 3).

Kernels take ``X1`` (n1, d) and ``X2`` (n2, d) (``None``: ``X1``) and return (n1, n2) float64:

* :func:`polynomial`: ``(scale <x, x'> + offset)^degree``;
* :func:`gaussian`: ``exp(-||x - x'||^2 / (2 bandwidth^2))`` (AZL write ``exp(-||x-y||^2/h)``,
  i.e. ``h = 2 bandwidth^2``);
* :func:`arccos`: Cho & Saul (2009) arc-cosine kernel of order n in {0, 1, 2},
  ``k_n(x, x') = (1/pi) ||x||^n ||x'||^n J_n(t)``, ``t`` the angle, ``J_0 = pi - t``,
  ``J_1 = sin t + (pi - t) cos t``, ``J_2 = 3 sin t cos t + (pi - t)(1 + 2 cos^2 t)``;
  ``k_1 / 2`` and ``k_0 / 2`` are the ReLU moments ``E[relu relu]``, ``E[relu' relu']``;
* :func:`arcsin`: ``arcsin(<x, x'> / (||x|| ||x'||))`` (listed by AZL);
* :func:`inverse_polynomial`: ``1 / (2 - <x, x'>)`` for ``||x||, ||x'|| <= 1`` (Zhang, Lee &
  Jordan 2016).

Linear regression on explicit monomials (AZL Theorem 3's "linear regression over feature maps"):
:func:`monomial_features` lists every monomial of total degree ``<= degree`` (constant
included), ``D = C(d + degree, degree)`` features; with ``multilinear=True`` only square-free
monomials (enough on the Boolean cube, where ``x_i^2 = 1``), ``D = sum_{j <= degree} C(d, j)``
(:func:`feature_count`). :func:`fit_monomial` fits them by least squares (``ridges=(0,)``,
min-norm) or by ridge with validation selection (:func:`pacsim.kernels.krr.fit_features`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from math import comb

import numpy as np

from . import krr

__all__ = [
    "polynomial",
    "gaussian",
    "arccos",
    "arcsin",
    "inverse_polynomial",
    "feature_count",
    "monomial_features",
    "fit_monomial",
    "MonomialModel",
]


def _pair(X1, X2):
    X1 = np.ascontiguousarray(X1, dtype=np.float64)
    X2 = X1 if X2 is None else np.ascontiguousarray(X2, dtype=np.float64)
    if X1.ndim != 2 or X2.ndim != 2 or X1.shape[1] != X2.shape[1]:
        raise ValueError(f"X1 {X1.shape} and X2 {X2.shape} must be (n, d) with the same d")
    return X1, X2


def polynomial(X1, X2=None, degree: int = 2, offset: float = 1.0, scale: float = 1.0):
    """``(scale <x, x'> + offset)^degree``."""
    X1, X2 = _pair(X1, X2)
    return (scale * (X1 @ X2.T) + offset) ** int(degree)


def gaussian(X1, X2=None, bandwidth: float = 1.0):
    """``exp(-||x - x'||^2 / (2 bandwidth^2))``."""
    X1, X2 = _pair(X1, X2)
    if bandwidth <= 0:
        raise ValueError("bandwidth must be positive")
    sq = (X1 * X1).sum(1)[:, None] + (X2 * X2).sum(1)[None, :] - 2.0 * (X1 @ X2.T)
    return np.exp(-np.maximum(sq, 0.0) / (2.0 * bandwidth**2))


def _angle(X1, X2):
    n1 = np.sqrt((X1 * X1).sum(1))
    n2 = np.sqrt((X2 * X2).sum(1))
    den = n1[:, None] * n2[None, :]
    G = X1 @ X2.T
    rho = np.clip(np.divide(G, den, out=np.zeros_like(G), where=den > 0), -1.0, 1.0)
    return n1, n2, rho


def arccos(X1, X2=None, order: int = 1):
    """Cho & Saul arc-cosine kernel ``k_n``, ``n = order`` in {0, 1, 2} (module docstring)."""
    X1, X2 = _pair(X1, X2)
    n1, n2, rho = _angle(X1, X2)
    t = np.arccos(rho)
    s = np.sqrt((1 - rho) * (1 + rho))
    if order == 0:
        J = np.pi - t
    elif order == 1:
        J = s + (np.pi - t) * rho
    elif order == 2:
        J = 3 * s * rho + (np.pi - t) * (1 + 2 * rho * rho)
    else:
        raise ValueError("order must be 0, 1 or 2")
    return (np.outer(n1, n2) ** order) * J / np.pi


def arcsin(X1, X2=None):
    """``arcsin`` of the cosine similarity."""
    X1, X2 = _pair(X1, X2)
    return np.arcsin(_angle(X1, X2)[2])


def inverse_polynomial(X1, X2=None):
    """``1 / (2 - <x, x'>)``; requires ``||x|| <= 1`` for every row."""
    X1, X2 = _pair(X1, X2)
    return 1.0 / (2.0 - X1 @ X2.T)


def feature_count(d: int, degree: int, multilinear: bool = False) -> int:
    """Number of monomials of total degree <= ``degree`` in ``d`` variables (constant included)."""
    if multilinear:
        return sum(comb(d, j) for j in range(min(degree, d) + 1))
    return comb(d + degree, degree)


def monomial_features(X, degree: int, multilinear: bool = False) -> np.ndarray:
    """(n, D) matrix of all monomials of total degree <= ``degree``, ordered by degree.

    Built degree by degree: each monomial of degree j extends one of degree j-1 by a variable
    whose index is >= (> for ``multilinear``) its last one, so each monomial appears once.
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    n, d = X.shape
    cols = [np.ones(n)]
    prev = [(np.ones(n), -1)]  # (values, last variable index) of the degree j-1 monomials
    for _ in range(int(degree)):
        nxt = []
        for vals, last in prev:
            start = last + 1 if multilinear else max(last, 0)
            for v in range(start, d):
                nxt.append((vals * X[:, v], v))
        cols.extend(v for v, _ in nxt)
        prev = nxt
    F = np.stack(cols, axis=1)
    assert F.shape[1] == feature_count(d, degree, multilinear)
    return F


@dataclass(frozen=True)
class MonomialModel:
    """Linear model on :func:`monomial_features`; ``predict`` takes raw inputs."""

    degree: int
    multilinear: bool
    readout: krr.FeatureModel = field(repr=False)

    @property
    def ridge(self) -> float:
        return self.readout.ridge

    def predict(self, X) -> np.ndarray:
        return self.readout.predict(monomial_features(X, self.degree, self.multilinear))


def fit_monomial(
    X,
    Y,
    degree: int,
    *,
    multilinear: bool = False,
    ridges: Sequence[float] = (0.0,),
    val_fraction: float = krr.VAL_FRACTION,
    seed: int = 0,
) -> MonomialModel:
    """Least squares (default ``ridges=(0,)``) or validated ridge on monomial features."""
    F = monomial_features(X, degree, multilinear)
    if len(ridges) == 1:  # nothing to select: fit on all N samples directly
        r = float(ridges[0])
        Y2, squeeze = krr._as_labels(Y)
        coef = krr.ridge_coef(F, Y2, r)
        return MonomialModel(int(degree), multilinear, krr.FeatureModel(r, coef, (), squeeze))
    readout = krr.fit_features(F, Y, ridges=ridges, val_fraction=val_fraction, seed=seed)
    return MonomialModel(int(degree), multilinear, readout)
