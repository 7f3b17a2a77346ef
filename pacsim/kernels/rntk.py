"""Recurrent NTK and NNGP of exactly pacsim's Elman ReLU RNN (:mod:`pacsim.models.rnn`).

The network (AZL's parameterisation, arXiv 1902.01028; PG21's B ~ N(0, 2/d), arXiv 2106.00047)::

    h_0 = 0,   h_t = ReLU(W h_{t-1} + A x_t),   y_t = lam * B h_t      (t = 1..L, 1-based)
    W (m, m) ~ N(0, w_var/m),  A (m, d_in) ~ N(0, a_var/m),  B (d, m) ~ N(0, b_var/d)

with pacsim's defaults ``w_var = a_var = 2`` and ``b_var = 1`` (modes ``azl`` and ``plain``;
``pg21`` has ``b_var = 2``). ``X`` are the network's *encoded* inputs of shape (n, L, d_in),
e.g. from :func:`pacsim.models.rnn.azl_inputs`; ``positions`` are 0-based like everywhere in
pacsim (position ``p`` is 1-based time ``t = p + 1``; AZL scores ``2..L-1``, PG21 ``L-1``).
Covered: the ReLU cell with Gaussian ``W`` (``init="azl"``; ``"critical"`` is the same law for
ReLU) and full BPTT. Not covered: the tanh and minimalRNN cells (no closed form), the
orthogonal init (a different limit for a weight-tied recurrence), truncated BPTT(K).

What is returned (the normalisation)
------------------------------------
For outputs ``(x, j, s)`` and ``(x', j', s')`` (sample, scored position, output coordinate) the
empirical NTK with respect to the trained matrices is::

    eNTK = sum_{M in train} < d y_{j,s}(x) / dM , d y_{j',s'}(x') / dM >_F

It grows like ``m``: as ``m -> infinity``, ``eNTK / m -> delta_{s s'} * rntk(...)[x, x', j, j']``.
So :func:`rntk` returns the limit of ``eNTK / m``, and :func:`pacsim.kernels.entk.rnn` with
``per_width=True`` returns exactly ``eNTK / m`` averaged over ``s = s'``: the two compare entry by
entry (``tests/test_kernels_rnn.py`` checks it at m = 256, 1024, 4096). The raw kernel that SGD
sees, ``W <- W - eta grad``, is ``m * rntk`` per output coordinate (``rnn.ntk_trace`` is
``d * m`` times the trace of the ``blocks="diag"`` kernel on identical inputs). Cross-output
blocks (``s != s'``) vanish in the limit. If ``B`` is trained too, its (width-independent)
kernel ``lam^2 q(j, j')`` adds to the raw kernel: ``m * rntk + rnngp(lam=lam, d=1, b_var=1)``.

:func:`rnngp` returns the output covariance at initialisation,
``E[y_{j,s}(x) y_{j',s}(x')] -> lam^2 (b_var/d) q(j, j')`` with ``q = <h_j(x), h_j'(x')>``;
with ``lam = 1, d = 1, b_var = 1`` it is ``q`` itself, the infinite-width kernel of a ridge
readout on the hidden states (the "random features" / conjugate-kernel baseline).

Derivation (the recurrent NTK of Alemohammad et al. 2021, arXiv 2006.10246, adapted to W-only
training, h_0 = 0 and per-position outputs)
-------------------------------------------------------------------------------------------
Pre-activations ``z_t = W h_{t-1} + A x_t`` have, coordinate-wise in the limit, the joint
covariance ``S(t, t') / m`` with::

    S(t, t') = w_var q(t-1, t'-1) + a_var <x_t, x'_t'>,      q(0, .) = q(., 0) = 0
    q(t, t') = <h_t(x), h_t'(x')> -> m E[relu(u) relu(v)] = V(S(t,t'); S(t,t), S(t',t'))
    V(c; a, b)  = sqrt(ab) (sin T + (pi - T) cos T) / (2 pi),   T = arccos(c / sqrt(ab))
    Vd(t, t')   = E[relu'(u) relu'(v)] = (pi - T) / (2 pi)

(the ``1/m`` cancels: ``V`` is homogeneous of degree 1 and ``Vd`` of degree 0). On the
diagonal ``q(t, t) = S(t, t) / 2`` (for the defaults ``sum_{s <= t} ||x_s||^2``).
Back-propagation from output ``(j, s)``: ``D_j = lam relu'(z_j) * B_s``,
``D_t = relu'(z_t) * (W^T D_{t+1})``, and ``d y_{j,s}/dW = sum_{t <= j} D_t h_{t-1}^T``,
``d y_{j,s}/dA = sum_{t <= j} D_t x_t^T``. Hence::

    eNTK = sum_{t <= j, t' <= j'} <D_t, D'_t'> (c_W <h_{t-1}, h'_{t'-1}> + c_A <x_t, x'_t'>)

With ``B`` independent and zero-mean the gradient-independence assumption holds in the limit
(Yang 2020, Tensor Programs II; Alemohammad et al. 2021): ``<D_t, D'_t'> -> 0`` unless
``j - t = j' - t'`` (the lags agree), ``<D_j, D'_j'> -> lam^2 delta_{ss'} (b_var m / d) Vd(j, j')``
and each further step back multiplies by ``m * (w_var/m) Vd = w_var Vd``. Collecting the lags::

    Theta(t, t') = c_W q(t-1, t'-1) + c_A <x_t, x'_t'> + w_var Vd(t-1, t'-1) Theta(t-1, t'-1)
                   (Theta(0, .) = 0, and Vd(0, .) never multiplies anything)
    rntk[x, x', j, j'] = lam^2 (b_var / d) Vd(j, j') Theta(j, j')

with ``c_W = 1`` if ``"W"`` is trained (``h_0 = 0`` makes the ``t = 1`` term vanish) and
``c_A = 1`` if ``"A"`` is (PG21 mode). Every quantity on a diagonal ``t' - t = delta`` depends
only on that diagonal, so one pass per needed ``delta`` costs ``O(L)`` cells per pair of
samples: ``O(n1 n2 L)`` for ``blocks="diag"`` and ``O(n1 n2 L^2)`` for all position pairs.
Sanity value: identical inputs give ``w_var Vd = 1`` (defaults), and then
``d * m * sum_j rntk[x, x, j, j] = lam^2 (m/2) sum_j sum_{t<j} q_t``, which is
:func:`pacsim.models.rnn.ntk_trace`.

Numerics: float64; the arccos is the vectorisable :func:`pacsim.kernels._math.acos` (1 ulp);
cells whose two input prefixes are identical (the shared start token, a sequence with itself)
use ``cos T = 1`` exactly instead of a rounded ratio (which would cost ~1e-8 in ``T``). A zero
pre-activation variance (all-zero prefix) gives ``q = 0`` and ``Vd = 0`` (``relu'(0) = 0`` as in
:mod:`pacsim.models.rnn`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._numba import jit
from ._math import acos

__all__ = ["rntk", "rnngp"]

_BLOCKS = {"full": 0, "diag": 1, "sum": 2}
_TRAIN = ("W", "A")


def rntk(
    X1,
    X2=None,
    positions: Sequence[int] | None = None,
    *,
    lam: float = 1.0,
    d: int = 1,
    train: Sequence[str] = ("W",),
    blocks: str = "full",
    w_var: float = 2.0,
    a_var: float = 2.0,
    b_var: float = 1.0,
) -> np.ndarray:
    """Infinite-width limit of ``eNTK / m`` of pacsim's RNN (module docstring), float64.

    Parameters
    ----------
    X1 : array_like of shape (n1, L, d_in)
        Encoded inputs (e.g. :func:`pacsim.models.rnn.azl_inputs`).
    X2 : array_like of shape (n2, L, d_in) or None
        ``None`` (or ``X1`` itself): the symmetric Gram matrix of ``X1`` (half the work).
    positions : sequence of int or None
        0-based output positions ``j`` (AZL: ``range(2, L)``); ``None``: every position.
    lam : float
        Output scale, as in :func:`pacsim.models.rnn.forward`.
    d : int
        Output dimension (the readout variance is ``b_var/d``).
    train : sequence of {"W", "A"}
        Trained matrices: ``("W",)`` is AZL mode, ``("W", "A")`` PG21 mode.
    blocks : {"full", "diag", "sum"}
        ``"full"``: every position pair, shape (n1, n2, P, P), memory O(n1 n2 P^2);
        ``"diag"``: ``j = j'`` only, shape (n1, n2, P);
        ``"sum"``: the kernel of the summed scored output ``sum_j y_j``, i.e. the sum over all
        ``(j, j')`` pairs, shape (n1, n2), memory O(n1 n2).
    w_var, a_var, b_var : float
        Initial variances: ``W ~ N(0, w_var/m)``, ``A ~ N(0, a_var/m)``, ``B ~ N(0, b_var/d)``.
        The defaults are pacsim's ``azl`` mode (and ``plain``); ``pg21`` has ``b_var = 2``.

    Returns
    -------
    ndarray of float64, shape as given by ``blocks``
    """
    cW, cA = _train_coefs(train)
    return _run(X1, X2, positions, lam, d, cW, cA, blocks, 0, w_var, a_var, b_var)


def rnngp(
    X1,
    X2=None,
    positions: Sequence[int] | None = None,
    *,
    lam: float = 1.0,
    d: int = 1,
    blocks: str = "full",
    w_var: float = 2.0,
    a_var: float = 2.0,
    b_var: float = 1.0,
) -> np.ndarray:
    """Infinite-width output covariance ``E[y_{j,s}(x) y_{j',s}(x')] = lam^2 (b_var/d) q(j, j')``.

    Same arguments and shapes as :func:`rntk`. With ``lam=1, d=1, b_var=1`` it is
    ``q(j, j') = lim <h_j(x), h_j'(x')>``, the kernel of a ridge readout on the hidden states;
    ``lam**2 * q`` is also the gradient kernel of ``B`` when ``B`` is trained (no factor m).
    """
    return _run(X1, X2, positions, lam, d, 0.0, 0.0, blocks, 1, w_var, a_var, b_var)


# Internals


def _train_coefs(train):
    if isinstance(train, str):
        train = (train,)
    bad = set(train) - set(_TRAIN)
    if bad or not train:
        raise ValueError(f"train must be a non-empty subset of {_TRAIN}, got {tuple(train)}")
    return (1.0 if "W" in train else 0.0), (1.0 if "A" in train else 0.0)


def _as_seq(X, name):
    X = np.ascontiguousarray(X, dtype=np.float64)
    if X.ndim != 3:
        raise ValueError(f"{name} must have shape (n, L, d_in), got {X.shape}")
    return X


def _positions(positions, L):
    if positions is None:
        return np.arange(L, dtype=np.int64)
    pos = np.asarray(positions, dtype=np.int64).ravel()
    if pos.size == 0 or pos.min() < 0 or pos.max() >= L or np.unique(pos).size != pos.size:
        raise ValueError(f"positions must be distinct indices in [0, {L}), got {pos.tolist()}")
    return pos


def _diag_S(X, sw2, sa2):
    """``S(t, t)`` (n, L) of every sample: ``S = sw2 q_{t-1} + sa2 ||x_t||^2``, ``q_t = S / 2``."""
    nx = np.einsum("itk,itk->it", X, X)
    S = np.empty_like(nx)
    q = np.zeros(X.shape[0])
    for t in range(X.shape[1]):
        S[:, t] = sw2 * q + sa2 * nx[:, t]
        q = S[:, t] / 2.0
    return S


def _run(X1, X2, positions, lam, d, cW, cA, blocks, kind, w_var=2.0, a_var=2.0, b_var=1.0):
    for name, v in (("w_var", w_var), ("a_var", a_var), ("b_var", b_var)):
        if not (np.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be positive, got {v}")
    if blocks not in _BLOCKS:
        raise ValueError(f"blocks must be one of {tuple(_BLOCKS)}, got {blocks!r}")
    if int(d) < 1:
        raise ValueError("d must be >= 1")
    X1 = _as_seq(X1, "X1")
    sym = X2 is None or X2 is X1
    X2 = X1 if sym else _as_seq(X2, "X2")
    n1, L, d_in = X1.shape
    if X2.shape[1:] != (L, d_in):
        raise ValueError(f"X1 {X1.shape} and X2 {X2.shape} must share (L, d_in)")
    n2 = X2.shape[0]
    pos = _positions(positions, L)
    P = pos.size
    idx = np.full(L, -1, dtype=np.int64)  # position -> index in ``positions``
    idx[pos] = np.arange(P)
    mode = _BLOCKS[blocks]
    if mode == 1:
        deltas = np.zeros(1, dtype=np.int64)
    else:  # only the diagonals t' - t that join two scored positions
        deltas = np.unique((pos[None, :] - pos[:, None]).ravel()).astype(np.int64)
    # S(t, t) = w_var q_{t-1} + a_var ||x_t||^2 with q_t = S(t, t) / 2; X2 as (L, d_in, n2)
    sw2, sa2 = float(w_var), float(a_var)
    Sa = _diag_S(X1, sw2, sa2)
    Sb = np.ascontiguousarray(_diag_S(X2, sw2, sa2).T)
    X2T = np.ascontiguousarray(X2.transpose(1, 2, 0))
    shape = {0: (n1, n2, P, P), 1: (n1, n2, 1, P), 2: (n1, n2, 1, 1)}[mode]
    out = np.zeros(shape)
    scale = float(lam) ** 2 * float(b_var) / int(d)
    _rntk_kernel(X1, X2T, Sa, Sb, idx, deltas, scale, cW, cA, sw2, sa2, sym, mode, kind, P, out)
    return out.reshape({0: (n1, n2, P, P), 1: (n1, n2, P), 2: (n1, n2)}[mode])


@jit
def _dots(x, Y, g, eqv, track):
    """``g[j] = <x, Y[:, j]>``; if ``track``, ``eqv[j] = 1.0 if x == Y[:, j] else 0.0``."""
    n2 = g.shape[0]
    for j in range(n2):
        g[j] = 0.0
    if track:
        for j in range(n2):
            eqv[j] = 1.0
        for k in range(x.shape[0]):
            xk = x[k]
            for j in range(n2):
                yk = Y[k, j]
                g[j] += xk * yk
                eqv[j] = eqv[j] if xk == yk else 0.0
    else:
        for k in range(x.shape[0]):
            xk = x[k]
            for j in range(n2):
                g[j] += xk * Y[k, j]


@jit
def _cells(q, vd, th, same, g, eqv, sqb, isqb, sa, isa, cW, cA, sw2, sa2):
    """One cell ``(t, u)`` of the recursion for every ``j`` (branch-free, vectorised).

    In: ``q, vd, th`` of cell ``(t-1, u-1)``; out: those of ``(t, u)``. ``same`` tracks identical
    prefixes, for which ``cos T = 1`` exactly.
    """
    n2 = q.shape[0]
    for j in range(n2):
        sm = same[j] * eqv[j]
        same[j] = sm
        qp = q[j]
        gg = g[j]
        th[j] = cW * qp + cA * gg + sw2 * vd[j] * th[j]
        den = sa * sqb[j]
        rho = (sw2 * qp + sa2 * gg) * (isa * isqb[j])  # S(t, u) / den
        rho = min(max(rho, -1.0), 1.0)
        rho = 1.0 if sm > 0.0 else rho
        tt = acos(rho)
        st = np.sqrt(max((1.0 - rho) * (1.0 + rho), 0.0))
        pt = np.pi - tt
        q[j] = den * (st + pt * rho) * (0.5 / np.pi)
        vd[j] = pt * (0.5 / np.pi) if den > 0.0 else 0.0


@jit
def _emit(dst, q, vd, th, scale, kind, accumulate):
    """``dst[j] (+)= scale * (vd th if kind == 0 else q)`` (all ``j``)."""
    n2 = dst.shape[0]
    if kind == 0:
        if accumulate:
            for j in range(n2):
                dst[j] += scale * vd[j] * th[j]
        else:
            for j in range(n2):
                dst[j] = scale * vd[j] * th[j]
    else:
        if accumulate:
            for j in range(n2):
                dst[j] += scale * q[j]
        else:
            for j in range(n2):
                dst[j] = scale * q[j]


#: Rows per block in the symmetric case: X2 columns ``>= block start`` are copied contiguously.
_ROW_BLOCK = 128


@jit
def _rntk_kernel(X1, X2T, Sa, Sb, idx, deltas, scale, cW, cA, sw2, sa2, sym, mode, kind, P, out):
    """All pairs (i, j >= i if sym): one pass per diagonal ``delta``, vectorised over ``j``.

    ``Sa`` (n1, L) and ``Sb`` (L, n2) hold ``S(t, t)``. The loops over ``j`` live in small
    functions that always run over whole 1-D views starting at 0 (a start offset known only at
    run time stopped LLVM from vectorising them, 5x slower); in the symmetric case the columns
    from the start of each block of rows are copied to a contiguous array.
    """
    n1, L, d_in = X1.shape
    n2 = X2T.shape[2]
    q = np.empty(n2)
    vd = np.empty(n2)
    th = np.empty(n2)
    same = np.empty(n2)  # 1.0 while the two prefixes are identical (delta = 0 only)
    g = np.empty(n2)
    eqv = np.empty(n2)
    sqb = np.sqrt(Sb)
    isqb = np.zeros_like(Sb)
    for u in range(L):
        for j in range(n2):
            if sqb[u, j] > 0.0:
                isqb[u, j] = 1.0 / sqb[u, j]
    if mode == 0:
        buf = np.zeros((P, P, n2))
    elif mode == 1:
        buf = np.zeros((1, P, n2))
    else:
        buf = np.zeros((1, 1, n2))
    Xc = X2T
    b0 = 0
    for i in range(n1):
        if sym and i % _ROW_BLOCK == 0:
            b0 = i
            Xc = np.ascontiguousarray(X2T[:, :, b0:])
        j0 = i if sym else 0
        off = j0 - b0  # column j of this row is column j - b0 of Xc, g and eqv
        nb = n2 - b0
        buf[:, :, j0:] = 0.0
        for di in range(deltas.shape[0]):
            delta = deltas[di]
            s0 = 1.0 if delta == 0 else 0.0
            if delta != 0:
                eqv[:] = 0.0  # off the main diagonal prefixes are never identical
            q[:] = 0.0
            vd[:] = 0.0
            th[:] = 0.0
            same[:] = s0
            t = -delta if delta < 0 else 0
            while t < L and t + delta < L:
                u = t + delta
                _dots(X1[i, t], Xc[u], g[:nb], eqv[:nb], delta == 0)
                sa = np.sqrt(Sa[i, t])
                isa = 1.0 / sa if sa > 0.0 else 0.0
                _cells(q[j0:], vd[j0:], th[j0:], same[j0:], g[off:nb], eqv[off:nb],
                       sqb[u, j0:], isqb[u, j0:], sa, isa, cW, cA, sw2, sa2)  # fmt: skip
                a = idx[t]
                b = idx[u]
                if a >= 0 and b >= 0:
                    if mode == 0:
                        _emit(buf[a, b, j0:], q[j0:], vd[j0:], th[j0:], scale, kind, False)
                    elif mode == 1:
                        _emit(buf[0, a, j0:], q[j0:], vd[j0:], th[j0:], scale, kind, False)
                    else:
                        _emit(buf[0, 0, j0:], q[j0:], vd[j0:], th[j0:], scale, kind, True)
                t += 1
        # copy out (and mirror in the symmetric case); ``out`` is 4-D: (n1, n2, 1 or P, P or 1)
        nb0, nb1 = buf.shape[0], buf.shape[1]
        for j in range(j0, n2):
            for a in range(nb0):
                for b in range(nb1):
                    v = buf[a, b, j]
                    out[i, j, a, b] = v
                    if sym:
                        if mode == 0:
                            out[j, i, b, a] = v
                        else:
                            out[j, i, a, b] = v
