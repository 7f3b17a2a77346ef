"""Closed-form NNGP and NTK of deep fully connected ReLU / LeakyReLU networks.

Convention (Arora, Du, Hu, Li, Salakhutdinov & Wang 2019, "On Exact Computation with an
Infinitely Wide Neural Net", arXiv 1904.11955, eqs. 6-13).
The network with ``depth`` hidden layers of width ``m``, all parameters N(0, 1)::

    f^(1) = W^(1) x + beta b^(1)                      (no 1/sqrt(d): Sigma^(0) = <x, x'>)
    g^(h) = sqrt(c_sigma / m) phi(f^(h)),   f^(h+1) = W^(h+1) g^(h) + beta b^(h+1),   h = 1..depth
    output f = f^(depth+1)  (scalar; every output coordinate of a wider readout is an i.i.d. copy)

``c_sigma = 1 / E[phi(z)^2] = 2 / (1 + a^2)`` for ``phi(z) = max(z, a z)`` (``a = 0``: ReLU,
``c_sigma = 2``), which keeps ``E||g^(h)||^2 = ||x||^2 + h beta^2`` constant in depth. With
``Sigma~^(h) := Sigma^(h) + beta^2`` the covariance of the pre-activations ``f^(h+1)``::

    Sigma^(0)(x, x')  = <x, x'>
    Sigma^(h)         = c_sigma E[phi(u) phi(v)],    (u, v) ~ N(0, Sigma~^(h-1) on {x, x'})
    Sigmadot^(h)      = c_sigma E[phi'(u) phi'(v)]
    NNGP(x, x')       = Sigma~^(depth)                                  (covariance of f)
    NTK(x, x')        = sum_{h=1}^{depth+1} T_h * prod_{h'=h}^{depth} Sigmadot^(h'),
                        T_h = Sigma^(h-1) [weights of layer h] + beta^2 [its bias]

``bias=False`` (``beta = 0``) is exactly Arora et al.'s net. ``bias=True`` means ``beta = 1``;
a float gives ``beta`` itself (Jacot et al.'s ``beta``, e.g. 0.1; neural-tangents'
``b_std = beta`` with ``W_std = sqrt(c_sigma)`` and the input kernel ``<x,x'>`` rather than
``<x,x'>/d``). Every bias, including the readout's, is N(0, 1) scaled by ``beta`` and trained
with its layer unless ``train_bias=False``.

The ReLU expectations are the arc-cosine kernels of Cho & Saul (2009); the LeakyReLU ones
(``leak=a``) are from Tsuchida, Roosta & Gallagher (2018, arXiv 1711.09090):
``E[phi(u) phi(v)] = sqrt(ab) ((1-a)^2 (sin t + (pi - t) cos t) / (2 pi) + a cos t)`` and
``E[phi'(u) phi'(v)] = ((1 + a^2)(pi - t) + 2 a t) / (2 pi)``, ``t = arccos(c / sqrt(ab))``.

Known values (depth 1, no bias, unit vectors): identical inputs give NTK 2 and NNGP 1;
orthogonal ones give NTK 1/pi and NNGP 1/pi.

Cost: one Gram matrix ``X1 @ X2.T`` (BLAS), then ``depth`` arccos per pair in a vectorised
Numba loop; only the upper triangle when ``X2`` is ``None`` or ``X1``. Memory: the (n1, n2)
result plus O(n2) scratch (the Gram matrix is transformed in place).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._numba import jit
from ._math import acos

__all__ = ["nngp", "ntk", "ntk_and_nngp", "c_sigma", "layer_moments"]


def c_sigma(leak: float | None = None) -> float:
    """``1 / E[phi(z)^2]`` for ``z ~ N(0, 1)``: 2 for ReLU, ``2 / (1 + a^2)`` for LeakyReLU(a)."""
    a = _leak(leak)
    return 2.0 / (1.0 + a * a)


def nngp(X1, X2=None, depth: int = 1, *, bias: bool | float = False, leak: float | None = None):
    """NNGP kernel: covariance of the output of the infinitely wide network (module docstring).

    Parameters
    ----------
    X1 : array_like of shape (n1, d)
    X2 : array_like of shape (n2, d) or None
        ``None`` (or ``X1`` itself) computes the symmetric Gram matrix of ``X1``.
    depth : int
        Number of hidden layers (>= 0; 0 gives the linear kernel ``<x, x'> + beta^2``).
    bias : bool or float
        ``False``: no biases (Arora et al.); ``True``: ``beta = 1``; a float: ``beta``.
    leak : float or None
        LeakyReLU slope ``a`` in [0, 1); ``None`` or 0 is ReLU.

    Returns
    -------
    ndarray of shape (n1, n2), float64
    """
    return _run(X1, X2, depth, bias, leak, "all", True, want_ntk=False)[1]


def ntk(
    X1,
    X2=None,
    depth: int = 1,
    *,
    bias: bool | float = False,
    leak: float | None = None,
    train: str | Sequence[int] = "all",
    train_bias: bool = True,
):
    """Neural tangent kernel of the infinitely wide network (module docstring).

    Parameters
    ----------
    X1, X2, depth, bias, leak
        As in :func:`nngp`.
    train : "all", "hidden" or sequence of int
        Which layers' parameters are trained, 1-based: layer ``h`` in ``1..depth`` is the
        hidden layer ``h`` (``W^(h)`` and ``b^(h)``), layer ``depth + 1`` the readout.
        ``"all"`` (Arora et al.) trains every layer; ``"hidden"`` drops the readout term, the
        "hidden weights only" NTK of the AZL/AZLL "(NTK)" baselines (arXiv 1905.10337 and
        1811.04918 train the hidden layers only);
        dropping the first ``j`` layers gives the "first j layers fixed" kernels of Arora et al.
        2020 (Harnessing), but in the c_sigma = 2 convention.
    train_bias : bool
        Whether the biases of trained layers are trained too (no effect without ``bias``).

    Returns
    -------
    ndarray of shape (n1, n2), float64
    """
    return _run(X1, X2, depth, bias, leak, train, train_bias, want_nngp=False)[0]


def ntk_and_nngp(
    X1,
    X2=None,
    depth: int = 1,
    *,
    bias: bool | float = False,
    leak: float | None = None,
    train: str | Sequence[int] = "all",
    train_bias: bool = True,
):
    """``(ntk(...), nngp(...))`` from one pass (same arguments as :func:`ntk`)."""
    return _run(X1, X2, depth, bias, leak, train, train_bias)


def layer_moments(c, a, b, leak: float | None = None):
    """``(E[phi(u) phi(v)], E[phi'(u) phi'(v)])`` for ``(u, v) ~ N(0, [[a, c], [c, b]])``.

    A NumPy convenience (not used by the fast paths) for building other recursions; ``np.arccos``
    with clipping, so it is also an independent check of the jitted ``acos``.
    """
    lk = _leak(leak)
    c, a, b = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (c, a, b)))
    den = np.sqrt(a * b)
    ok = den > 0
    rho = np.clip(np.divide(c, den, out=np.zeros_like(den), where=ok), -1.0, 1.0)
    t = np.arccos(rho)
    pt = np.pi - t
    st = np.sqrt((1 - rho) * (1 + rho))
    e1 = den * ((1 - lk) ** 2 * (st + pt * rho) / (2 * np.pi) + lk * rho)
    e0 = ((1 + lk * lk) * pt + 2 * lk * t) / (2 * np.pi)
    # degenerate sides: phi'(0) = a
    one_deg = (a > 0) != (b > 0)
    e0 = np.where(ok, e0, np.where(one_deg, lk * (1 + lk) / 2, lk * lk))
    return np.where(ok, e1, 0.0), e0


# Internals


def _leak(leak) -> float:
    a = 0.0 if leak is None else float(leak)
    if not 0.0 <= a < 1.0:
        raise ValueError(f"leak must lie in [0, 1), got {leak}")
    return a


def _beta(bias) -> float:
    if isinstance(bias, bool | np.bool_):
        return 1.0 if bias else 0.0
    b = float(bias)
    if not np.isfinite(b) or b < 0:
        raise ValueError(f"bias must be a bool or a non-negative float, got {bias}")
    return b


def _as_2d(X, name) -> np.ndarray:
    X = np.ascontiguousarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"{name} must have shape (n, d), got {X.shape}")
    return X


def _pair(X1, X2):
    X1 = _as_2d(X1, "X1")
    sym = X2 is None or X2 is X1
    X2 = X1 if sym else _as_2d(X2, "X2")
    if X2.shape[1] != X1.shape[1]:
        raise ValueError(f"X1 and X2 have different dimensions: {X1.shape[1]} vs {X2.shape[1]}")
    return X1, X2, sym


def _train_mask(train, depth):
    if isinstance(train, str):
        if train == "all":
            return np.ones(depth + 1)
        if train == "hidden":
            m = np.ones(depth + 1)
            m[depth] = 0.0
            return m
        raise ValueError(f"train must be 'all', 'hidden' or a sequence of layers, got {train!r}")
    mask = np.zeros(depth + 1)
    for h in train:
        if not 1 <= int(h) <= depth + 1:
            raise ValueError(f"layer {h} is outside 1..{depth + 1}")
        mask[int(h) - 1] = 1.0
    return mask


def _run(X1, X2, depth, bias, leak, train, train_bias, want_ntk=True, want_nngp=True):
    depth = int(depth)
    if depth < 0:
        raise ValueError("depth must be >= 0")
    X1, X2, sym = _pair(X1, X2)
    beta = _beta(bias)
    lk = _leak(leak)
    cw = _train_mask(train, depth)
    cb = cw * (beta * beta if train_bias else 0.0)
    n1, n2 = X1.shape[0], X2.shape[0]
    G = X1 @ X1.T if sym else X1 @ X2.T  # numpy uses syrk for X @ X.T
    G = np.ascontiguousarray(G)
    na = np.einsum("ij,ij->i", X1, X1)
    nb = na if sym else np.einsum("ij,ij->i", X2, X2)
    out_ntk = np.empty((n1, n2)) if (want_ntk and want_nngp) else None
    # The buffer of the Gram matrix becomes the first requested output.
    if want_ntk and not want_nngp:
        out_ntk, out_nngp = G, np.empty((0, 0))
    elif want_nngp and not want_ntk:
        out_ntk, out_nngp = np.empty((0, 0)), G
    else:
        out_nngp = G
    _fc_kernel(
        G, na, nb, depth, beta * beta, lk, c_sigma(lk), cw, cb, sym, want_ntk, want_nngp,
        out_ntk, out_nngp,
    )  # fmt: skip
    if sym:
        if want_ntk:
            _mirror_upper(out_ntk)
        if want_nngp:
            _mirror_upper(out_nngp)
    return (out_ntk if want_ntk else None), (out_nngp if want_nngp else None)


@jit(inline="always")
def _cell(c, den, leak, one_m):
    """``(E[phi phi], E[phi' phi'])`` for ``den > 0`` (vectorisable: no branches)."""
    rho = min(max(c / den, -1.0), 1.0)
    t = acos(rho)
    st = np.sqrt(max((1.0 - rho) * (1.0 + rho), 0.0))
    pt = np.pi - t
    e1 = den * (one_m * one_m * (st + pt * rho) * (0.5 / np.pi) + leak * rho)
    e0 = ((1.0 + leak * leak) * pt + 2.0 * leak * t) * (0.5 / np.pi)
    return e1, e0


@jit
def _cell_exact(c, qa, qb, leak, diag):
    """Scalar :func:`_cell` that also covers ``rho = 1`` exactly and degenerate variances."""
    if qa > 0.0 and qb > 0.0:
        den = np.sqrt(qa) * np.sqrt(qb)
        if diag:
            c = den
        return _cell(c, den, leak, 1.0 - leak)
    if qa > 0.0 or qb > 0.0:  # one side is identically 0: phi(0) = 0, phi'(0) = leak
        return 0.0, leak * (1.0 + leak) / 2.0
    return 0.0, leak * leak


@jit
def _fc_layer(s, th, sqb, sqa, b2, leak, one_m, cs, wh, bh):
    """One layer for a row segment (whole 1-D views: a run-time start offset stopped LLVM from
    vectorising the loop)."""
    for j in range(s.shape[0]):
        e1, e0 = _cell(s[j] + b2, sqa * sqb[j], leak, one_m)
        snew = cs * e1
        th[j] = th[j] * (cs * e0) + wh * snew + bh
        s[j] = snew


@jit
def _fc_kernel(G, na, nb, depth, b2, leak, cs, cw, cb, sym, want_ntk, want_nngp, out_ntk, out_nngp):
    """Rows of NTK/NNGP from the Gram matrix ``G`` (may alias an output: read before write).

    The inner loop over ``j`` has no branches so that it vectorises; the diagonal (symmetric
    case) and degenerate columns (zero variance) are redone by :func:`_cell_exact` afterwards.
    """
    n1, n2 = G.shape
    s = np.empty(n2)
    th = np.empty(n2)
    sqb = np.empty(n2)
    one_m = 1.0 - leak
    special = np.empty(n2 + 1, dtype=np.int64)  # columns redone by _cell_exact
    st_s = np.empty(n2 + 1)
    st_th = np.empty(n2 + 1)
    n_deg = 0
    if b2 == 0.0:
        for j in range(n2):
            if nb[j] == 0.0:
                special[n_deg] = j
                n_deg += 1
    for i in range(n1):
        j0 = i if sym else 0
        row_deg = na[i] == 0.0 and b2 == 0.0
        n_sp = n_deg
        if sym:
            special[n_sp] = i
            n_sp += 1
        for j in range(j0, n2):
            s[j] = G[i, j]
            th[j] = cw[0] * G[i, j] + cb[0]
        for h in range(1, depth + 1):
            qa = na[i] + h * b2  # Sigma~^(h-1)(x, x)
            wh = cw[h]
            bh = cb[h]
            if row_deg:
                for j in range(j0, n2):
                    e1, e0 = _cell_exact(0.0, qa, nb[j] + h * b2, leak, False)
                    snew = cs * e1
                    th[j] = th[j] * (cs * e0) + wh * snew + bh
                    s[j] = snew
                continue
            sqa = np.sqrt(qa)
            for j in range(j0, n2):
                sqb[j] = np.sqrt(nb[j] + h * b2)
            for k in range(n_sp):  # inputs of the columns redone below
                j = special[k]
                if j >= j0:
                    st_s[k] = s[j]
                    st_th[k] = th[j]
            _fc_layer(s[j0:], th[j0:], sqb[j0:], sqa, b2, leak, one_m, cs, wh, bh)
            for k in range(n_sp):
                j = special[k]
                if j >= j0:
                    e1, e0 = _cell_exact(st_s[k] + b2, qa, nb[j] + h * b2, leak, sym and j == i)
                    snew = cs * e1
                    th[j] = st_th[k] * (cs * e0) + wh * snew + bh
                    s[j] = snew
        if want_ntk:
            for j in range(j0, n2):
                out_ntk[i, j] = th[j]
        if want_nngp:
            for j in range(j0, n2):
                out_nngp[i, j] = s[j] + b2


@jit
def _mirror_upper(K):
    """Copy the upper triangle of the square ``K`` onto the lower one, in cache-sized tiles."""
    n = K.shape[0]
    bs = 64
    for i0 in range(0, n, bs):
        for j0 in range(0, i0 + 1, bs):
            for i in range(i0, min(i0 + bs, n)):
                for j in range(j0, min(j0 + bs, i)):
                    K[i, j] = K[j, i]
