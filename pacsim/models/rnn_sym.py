"""The symmetric ("doubling", antisymmetric-initialisation) RNN: two copies, ``f0 = 0`` exactly.

Two copies ``p1``, ``p2`` of :class:`pacsim.models.rnn.RNNParams` start from identical weights
and are trained jointly as one model::

    f(x) = (f_1(x) - f_2(x)) / sqrt(2),        f_i(x) = lam B_i h_t(x; p_i)

so ``f = 0`` exactly at initialisation, and the tangent kernel of ``f`` is
``(K_1 + K_2) / 2``, which is one copy's kernel at initialisation (the copies are equal). The
loss of a sample is that of the plain model, ``sum over scored t of 0.5 ||f_t - y_t||^2``, so
with ``r_t = f_t - y_t``::

    grad_{p1} = + J_1^T r / sqrt(2),      grad_{p2} = - J_2^T r / sqrt(2).

A plain per-sample step of copy 1 towards the target ``f_1 - r / sqrt(2)`` has the residual
``r / sqrt(2)``, hence exactly the gradient ``J_1^T r / sqrt(2)``; copy 2 steps towards
``f_2 + r / sqrt(2)``. :func:`sgd_chunk` does this per sample in one jitted loop that reuses
the per-sample forward/backward kernels of :mod:`pacsim.models._rnn_jit` (``_sample``,
``_apply``): two forward passes give ``f_1``, ``f_2`` and ``r``, then each copy takes its
plain step. Both gradients are taken at the weights before the step, as in vanilla SGD.

Sources: the antisymmetrical initialisation (ASI) trick of Zhang, Xu, Luo & Ma 2019
(arXiv 1905.07777, abstract: it removes the part of the generalisation error due to a random
non-zero initial output); Chizat, Oyallon & Bach 2019 (arXiv 1812.07956, introduction): a model
trains in the lazy regime when its output is close to zero at initialisation.
"""

from __future__ import annotations

import math

import numpy as np

from .._numba import jit
from . import _rnn_jit, rnn

_SQRT_HALF = 1.0 / math.sqrt(2.0)


def forward(p1: rnn.RNNParams, p2: rnn.RNNParams, X: np.ndarray, lam: float = 1.0):
    """``(f_1 - f_2) / sqrt(2)`` at every position, shape (n, L, d), in the weights' dtype."""
    Y = rnn.forward(p1, X, lam) - rnn.forward(p2, X, lam)
    return (Y * p1.dtype.type(_SQRT_HALF)).astype(p1.dtype, copy=False)


def copy_targets(F1, F2, Y):
    """The per-copy targets ``(f_1 - r/sqrt(2), f_2 + r/sqrt(2))`` with ``r = f - Y`` (arrays
    of one shape; used by the batch gradient, the jitted chunk does the same per sample)."""
    R = (F1 - F2) * _SQRT_HALF - Y
    return F1 - R * _SQRT_HALF, F2 + R * _SQRT_HALF


def loss_and_grad(p1, p2, X, Y, lam=1.0, positions=None, *, trained=("W",), K=None):
    """Mean loss of the symmetric model and the gradients ``(g1, g2)`` of both copies."""
    F1, F2 = rnn.forward(p1, X, lam), rnn.forward(p2, X, lam)
    Y1, Y2 = copy_targets(F1, F2, np.asarray(Y, dtype=p1.dtype))
    loss, g1 = rnn.loss_and_grad(p1, X, Y1, lam, positions, trained=trained, K=K)
    _, g2 = rnn.loss_and_grad(p2, X, Y2, lam, positions, trained=trained, K=K)
    # each copy's residual is r / sqrt(2): its loss is half the model's
    return 2.0 * loss, g1, g2


def sgd_chunk(p1, p2, X, Y, eta, lam=1.0, positions=None, order=None, *, trained=("W",),
              K=None):  # noqa: N803
    """Vanilla SGD of the symmetric model over samples ``order`` of ``X``, both copies in place.

    Same contract as :func:`pacsim.models.rnn.sgd_chunk`: returns ``(n_steps, losses)``, with
    ``n_steps < len(order)`` when the loss of step ``n_steps`` was not finite (the step is not
    applied) or a ReLU ``W`` update overflowed.
    """
    X, Y, scored = rnn._as_batch(p1, X, Y, positions)
    tW, tA, tB = rnn._trained_flags(trained)
    K = rnn._as_k(K, X.shape[1])
    if order is None:
        order = np.arange(X.shape[0], dtype=np.int64)
    order = np.ascontiguousarray(order, dtype=np.int64)
    if order.size and (order.min() < 0 or order.max() >= X.shape[0]):
        raise ValueError("order has indices outside the batch")
    losses = np.empty(order.shape[0], dtype=np.float64)
    L = X.shape[1]
    ws1, ws2 = rnn._workspace(p1, L), rnn._workspace(p2, L)
    V1, C1, b1, use_c = rnn._gate_arrays(p1, tA)
    V2, C2, b2, _ = rnn._gate_arrays(p2, tA)
    cast = p1.dtype.type
    W1, W2 = rnn._kernel_w(p1), rnn._kernel_w(p2)
    buf = np.zeros((4, L, p1.d), dtype=p1.dtype)
    n_steps = _sgd_chunk(
        rnn._CELL_CODE[p1.cell], W1, p1.A, p1.B, V1, C1, b1, W2, p2.A, p2.B, V2, C2, b2,
        X, Y, order, cast(lam), cast(eta), cast(_SQRT_HALF), scored, K, tW, tA, tB, use_c,
        losses, buf, *ws1, *ws2,
    )  # fmt: skip
    if tW and W1 is not p1.W:  # the ReLU kernels work on W^T
        p1.W[...] = W1.T
        p2.W[...] = W2.T
    return int(n_steps), losses


@jit
def _sgd_chunk(cell, W1, A1, B1, V1, C1, b1, W2, A2, B2, V2, C2, b2, X, Y, order, lam, eta,
               s, scored, K, tW, tA, tB, use_c, losses, buf,
               H1, U1, Z1, D1, G1, R1, S1, I1, c1, H2, U2, Z2, D2, G2, R2, S2, I2, c2):
    """Per step: forward both copies (``F``), ``r = s (F1 - F2) - y`` (``s = 1/sqrt(2)``),
    the model's loss ``0.5 sum_t ||r_t||^2``, then a plain step of each copy towards its target
    (module docstring). ``buf`` (4, L, d): ``F1, F2`` and the two targets."""
    relu = cell == _rnn_jit.RELU
    if relu and order.shape[0] > 0 and not (_rnn_jit._all_finite(W1)
                                            and _rnn_jit._all_finite(W2)):
        losses[0] = np.nan
        return 0
    L = X.shape[1]
    d = B1.shape[0]
    zero = W1.dtype.type(0)
    need_back = tW or tA
    Din1 = G1 if cell == _rnn_jit.MINIMAL else D1
    Din2 = G2 if cell == _rnn_jit.MINIMAL else D2
    F1, F2, T1, T2 = buf[0], buf[1], buf[2], buf[3]
    T1[:, :] = zero
    for k in range(order.shape[0]):
        j = order[k]
        x = X[j]
        # forward passes with a zero target: R[t] = f_t at the scored positions
        _rnn_jit._sample(cell, W1, A1, B1, V1, C1, b1, x, T1, lam, scored, K, False, False,
                         use_c, H1, U1, Z1, D1, G1, R1, S1, I1)
        _rnn_jit._sample(cell, W2, A2, B2, V2, C2, b2, x, T1, lam, scored, K, False, False,
                         use_c, H2, U2, Z2, D2, G2, R2, S2, I2)
        loss = 0.0
        for t in range(L):
            if scored[t]:
                for q in range(d):
                    F1[t, q] = R1[t, q]
                    F2[t, q] = R2[t, q]
                    r = s * (R1[t, q] - R2[t, q]) - Y[j, t, q]
                    loss += 0.5 * float(r) * float(r)
                    T2[t, q] = r
        losses[k] = loss
        if not np.isfinite(loss):
            return k
        for t in range(L):
            if scored[t]:
                for q in range(d):
                    r = T2[t, q]
                    T2[t, q] = F2[t, q] + s * r
                    F1[t, q] = F1[t, q] - s * r  # copy 1's target
        _rnn_jit._sample(cell, W1, A1, B1, V1, C1, b1, x, F1, lam, scored, K, need_back, tA,
                         use_c, H1, U1, Z1, D1, G1, R1, S1, I1)
        ok1 = _rnn_jit._apply(-eta, lam, x, H1, D1, Din1, R1, scored, tW, tA, tB, W1, A1, B1,
                              I1, c1, relu)
        _rnn_jit._sample(cell, W2, A2, B2, V2, C2, b2, x, T2, lam, scored, K, need_back, tA,
                         use_c, H2, U2, Z2, D2, G2, R2, S2, I2)
        ok2 = _rnn_jit._apply(-eta, lam, x, H2, D2, Din2, R2, scored, tW, tA, tB, W2, A2, B2,
                              I2, c2, relu)
        if not (ok1 and ok2):
            return k
    return order.shape[0]


def outputs(p: rnn.RNNParams, X: np.ndarray, lam: float = 1.0, positions=None) -> np.ndarray:
    """``lam B h_t`` at the scored ``positions`` (zero elsewhere), shape (n, L, d), from the
    single-threaded per-sample forward kernel: no (n, L, m) states are kept, and no BLAS
    threads start (``f0 = "subtract"`` needs ``f_0`` of every training chunk)."""
    X, _, scored = rnn._as_batch(p, X, np.zeros((X.shape[0], X.shape[1], p.d)), positions)
    out = np.zeros((X.shape[0], X.shape[1], p.d), dtype=p.dtype)
    V, C, bias, use_c = rnn._gate_arrays(p, False)
    _outputs(rnn._CELL_CODE[p.cell], rnn._kernel_w(p), p.A, p.B, V, C, bias, X,
             p.dtype.type(lam), scored, use_c, out, *rnn._workspace(p, X.shape[1]))
    return out


@jit
def _outputs(cell, W, A, B, V, C, bias, X, lam, scored, use_c, out,
             H, U, Z, D, G, R, S, I, c):  # noqa: E741
    """``out[k, t] = lam B h_t(x_k)`` at the scored ``t`` (forward passes, zero targets)."""
    L = X.shape[1]
    d = B.shape[0]
    zero_y = np.zeros((L, d), dtype=W.dtype)
    if cell == _rnn_jit.RELU and not _rnn_jit._all_finite(W):
        out[:] = np.nan
        return
    for k in range(X.shape[0]):
        _rnn_jit._sample(cell, W, A, B, V, C, bias, X[k], zero_y, lam, scored, L, False, False,
                         use_c, H, U, Z, D, G, R, S, I)
        for t in range(L):
            if scored[t]:
                for q in range(d):
                    out[k, t, q] = R[t, q]


def warmup(dtypes=("float64",)) -> None:
    """Compile (or load from the on-disk cache) the symmetric chunk and :func:`outputs` for
    ``dtypes``, every cell, on tiny inputs (before workers start)."""
    for dtype in dtypes:
        rng = np.random.default_rng(0)
        for cell in rnn.CELLS:
            p1 = rnn.init_params(2, 2, 1, rng, dtype, cell=cell)
            p2 = p1.copy()
            X = np.ones((1, 3, 2), dtype=dtype)
            Y = np.zeros((1, 3, 1), dtype=dtype)
            sgd_chunk(p1, p2, X, Y, 0.0, positions=[2])
            outputs(p1, X, positions=[2])
