"""The spectral learning curve of kernel ridge regression (docs/theory.md).

Kernel ridge regression ``f(x) = K(x, X) (K(X, X) + delta I)^{-1} y`` on ``N`` i.i.d. samples,
the kernel written in its Mercer form ``K(x, x') = sum_k lambda_k phi_k(x) phi_k(x')`` with
``E[phi_k phi_l] = delta_kl`` under the input distribution, and the target
``f*(x) = sum_k v_k phi_k(x)`` (plus label noise of variance ``sigma^2``). The omniscient-risk
(replica / eigenlearning) prediction of the expected test error (Bordelon, Canatar & Pehlevan
2020, "Spectrum dependent learning curves in kernel regression and wide neural networks",
arXiv 2002.02561; Canatar, Bordelon & Pehlevan 2021, Nat. Commun. 12:2914, arXiv 2006.13198;
written here in the "eigenlearning" form of Simon, Dickens, Karkada & DeWeese, arXiv
2110.03922, whose test MSE also counts the test labels' noise, ``E0 (... + sigma^2)``; pacsim's
clean-target form below is that minus ``sigma^2``):

* ``kappa > 0`` solves ``sum_k lambda_k / (lambda_k + kappa) + delta / kappa = N``;
* the learnability of mode ``k`` is ``L_k = lambda_k / (lambda_k + kappa)``;
* the overfitting coefficient is ``E0 = N / (N - sum_k L_k^2)``;
* the expected test MSE against the clean target is
  ``E0 (sum_k (1 - L_k)^2 v_k^2) + (E0 - 1) sigma^2``.

``delta`` is the ridge added to the *unnormalised* N x N Gram matrix, as in
:mod:`pacsim.kernels.krr`; pacsim's relative ridge ``r`` means ``delta = r trace(K)/N``, whose
expectation is ``r E[K(x, x)] = r sum_k lambda_k`` (:func:`absolute_ridge`).

Power in the target that lies outside the given modes (``residual``) is never learned: it adds
``E0 residual`` (a mode with ``lambda = 0`` has ``L = 0``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

__all__ = ["Curve", "absolute_ridge", "solve_kappa", "learning_curve", "n_eps"]


def absolute_ridge(eigenvalues, ridge: float, multiplicity=None) -> float:
    """pacsim's relative ridge (a multiple of ``trace(K)/N``) as the ``delta`` of the theory:
    ``ridge * sum_k m_k lambda_k`` (``E[K(x, x)]``, the expectation of ``trace(K)/N``)."""
    lam = np.asarray(eigenvalues, dtype=np.float64)
    mult = np.ones_like(lam) if multiplicity is None else np.asarray(multiplicity, np.float64)
    return float(ridge) * float(np.sum((mult * lam)[lam > 0]))


def solve_kappa(eigenvalues, N: float, delta: float, multiplicity=None) -> float:
    """The ``kappa >= 0`` of ``sum_k m_k lambda_k / (lambda_k + kappa) + delta / kappa = N``
    (``m_k``: the multiplicity of eigenvalue ``k``, default 1).

    The left side decreases from ``rank + (delta > 0) * inf`` (``kappa -> 0``) to 0, so the
    root is unique when it exists. Without a ridge and with ``N >= rank`` (as many samples as
    nonzero modes) the regression interpolates a finite-rank kernel exactly: ``kappa = 0``.
    Solved by Brent's method on ``log kappa`` to a relative tolerance of 1e-13.
    """
    lam = np.asarray(eigenvalues, dtype=np.float64)
    mult = np.ones_like(lam) if multiplicity is None else np.asarray(multiplicity, np.float64)
    lam, mult = lam[lam > 0], mult[lam > 0]
    rank = float(mult.sum())
    if N <= 0:
        raise ValueError(f"N must be positive, got {N}")
    if delta < 0 or not math.isfinite(delta):
        raise ValueError(f"delta (the ridge) must be finite and >= 0, got {delta}")
    if delta == 0 and N >= rank:
        return 0.0

    def g(t):  # decreasing in t = log kappa
        k = math.exp(t)
        return float(np.sum(mult * lam / (lam + k))) + delta / k - N

    # Bracket: g < 0 at kappa = (delta + sum_k m_k lambda_k) / N; step down until g > 0.
    hi = math.log((delta + float(np.sum(mult * lam))) / N + 1e-300)
    while g(hi) > 0:
        hi += 2.0
    lo = hi - 2.0
    while g(lo) < 0:
        lo -= 2.0
        if lo < -1400:  # kappa below 1e-608: numerically zero
            return 0.0
    return math.exp(brentq(g, lo, hi, xtol=1e-15, rtol=1e-13, maxiter=500))


@dataclass(frozen=True)
class Curve:
    """A predicted learning curve: per ``N``, ``kappa``, ``E0`` and the expected test MSE."""

    N: np.ndarray
    kappa: np.ndarray
    E0: np.ndarray
    mse: np.ndarray


def learning_curve(eigenvalues, power, Ns, delta: float = 0.0, *, noise: float = 0.0,
                   residual: float = 0.0, multiplicity=None) -> Curve:
    """Predicted expected test MSE (against the clean target) at every ``N`` of ``Ns``.

    Parameters
    ----------
    eigenvalues : array (P,)
        Mercer eigenvalues ``lambda_k >= 0`` of the kernel under the input distribution.
    power : array (P,)
        Target power per mode, ``v_k^2`` (summed over output columns for a multi-output
        target that shares the kernel: the errors add up; with ``multiplicity``, the power
        summed over the ``m_k`` modes of eigenvalue ``k``).
    Ns : array of sample sizes
    delta : float
        Absolute ridge (``K + delta I``); see :func:`absolute_ridge`.
    noise : float
        Label-noise variance ``sigma^2`` of the training labels (times the number of outputs).
    residual : float
        Target power outside the modes given (never learned).
    multiplicity : array (P,), optional
        How many modes share eigenvalue ``k`` (e.g. the ``C(d, k)`` parities of degree ``k``
        on the hypercube, :func:`pacsim.theory.spectrum.hypercube_eigenvalues`).
    """
    lam = np.asarray(eigenvalues, dtype=np.float64)
    v2 = np.asarray(power, dtype=np.float64)
    if lam.shape != v2.shape or lam.ndim != 1:
        raise ValueError(f"eigenvalues {lam.shape} and power {v2.shape} must be equal 1-D shapes")
    if (lam < 0).any() or (v2 < 0).any():
        raise ValueError("eigenvalues and power must be >= 0")
    mult = np.ones_like(lam) if multiplicity is None else np.asarray(multiplicity, np.float64)
    if mult.shape != lam.shape or (mult < 0).any():
        raise ValueError("multiplicity must be >= 0, one per eigenvalue")
    Ns = np.atleast_1d(np.asarray(Ns, dtype=np.float64))
    kap, e0, mse = (np.empty(len(Ns)) for _ in range(3))
    pos = lam > 0
    for i, N in enumerate(Ns):
        k = solve_kappa(lam, N, delta, mult)
        L = np.where(pos, lam / (lam + k) if k > 0 else 1.0, 0.0)
        s = float(np.sum(mult * L * L))
        e0[i] = N / (N - s) if N > s * (1 + 1e-12) else math.inf
        kap[i] = k
        learned_err = float(np.sum((1 - L) ** 2 * v2)) + residual
        with np.errstate(invalid="ignore"):
            mse[i] = e0[i] * learned_err + (e0[i] - 1) * noise if noise else e0[i] * learned_err
        if not math.isfinite(e0[i]):
            mse[i] = math.inf if (learned_err > 0 or noise > 0) else 0.0
    return Curve(Ns, kap, e0, mse)


def n_eps(Ns, errors, eps: float) -> float:
    """The smallest ``N`` of ``Ns`` (increasing) with ``errors <= eps`` (NaN if none): the
    definition pacsim uses for the measured N_eps (:mod:`pacsim.samples`)."""
    Ns = np.asarray(Ns, dtype=np.float64)
    ok = np.flatnonzero(np.asarray(errors, dtype=np.float64) <= eps)
    return float(Ns[ok[0]]) if ok.size else math.nan
