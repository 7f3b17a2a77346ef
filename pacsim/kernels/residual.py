"""Infinite-width NTK/NNGP of residual ReLU networks (derivations: docs/kernels.md, "Derivations").

Three architectures; the finite networks with the same names in :mod:`pacsim.kernels.entk`
(``preact_resnet``, ``azl_resnet``, ``azl_bottleneck``) are what the tests compare against.

1. Pre-activation residual blocks (:func:`preact_ntk`, :func:`preact_nngp`), in the convention
   of :mod:`pacsim.kernels.relu` (all parameters N(0, 1), ``c = c_sigma = 2/(1+a^2)``)::

       z_0 = W_0 x + beta b_0
       z_l = z_{l-1} + alpha (sqrt(c/m) W_l phi(z_{l-1}) + beta b_l),   l = 1..blocks
       f   = sqrt(c/m) A phi(z_B) + beta b_out

   Kernel recursion (the branch ends in a fresh weight, so branch and skip are uncorrelated;
   E1, E0 = E[phi phi], E[phi' phi'] at the covariance K_{l-1})::

       K_0 = <x, x'> + beta^2,                Theta_0 = K_0
       K_l = K_{l-1} + alpha^2 (c E1 + beta^2)
       Theta_l = Theta_{l-1} (1 + alpha^2 c E0) + alpha^2 (c E1 + beta^2)
       NNGP = c E1(K_B) + beta^2,             NTK = c E0(K_B) Theta_B + c E1(K_B) + beta^2

   ``blocks=0`` is ``relu.ntk(depth=1)``. The skip makes the kernel additive (the input
   correlation survives depth); ``K_l(x, x)`` grows like ``(1 + alpha^2)^l``, so
   ``alpha ~ 1/sqrt(blocks)`` keeps it bounded. Matches neural-tangents'
   ``FanOut(2) >> parallel(Identity, serial(Relu, Dense)) >> FanInSum``.

2. AZL-ResNet eq. 2.1 with a full ``U`` (:func:`azl_ntk`, :func:`azl_nngp`; ReLU), NTK
   parameterisation (``W, U, b, a`` i.i.d. N(0, 1))::

       z1 = sw W x / sqrt(d) + sb1 b1,   h1 = relu(z1)
       z2 = su U h1 / sqrt(m) + sb2 b2,  h2 = relu(z2)
       f  = a . (h1 + h2) / sqrt(m)      (skip=False: f = a . h2 / sqrt(m), a plain 3-layer net)

   ``a`` (AZL's ``A``) is fixed; ``W``, ``U`` (and their biases if ``sb > 0``) are trained.
   With ``Sigma1 = sw^2 <x,x'>/d + sb1^2``, ``K1 = E[relu relu](Sigma1)``,
   ``Sigma2 = su^2 K1 + sb2^2`` and ``E0_i = E[relu' relu'](Sigma_i)`` (derived in docs/kernels.md;
   the skip contributes the "1")::

       Theta_W  = (sw^2 <x,x'>/d) E0_1 (1 + su^2 E0_2)      Theta_b1 = sb1^2 E0_1 (1 + su^2 E0_2)
       Theta_U  = su^2 K1 E0_2                              Theta_b2 = sb2^2 E0_2
       NNGP     = K1 + K2 + (sqrt(S1(x,x) S2(x',x')) + sqrt(S2(x,x) S1(x',x'))) / (2 pi)

   (the last term is the mean of ``h1`` times the mean of ``h2``: ReLU outputs are not centred).
   **Scaling.** In the standard parameterisation AZL use (``A ~ N(0, 1/m)``,
   ``W ~ N(0, sw^2/d)``, ``U ~ N(0, su^2/m)``) the plain gradient Gram weights the groups by
   ``d/sw^2`` and ``m/su^2`` relative to the above, so with equal step sizes the ``U`` part
   dominates by a factor ``m``; ``group_weights`` reweights the parts (``(eta_W d/sw^2,
   eta_U m/su^2)`` reproduces SGD with per-group steps ``eta``), and
   ``entk.azl_resnet(scales={"W": sw**2/d, "U": su**2/m, ...})`` is the finite-width twin.

3. The bottleneck form AZL analyse (:func:`azl_bottleneck_ntk`), standard parameterisation::

       out1 = A relu(W (x, 1)),   f = out1 + A relu(V (out1, 1))
       A (k, m) ~ N(0, 1/m) fixed;  W (m, d+1) ~ N(0, sw^2), V (m, k+1) ~ N(0, sv^2/m) trained

   It has **no deterministic** infinite-width NTK (docs/kernels.md): ``out1`` is a k-dimensional
   Gaussian vector (a draw of the GP with covariance :func:`bottleneck_out1_cov`) that does
   not concentrate as ``m -> infinity``. Conditionally on ``out1`` the plain gradient Gram
   (w.r.t. ``W`` and ``V``, no ``m`` factor) converges, for any ``sw`` and ``sv = o(sqrt(m))``,
   to ``delta_rs`` times::

       Theta = <x~, x~'> E0(x~, x~') + <u~, u~'> E0(u~, u~'),   x~ = (x, 1),  u~ = (out1, 1)
       E0(a, b) = (pi - angle(a, b)) / (2 pi)

   (``G = (I + A D2 V[:, :k]) A -> A`` because ``A D2 V`` is O(sv/sqrt(m))). Pass the ``out1``
   of a finite network (``entk.azl_bottleneck_forward(..., return_out1=True)``) or GP samples.
   At finite width use :func:`pacsim.kernels.entk.azl_bottleneck` (what AZL plotted).

All functions: ``X`` of shape (n, d), float64, vectorised NumPy over the (n1, n2) pairs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .relu import _beta, _leak, c_sigma, layer_moments

__all__ = [
    "preact_ntk",
    "preact_nngp",
    "azl_ntk",
    "azl_nngp",
    "azl_bottleneck_ntk",
    "bottleneck_out1_cov",
]


def _pair(X1, X2):
    X1 = np.ascontiguousarray(X1, dtype=np.float64)
    X2 = X1 if X2 is None else np.ascontiguousarray(X2, dtype=np.float64)
    if X1.ndim != 2 or X2.ndim != 2 or X1.shape[1] != X2.shape[1]:
        raise ValueError(f"X1 {X1.shape} and X2 {X2.shape} must be (n, d) with the same d")
    return X1, X2, (X1 * X1).sum(1), (X2 * X2).sum(1)


def _preact(X1, X2, blocks, alpha, bias, leak):
    X1, X2, na, nb = _pair(X1, X2)
    b2 = _beta(bias) ** 2
    lk = _leak(leak)
    c = c_sigma(lk)
    a2 = float(alpha) ** 2
    K = X1 @ X2.T + b2
    ka, kb = na + b2, nb + b2  # diagonals K_l(x, x)
    T = K.copy()
    for _ in range(int(blocks)):
        e1, e0 = layer_moments(K, ka[:, None], kb[None, :], lk)
        T = T * (1.0 + a2 * c * e0) + a2 * (c * e1 + b2)
        K = K + a2 * (c * e1 + b2)
        # c E1 on the diagonal is K(x, x) itself (c E[phi(z)^2] = var z)
        ka, kb = ka + a2 * (ka + b2), kb + a2 * (kb + b2)
    e1, e0 = layer_moments(K, ka[:, None], kb[None, :], lk)
    nngp = c * e1 + b2
    return c * e0 * T + nngp, nngp


def preact_ntk(X1, X2=None, blocks: int = 1, *, alpha: float = 1.0, bias: bool | float = False,
               leak: float | None = None) -> np.ndarray:  # fmt: skip
    """NTK (n1, n2) of the pre-activation ResNet (module docstring, item 1); every layer trained.

    ``bias``: ``False`` / ``True`` (``beta = 1``) / float ``beta``; ``leak``: LeakyReLU slope.
    """
    if int(blocks) < 0:
        raise ValueError("blocks must be >= 0")
    return _preact(X1, X2, blocks, alpha, bias, leak)[0]


def preact_nngp(X1, X2=None, blocks: int = 1, *, alpha: float = 1.0, bias: bool | float = False,
                leak: float | None = None) -> np.ndarray:  # fmt: skip
    """NNGP (n1, n2) of the pre-activation ResNet (module docstring, item 1)."""
    if int(blocks) < 0:
        raise ValueError("blocks must be >= 0")
    return _preact(X1, X2, blocks, alpha, bias, leak)[1]


def _azl_parts(X1, X2, sw, su, sb1, sb2):
    X1, X2, na, nb = _pair(X1, X2)
    d = X1.shape[1]
    lin = sw**2 * (X1 @ X2.T) / d
    s1a, s1b = sw**2 * na / d + sb1**2, sw**2 * nb / d + sb1**2
    K1, E01 = layer_moments(lin + sb1**2, s1a[:, None], s1b[None, :])
    s2a, s2b = su**2 * s1a / 2 + sb2**2, su**2 * s1b / 2 + sb2**2  # E[relu(z)^2] = var / 2
    K2, E02 = layer_moments(su**2 * K1 + sb2**2, s2a[:, None], s2b[None, :])
    return lin, K1, E01, K2, E02, (s1a, s1b, s2a, s2b)


def azl_ntk(
    X1,
    X2=None,
    *,
    sw: float = 1.0,
    su: float = 1.0,
    sb1: float = 0.0,
    sb2: float = 0.0,
    skip: bool = True,
    train: Sequence[str] = ("W", "U"),
    group_weights: dict | None = None,
    parts: bool = False,
):
    """NTK of AZL-ResNet eq. 2.1 with a full ``U`` (module docstring, item 2), ``A`` fixed.

    Parameters
    ----------
    X1, X2 : array_like of shape (n, d)
    sw, su, sb1, sb2 : float
        Standard deviations of the NTK parameterisation (``sb = 0``: no bias).
    skip : bool
        ``False``: the plain three-layer net ``a . h2 / sqrt(m)``.
    train : sequence of {"W", "b1", "U", "b2"}
        Trained groups; biases count only when their ``sb > 0``.
    group_weights : dict or None
        Multiplier per group (default 1), e.g. per-group learning rates.
    parts : bool
        Return ``{group: (n1, n2) array}`` instead of the weighted sum.
    """
    lin, K1, E01, K2, E02, _ = _azl_parts(X1, X2, sw, su, sb1, sb2)
    s = 1.0 if skip else 0.0
    back1 = E01 * (s + su**2 * E02)  # d f / d z1 kernel
    all_parts = {
        "W": lin * back1,
        "b1": sb1**2 * back1,
        "U": su**2 * K1 * E02,
        "b2": sb2**2 * E02,
    }
    bad = set(train) - set(all_parts)
    if bad:
        raise ValueError(f"train must be a subset of {tuple(all_parts)}, got {tuple(train)}")
    gw = dict(group_weights or {})
    out = {g: gw.get(g, 1.0) * all_parts[g] for g in train}
    if parts:
        return out
    return sum(out.values())


def azl_nngp(X1, X2=None, *, sw: float = 1.0, su: float = 1.0, sb1: float = 0.0, sb2: float = 0.0,
             skip: bool = True) -> np.ndarray:  # fmt: skip
    """Output covariance (n1, n2) of AZL-ResNet eq. 2.1 at initialisation, with the mean terms.

    Also the infinite-width kernel of the "(last)" baseline (only ``a`` trained).
    """
    _, K1, _, K2, _, (s1a, s1b, s2a, s2b) = _azl_parts(X1, X2, sw, su, sb1, sb2)
    if not skip:
        return K2
    cross = (np.sqrt(s1a[:, None] * s2b[None, :]) + np.sqrt(s2a[:, None] * s1b[None, :])) / (
        2 * np.pi
    )
    return K1 + K2 + cross


def _e0(P1, P2):
    """(pi - angle) / (2 pi) between the rows of P1 and P2 (all rows non-zero)."""
    G = P1 @ P2.T
    n1 = np.sqrt((P1 * P1).sum(1))
    n2 = np.sqrt((P2 * P2).sum(1))
    rho = np.clip(G / (n1[:, None] * n2[None, :]), -1.0, 1.0)
    return G, (np.pi - np.arccos(rho)) / (2 * np.pi)


def azl_bottleneck_ntk(
    X1,
    out1_1,
    X2=None,
    out1_2=None,
    *,
    train: Sequence[str] = ("W", "V"),
    group_weights: dict | None = None,
    parts: bool = False,
):
    """Conditional infinite-width NTK of the bottleneck AZL-ResNet given ``out1`` (item 3).

    Parameters
    ----------
    X1 : (n1, d) inputs; out1_1 : (n1, k) their first-block outputs ``A relu(W (x, 1))``.
    X2, out1_2 : the same for the second argument (``None``: ``X1``, ``out1_1``).
    train : subset of {"W", "V"}; group_weights, parts : as in :func:`azl_ntk`.

    Returns
    -------
    (n1, n2) array: the ``r = s`` block, the same for every output ``r`` (cross blocks vanish).
    """
    X1 = np.asarray(X1, dtype=np.float64)
    U1 = np.asarray(out1_1, dtype=np.float64)
    X2 = X1 if X2 is None else np.asarray(X2, dtype=np.float64)
    U2 = U1 if out1_2 is None else np.asarray(out1_2, dtype=np.float64)

    def tilde(Z):
        return np.concatenate([Z, np.ones((Z.shape[0], 1))], axis=1)

    bad = set(train) - {"W", "V"}
    if bad:
        raise ValueError(f"train must be a subset of ('W', 'V'), got {tuple(train)}")
    gw = dict(group_weights or {})
    out = {}
    if "W" in train:
        G, e0 = _e0(tilde(X1), tilde(X2))
        out["W"] = gw.get("W", 1.0) * G * e0
    if "V" in train:
        G, e0 = _e0(tilde(U1), tilde(U2))
        out["V"] = gw.get("V", 1.0) * G * e0
    return out if parts else sum(out.values())


def bottleneck_out1_cov(X1, X2=None, *, sw: float = 1.0) -> np.ndarray:
    """Covariance (n1, n2) of each coordinate of ``out1 = A relu(W (x, 1))`` as m -> infinity.

    ``E[out1_r(x) out1_r(x')] = E[relu(u) relu(v)]`` with ``Cov(u, v) = sw^2 <x~, x~'>``; the k
    coordinates are independent. Draw ``out1`` from this GP to sample the random limit kernel.
    """
    X1 = np.asarray(X1, dtype=np.float64)
    X2 = X1 if X2 is None else np.asarray(X2, dtype=np.float64)
    G = sw**2 * (X1 @ X2.T + 1.0)
    a = sw**2 * ((X1 * X1).sum(1) + 1.0)
    b = sw**2 * ((X2 * X2).sum(1) + 1.0)
    return layer_moments(G, a[:, None], b[None, :])[0]
