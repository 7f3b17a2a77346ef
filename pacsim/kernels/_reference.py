"""Plain vectorised NumPy twins of the jitted kernels (private).

They are the oracles of ``tests/test_kernels*.py`` and the baselines of
``benchmarks/kernels.py``: straightforward array code over all pairs at once (``np.arccos``,
full (n1, n2) temporaries), written independently of the Numba loops.
"""

from __future__ import annotations

import numpy as np


def _moments(c, a, b, leak=0.0):
    den = np.sqrt(a * b)
    rho = np.clip(c / den, -1.0, 1.0)
    t = np.arccos(rho)
    e1 = den * ((1 - leak) ** 2 * (np.sin(t) + (np.pi - t) * rho) / (2 * np.pi) + leak * rho)
    e0 = ((1 + leak**2) * (np.pi - t) + 2 * leak * t) / (2 * np.pi)
    return e1, e0


def fc_ntk_nngp(X1, X2, depth, beta=0.0, leak=0.0, train=None):
    """Arora-convention NTK and NNGP (see :mod:`pacsim.kernels.relu`), all pairs at once."""
    cs = 2.0 / (1.0 + leak**2)
    b2 = beta * beta
    w = np.ones(depth + 1) if train is None else np.asarray(train, dtype=float)
    S = X1 @ X2.T
    na = (X1 * X1).sum(1)[:, None]
    nb = (X2 * X2).sum(1)[None, :]
    T = w[0] * (S + b2)
    for h in range(1, depth + 1):
        e1, e0 = _moments(S + b2, na + h * b2, nb + h * b2, leak)
        S = cs * e1
        T = T * (cs * e0) + w[h] * (S + b2)
    return T, S + b2


def _diag(X, w_var, a_var):
    nx = (X * X).sum(2)
    S = np.zeros_like(nx)
    q = 0.0
    for t in range(X.shape[1]):
        S[:, t] = w_var * q + a_var * nx[:, t]
        q = S[:, t] / 2
    return S


def rntk(X1, X2, positions, lam=1.0, d=1, cW=1.0, cA=0.0, nngp=False, blocks="full",
         w_var=2.0, a_var=2.0, b_var=1.0):  # fmt: skip
    """Recurrent NTK (or NNGP) over all pairs at once, looping over the (t, u) cells.

    ``blocks="full"``: (n1, n2, P, P); ``"sum"``: (n1, n2), the sum over position pairs.
    """
    n1, L, _ = X1.shape
    n2 = X2.shape[0]
    pos = list(positions)
    sa, sb = _diag(X1, w_var, a_var), _diag(X2, w_var, a_var)  # S(t, t)
    P = len(pos)
    out = np.zeros((n1, n2, P, P)) if blocks == "full" else np.zeros((n1, n2))
    deltas = sorted({u - t for t in pos for u in pos})
    for delta in deltas:
        q = np.zeros((n1, n2))
        th = np.zeros((n1, n2))
        vd = np.zeros((n1, n2))
        t = max(0, -delta)
        while t < L and t + delta < L:
            u = t + delta
            g = X1[:, t] @ X2[:, u].T  # <x_t, x'_u>
            S = w_var * q + a_var * g
            th = cW * q + cA * g + w_var * vd * th
            q, vd = _moments(S, sa[:, t][:, None], sb[:, u][None, :])
            if t in pos and u in pos:
                val = lam**2 * b_var / d * (q if nngp else vd * th)
                if blocks == "full":
                    out[:, :, pos.index(t), pos.index(u)] = val
                else:
                    out += val
            t += 1
    return out


def rntk_diag(X1, X2, positions, lam=1.0, d=1, cW=1.0, cA=0.0, w_var=2.0, a_var=2.0, b_var=1.0):
    """Position-diagonal blocks ``K[(x, j), (x', j)]``: (n1, n2, P); only the delta = 0 diagonal."""
    n1, L, _ = X1.shape
    n2 = X2.shape[0]
    pos = list(positions)
    sa, sb = _diag(X1, w_var, a_var), _diag(X2, w_var, a_var)
    out = np.zeros((n1, n2, len(pos)))
    q = np.zeros((n1, n2))
    th = np.zeros((n1, n2))
    vd = np.zeros((n1, n2))
    for t in range(L):
        g = X1[:, t] @ X2[:, t].T
        S = w_var * q + a_var * g
        th = cW * q + cA * g + w_var * vd * th
        q, vd = _moments(S, sa[:, t][:, None], sb[:, t][None, :])
        if t in pos:
            out[:, :, pos.index(t)] = lam**2 * b_var / d * vd * th
    return out
