"""Mean-field signal propagation at initialisation: predictions and finite-network measurements.

The signal-propagation recursions of Chen, Pennington & Schoenholz 2018 ("Dynamical Isometry
and a Mean Field Theory of RNNs", arXiv 1806.05394; derived for pacsim, derivation
in docs/model.md, "Mean-field signal propagation", since the paper's own equations were not
checked line by line), in pacsim's conventions (:mod:`pacsim.models.rnn`):
``W ~ N(0, sigma_w^2 / m)`` (or ``sigma_w`` times an orthogonal matrix: same recursions),
and the input drive ``A x_t`` of per-unit second moment ``r_t = E||A x_t||^2 / m``
(:func:`input_drive`; ``r_t = a_var ||x_t||^2 / m`` for ``A ~ N(0, a_var / m)``).
Per position ``t`` (``Q_{-1} = 0``), with ``E_z`` over ``z ~ N(0, 1)``:

* Elman ``h_t = phi(W h_{t-1} + A x_t)``, ``phi`` = ReLU or tanh::

      q_t = sigma_w^2 Q_{t-1} + r_t                  pre-activation variance per unit
      Q_t = E_z[phi(sqrt(q_t) z)^2]                  = ||h_t||^2 / m   (ReLU: q_t / 2)
      chi_1 = sigma_w^2 E_z[phi'(sqrt(q_t) z)^2]     (ReLU: sigma_w^2 / 2, whatever q)

* minimalRNN ``u_t = sigmoid(e_t)``, ``e_t = W h_{t-1} + V z_t + b``, ``z_t = A x_t`` with
  ``R_t = r_t``, ``V ~ N(0, sigma_v^2 / m)``, ``b ~ N(mu_b, sigma_b^2)``, ``e ~ N(mu_b, q)``::

      q_t = sigma_w^2 Q_{t-1} + sigma_v^2 R_t + sigma_b^2
      Q_t = E[u^2] Q_{t-1} + E[(1 - u)^2] R_t
      chi_1 = E[u^2] + sigma_w^2 E[sigmoid'(e)^2] (Q_{t-1} + R_t)
      fixed point: Q* = R E[(1 - u)^2] / (1 - E[u^2])

``chi_1`` is the mean squared singular value of the one-step Jacobian ``J_t = dh_t/dh_{t-1}``:
``E||J_t v||^2 / ||v||^2`` for a random ``v`` (``J_t = diag(phi'(e_t)) W``, or
``diag(u_t) + diag(sigmoid'(e_t) (h_{t-1} - z_t)) W`` for the minimalRNN). ``chi_1 = 1`` is
the critical (edge-of-chaos) point; the AZL init (ReLU, ``sigma_w^2 = 2``) sits exactly on it,
and there ``E||h_t||^2 = sum_{s<=t} ||x_s||^2`` (docs/model.md), in expectation only: with
a tied ``W`` the seed-to-seed spread is large (tests/test_meanfield.py).

The recursions assume inputs independent over time and across units. For Elman cells they are
then the infinite-width limit. The minimalRNN's ``Q`` recursion is a closure: it factorises
``E[u_t^2 h_{t-1}^2] = E[u_t^2] Q_{t-1}``, dropping the correlation between a unit's gate and
its state (both driven by the unit's own field, correlated in time), and overestimates ``Q*``
at every width: by 2% with fast gates (``mu_b = 0, sigma_w = 1``), by 8-25% with gates that
stay near 1 (``mu_b >= 2``) or near criticality; ``chi_1`` stays within 1%. :func:`single_site` is
the exact infinite-width limit (Monte Carlo of the single-unit process), which finite networks
match within their sampling error (tests/test_meanfield.py: ``chi_1`` 2%, ``q``/``Q`` 3% at
m = 1000).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.polynomial.legendre import leggauss
from scipy.linalg import solve_triangular
from scipy.optimize import brentq

from . import rnn

#: Gauss-Legendre nodes and weights on [-1, 1] for the composite rule of :func:`_mean`.
_GL_X, _GL_W = leggauss(32)

#: Panels of the composite rule in the middle interval (|e| < _E_HALF) and in each tail.
_N_MID, _N_TAIL = 16, 4

#: |z| beyond which the standard normal density is ignored (e^{-z^2/2} < 1e-31).
_Z_MAX = 12.0

#: Every integrand (tanh, sigmoid and their derivatives) varies only for |e| < _E_HALF; outside
#: it is flat to e^{-40}.
_E_HALF = 40.0


_CELLS = ("relu", "tanh", "minimal")


@dataclass(frozen=True)
class Prediction:
    """Mean-field trajectory over positions ``t = 0..L-1`` from ``h_{-1} = 0``.

    Attributes
    ----------
    q : ndarray (L,)
        Pre-activation variance per unit (the gate's, around ``mu_b``, for minimal).
    Q : ndarray (L,)
        ``E||h_t||^2 / m``.
    chi_1 : ndarray (L,)
        Mean squared singular value of ``J_t = dh_t/dh_{t-1}``.
    """

    q: np.ndarray
    Q: np.ndarray
    chi_1: np.ndarray


@dataclass(frozen=True)
class FixedPoint:
    """Fixed point under a constant drive ``r``; ``q_star = Q_star = inf`` if there is none
    (ReLU with ``sigma_w^2 >= 2``: the norm grows without bound, ``chi_1`` is still defined).
    """

    q_star: float
    Q_star: float
    chi_1: float


@dataclass(frozen=True)
class Measurement:
    """Per-position statistics of a finite network, averaged over samples and units.

    Attributes
    ----------
    q : ndarray (L,)
        Mean of the squared pre-activation (minus the gate bias ``b`` for minimal).
    Q : ndarray (L,)
        Mean of ``||h_t||^2 / m``.
    r : ndarray (L,)
        Input drive ``mean ||A x_t||^2 / m`` (what :func:`predict` takes).
    chi_1 : ndarray (L,)
        Mean of ``||J_t v||^2 / ||v||^2`` over the samples, ``v ~ N(0, I)``.
    """

    q: np.ndarray
    Q: np.ndarray
    r: np.ndarray
    chi_1: np.ndarray


def _mean(f, mu, var):
    """``E f(mu + sqrt(var) z)``, ``z ~ N(0, 1)``, for an ``f`` that varies only near 0.

    Composite 32-point Gauss-Legendre in ``z`` on ``[-12, 12]``: 16 panels where
    ``|mu + sqrt(var) z| < 40`` (where ``f`` varies) and 4 in each tail. A plain Gauss-Hermite
    rule misses a sigmoid's transition once ``sqrt(var)`` is large (at ``q ~ 1e3`` the
    gate moments were off by up to 20%).
    """
    if var <= 0.0:
        return float(f(np.array([mu]))[0])
    sd = np.sqrt(var)
    a = min(max((-_E_HALF - mu) / sd, -_Z_MAX), _Z_MAX)
    b = min(max((_E_HALF - mu) / sd, -_Z_MAX), _Z_MAX)
    edges = np.concatenate(
        [
            np.linspace(-_Z_MAX, a, _N_TAIL + 1)[:-1],
            np.linspace(a, b, _N_MID + 1)[:-1],
            np.linspace(b, _Z_MAX, _N_TAIL + 1),
        ]
    )
    lo, hi = edges[:-1, None], edges[1:, None]
    z = 0.5 * (hi - lo) * _GL_X + 0.5 * (hi + lo)  # (panels, nodes)
    w = 0.5 * (hi - lo) * _GL_W * np.exp(-0.5 * z * z) / np.sqrt(2.0 * np.pi)
    return float(np.sum(w * f(mu + sd * z)))


def _sigmoid(e):
    return 0.5 * (1.0 + np.tanh(0.5 * e))


def _dsigmoid(e):
    u = _sigmoid(e)
    return u * (1.0 - u)


def _elman_moments(cell, q):
    """``(E phi^2, E phi'^2)`` at pre-activation variance ``q``."""
    if cell == "relu":
        return q / 2.0, 0.5
    return _mean(lambda e: np.tanh(e) ** 2, 0.0, q), _mean(lambda e: np.cosh(e) ** -4, 0.0, q)


def _gate_moments(q, mu_b):
    """``(E u, E u^2, E (1-u)^2, E sigmoid'^2)`` for ``u = sigmoid(e)``, ``e ~ N(mu_b, q)``."""
    return (
        _mean(_sigmoid, mu_b, q),
        _mean(lambda e: _sigmoid(e) ** 2, mu_b, q),
        _mean(lambda e: (1.0 - _sigmoid(e)) ** 2, mu_b, q),
        _mean(lambda e: _dsigmoid(e) ** 2, mu_b, q),
    )


def predict(
    cell: str,
    sigma_w: float,
    r,
    *,
    sigma_v: float = 1.0,
    mu_b: float = 0.0,
    sigma_b: float = 0.0,
) -> Prediction:
    """Mean-field ``q_t``, ``Q_t`` and ``chi_1`` at every position for the drive ``r``.

    Parameters
    ----------
    cell : {"relu", "tanh", "minimal"}
    sigma_w : float
        ``W ~ N(0, sigma_w^2 / m)``.
    r : array_like (L,)
        Per-unit second moment of the input drive ``A x_t`` at each position (see
        :func:`input_drive`).
    sigma_v, mu_b, sigma_b : float
        minimalRNN gate-input scale and gate bias mean and spread (ignored by Elman cells).
    """
    _check_cell(cell)
    r = np.atleast_1d(np.asarray(r, dtype=np.float64))
    s2 = sigma_w**2
    q, Q, chi = (np.empty(r.size) for _ in range(3))
    Q_prev = 0.0
    for t, rt in enumerate(r):
        if cell == "minimal":
            q[t] = s2 * Q_prev + sigma_v**2 * rt + sigma_b**2
            _, eu2, e1u2, eds2 = _gate_moments(q[t], mu_b)
            chi[t] = eu2 + s2 * eds2 * (Q_prev + rt)
            Q[t] = eu2 * Q_prev + e1u2 * rt
        else:
            q[t] = s2 * Q_prev + rt
            Q[t], dphi2 = _elman_moments(cell, q[t])
            chi[t] = s2 * dphi2
        Q_prev = Q[t]
    return Prediction(q=q, Q=Q, chi_1=chi)


def fixed_point(
    cell: str,
    sigma_w: float,
    r: float,
    *,
    sigma_v: float = 1.0,
    mu_b: float = 0.0,
    sigma_b: float = 0.0,
) -> FixedPoint:
    """The stable fixed point ``(q*, Q*)`` under a constant drive ``r`` and ``chi_1`` there.

    The smallest root of ``F(q) = q`` above the drive (the one the recursion reaches from
    ``h_{-1} = 0``): ReLU in closed form (``q* = r / (1 - sigma_w^2 / 2)``), tanh
    ``F(q) = sigma_w^2 E[tanh^2] + r``, minimal ``F(q) = sigma_w^2 Q*(q) + sigma_v^2 R +
    sigma_b^2`` with ``R = r``.
    """
    _check_cell(cell)
    s2 = sigma_w**2
    if cell == "relu":
        chi = s2 / 2.0
        if r == 0.0:
            return FixedPoint(0.0, 0.0, chi)
        if chi >= 1.0:
            return FixedPoint(np.inf, np.inf, chi)
        q = r / (1.0 - chi)
        return FixedPoint(q, q / 2.0, chi)
    if cell == "tanh":
        if r == 0.0 and s2 <= 1.0:  # q = 0 is the stable fixed point
            return FixedPoint(0.0, 0.0, s2)
        q = _first_root(lambda q: s2 * _elman_moments("tanh", q)[0] + r - q, 0.0)
        Q, dphi2 = _elman_moments("tanh", q)
        return FixedPoint(q, Q, s2 * dphi2)

    def q_map(q):
        _, eu2, e1u2, _ = _gate_moments(q, mu_b)
        return s2 * r * e1u2 / (1.0 - eu2) + sigma_v**2 * r + sigma_b**2

    lo = sigma_v**2 * r + sigma_b**2  # q_map(q) >= lo
    q = 0.0 if r == 0.0 else _first_root(lambda q: q_map(q) - q, lo)
    _, eu2, e1u2, eds2 = _gate_moments(q, mu_b)
    Q = r * e1u2 / (1.0 - eu2)
    return FixedPoint(q, Q, eu2 + s2 * eds2 * (Q + r))


def _first_root(excess, lo):
    """Smallest root above ``lo`` of ``excess(q) = F(q) - q`` (positive just above ``lo``):
    the fixed point that the recursion reaches from below (from ``h_{-1} = 0``).

    Scans a geometric grid (ratio 1.25) for the first sign change, then Brent's method.
    """
    a = lo
    b = max(2.0 * lo, 1e-12)
    while excess(b) > 0:
        a, b = b, 1.25 * b
        if b > 1e30:
            raise ValueError("no mean-field fixed point below q = 1e30")
    return brentq(excess, a, b, xtol=1e-300, rtol=1e-14)


def critical_sigma_w(
    cell: str,
    r: float,
    *,
    sigma_v: float = 1.0,
    mu_b: float = 0.0,
    sigma_b: float = 0.0,
) -> float:
    """``sigma_w`` at which ``chi_1`` at the fixed point equals 1, found numerically.

    Brent's method on ``chi_1(sigma_w) - 1``, the bracket grown by doubling from
    ``[1e-3, 1]``; ``chi_1`` at the fixed point comes from :func:`fixed_point`. Raises
    ``ValueError`` if ``chi_1`` stays below 1 up to ``sigma_w = 1e8``. The critical line is
    implicit (the expectations depend on ``q*``); ReLU gives ``sqrt(2)`` for every ``r``.

    For the minimalRNN this is the root of the closure's ``chi_1``, within 1% of the
    infinite-width one (:func:`single_site`). A minimalRNN with ``mu_b = 4`` (R = 1,
    sigma_v = 1) has a root at sigma_w = 4.03 (an earlier computation had found none up to
    sigma_w = 60), and simulation agrees that chi_1 crosses 1 there (m = 1000: measured chi_1
    0.957 at sigma_w = 3, 1.05 at 5 and 1.87 at 10).
    """
    _check_cell(cell)

    def excess(sigma_w):
        return fixed_point(cell, sigma_w, r, sigma_v=sigma_v, mu_b=mu_b, sigma_b=sigma_b).chi_1 - 1

    lo, hi = 1e-3, 1.0
    if excess(lo) >= 0:
        raise ValueError(f"chi_1 >= 1 already at sigma_w = {lo} for cell {cell!r}")
    while excess(hi) < 0:
        lo, hi = hi, 2.0 * hi
        if hi > 1e8:
            raise ValueError(f"no critical sigma_w for cell {cell!r} (chi_1 < 1 up to 1e8)")
    return float(brentq(excess, lo, hi, xtol=1e-14, rtol=1e-13))


def single_site(
    cell: str,
    sigma_w: float,
    r,
    *,
    sigma_v: float = 1.0,
    mu_b: float = 0.0,
    sigma_b: float = 0.0,
    n_paths: int = 20000,
    rng: np.random.Generator | None = None,
) -> Prediction:
    """The infinite-width limit of ``q_t``, ``Q_t`` and ``chi_1`` without the closure of
    :func:`predict`: Monte Carlo of the single-unit process of dynamic mean-field theory.

    As ``m -> infinity`` with ``W`` i.i.d. Gaussian (not symmetric, so there is no reaction
    term), the recurrent input ``(W h_{t-1})_i`` of one unit is a zero-mean Gaussian process in
    ``t`` with covariance ``sigma_w^2 C(t-1, s-1)``, ``C(t, s) = E[h_t h_s]`` of one unit, and the
    units are independent; the drive ``z_t`` (Elman: ``A x_t``) is i.i.d. ``N(0, r_t)``. So one
    unit is simulated ``n_paths`` times, its field ``e_t`` drawn causally from the Gaussian
    process whose covariance is estimated from the paths themselves::

        Elman:    e_t = g_t,          Cov(g_t, g_s) = sigma_w^2 C(t-1, s-1) + r_t [t = s]
                  h_t = phi(e_t)
        minimal:  e_t = mu_b + g_t,   Cov(g_t, g_s) = sigma_w^2 C(t-1, s-1)
                                                      + sigma_v^2 r_t [t = s] + sigma_b^2
                  u_t = sigmoid(e_t), h_t = u_t h_{t-1} + (1 - u_t) z_t

    with ``C(-1, .) = 0``; ``chi_1(t) = sigma_w^2 E[phi'(e_t)^2]`` (Elman) or
    ``E[u_t^2 + sigma_w^2 sigmoid'(e_t)^2 (h_{t-1} - z_t)^2]`` (minimal), the limit of
    ``||J_t v||^2 / ||v||^2``. For Elman cells ``Q_t`` depends only on the variance of ``e_t``,
    and :func:`predict` is this limit. For the minimalRNN :func:`predict` factorises
    ``E[u_t^2 h_{t-1}^2] = E[u_t^2] Q_{t-1}``, but ``u_t`` and ``h_{t-1}`` of one unit are
    correlated through the unit's own field, which is correlated in time (the tied ``W`` sees a
    slowly changing ``h``): a unit whose gate stays near 1 keeps its old state and takes in
    less of its input. The closure therefore overestimates ``Q*`` (measured at m = 500 ...
    4000, the same at every width: by 2% at ``mu_b = 0, sigma_w = 1``, 8.5% at the critical
    point ``sigma_w = 6.88``, 15% at ``mu_b = 4``, 24% at ``mu_b = 2, sigma_w = 3``) and is
    off in ``chi_1`` by under 1%; finite
    networks match this function within their sampling error. Derivation: docs/model.md,
    "Mean-field signal propagation". Monte Carlo error about ``1 / sqrt(n_paths)`` relative
    (0.7% at the default; average over positions for less).
    """
    _check_cell(cell)
    r = np.atleast_1d(np.asarray(r, dtype=np.float64))
    rng = np.random.default_rng(0) if rng is None else rng
    L, P, s2 = r.size, int(n_paths), sigma_w**2
    xi = rng.standard_normal((L, P))
    z = np.sqrt(r)[:, None] * rng.standard_normal((L, P)) if cell == "minimal" else None
    H = np.zeros((L, P))
    chol = np.zeros((L, L))  # Cholesky factor of Cov(g_0..g_t), grown one row per step
    q, Q, chi = (np.empty(L) for _ in range(3))
    h_prev = np.zeros(P)
    for t in range(L):
        k = np.full(t + 1, sigma_b**2 if cell == "minimal" else 0.0)
        if t > 0:
            k[1:] += s2 * (H[:t] @ H[t - 1]) / P  # Cov(g_t, g_s), s = 1..t: C(s-1, t-1)
        k[t] += (sigma_v**2 if cell == "minimal" else 1.0) * r[t]
        if t > 0:
            chol[t, :t] = solve_triangular(chol[:t, :t], k[:t], lower=True)
        chol[t, t] = np.sqrt(max(k[t] - chol[t, :t] @ chol[t, :t], 0.0))
        g = chol[t, : t + 1] @ xi[: t + 1]
        q[t] = np.mean(g * g)
        if cell == "minimal":
            u = _sigmoid(mu_b + g)
            H[t] = u * h_prev + (1.0 - u) * z[t]
            chi[t] = np.mean(u * u + s2 * (u * (1.0 - u)) ** 2 * (h_prev - z[t]) ** 2)
        else:
            H[t] = np.maximum(g, 0.0) if cell == "relu" else np.tanh(g)
            dphi = (g > 0).astype(float) if cell == "relu" else 1.0 - H[t] ** 2
            chi[t] = s2 * np.mean(dphi * dphi)
        Q[t] = np.mean(H[t] ** 2)
        h_prev = H[t]
    return Prediction(q=q, Q=Q, chi_1=chi)


def input_drive(A: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Per-position ``mean over samples of ||A x_t||^2 / m``, shape (L,) (float64)."""
    AX = np.asarray(X, dtype=np.float64) @ np.asarray(A, dtype=np.float64).T  # (n, L, m)
    return np.mean(AX**2, axis=(0, 2))


def measure(p: rnn.RNNParams, X: np.ndarray, rng: np.random.Generator) -> Measurement:
    """Run the network on ``X`` (n, L, d_in) and measure ``q_t``, ``Q_t``, ``r_t``, ``chi_1``.

    ``chi_1`` at position ``t``: for each sample a fresh ``v ~ N(0, I_m)`` and
    ``||J_t v||^2 / ||v||^2`` with the sample's own Jacobian, averaged over samples. Average
    over positions past the transient (and over seeds) before comparing with
    :func:`predict` or :func:`fixed_point`.
    """
    H, E, Z = (None if a is None else a.astype(np.float64) for a in rnn._trajectories(p, X))
    n, L, m = H.shape
    v = rng.standard_normal((n, L, m))
    Wv = v @ p.W.T.astype(np.float64)  # one BLAS call for every (sample, position)
    if p.cell == "minimal":
        h_prev = np.concatenate([np.zeros((n, 1, m)), H[:, :-1]], axis=1)
        u = _sigmoid(E)
        Jv = u * v + u * (1.0 - u) * (h_prev - Z) * Wv
        q = np.mean((E - p.b.astype(np.float64)) ** 2, axis=(0, 2))
    else:
        dphi = (E > 0).astype(np.float64) if p.cell == "relu" else 1.0 - np.tanh(E) ** 2
        Jv = dphi * Wv
        q = np.mean(E**2, axis=(0, 2))
    chi = np.mean(np.sum(Jv**2, axis=2) / np.sum(v**2, axis=2), axis=0)
    Q = np.mean(H**2, axis=(0, 2))
    return Measurement(q=q, Q=Q, r=input_drive(p.A, X), chi_1=chi)


def _check_cell(cell):
    if cell not in _CELLS:
        raise ValueError(f"cell must be one of {_CELLS}, got {cell!r}")
