"""The symmetric ("doubling") feed-forward network: two copies, ``f0 = 0`` exactly.

As :mod:`pacsim.models.rnn_sym` for the networks of :mod:`pacsim.models.ff`: two copies
``p1``, ``p2`` with identical initial weights, ``f = (f_1 - f_2) / sqrt(2)``, loss
``0.5 ||f - y||^2``, so with ``r = f - y`` the gradients are ``+-J_i^T r / sqrt(2)``. The
feed-forward kernels separate the forward pass from the back-propagation of a residual, so one
step is two forward passes, the residual ``+-r / sqrt(2)`` written into each copy's workspace,
and two back-propagations (``_ff_jit._backprop``, ``_sample_apply``): about twice the cost of
one plain step. Sources as in :mod:`pacsim.models.rnn_sym`.
"""

from __future__ import annotations

import math

import numpy as np

from .._numba import jit
from . import _ff_jit, ff

_SQRT_HALF = 1.0 / math.sqrt(2.0)


def forward(p1: ff.FFParams, p2: ff.FFParams, X: np.ndarray) -> np.ndarray:
    """``(f_1 - f_2) / sqrt(2)``, shape (n, d_out), in the weights' dtype."""
    return ((ff.forward(p1, X) - ff.forward(p2, X)) * p1.dtype.type(_SQRT_HALF)).astype(
        p1.dtype, copy=False)


def loss_and_grad(p1, p2, X, Y):
    """Mean loss of the symmetric model and the gradients ``(g1, g2)`` (:class:`ff.FFGrad`)."""
    F1, F2 = ff.forward(p1, X), ff.forward(p2, X)
    R = (F1 - F2) * _SQRT_HALF - np.asarray(Y, dtype=p1.dtype)
    loss, g1 = ff.loss_and_grad(p1, X, F1 - R * _SQRT_HALF)
    _, g2 = ff.loss_and_grad(p2, X, F2 + R * _SQRT_HALF)
    return 2.0 * loss, g1, g2  # each copy's residual is r / sqrt(2): half the model's loss


def sgd_chunk(p1, p2, X, Y, eta, order=None, rates=None):
    """Vanilla SGD of the symmetric model over samples ``order`` of ``X``, both copies in place
    (contract of :func:`pacsim.models.ff.sgd_chunk`)."""
    X, Y = ff._as_batch(p1, X, Y)
    if order is None:
        order = np.arange(X.shape[0], dtype=np.int64)
    order = np.ascontiguousarray(order, dtype=np.int64)
    if order.size and (order.min() < 0 or order.max() >= X.shape[0]):
        raise ValueError("order has indices outside the batch")
    losses = np.empty(order.shape[0], dtype=np.float64)
    c = (-eta * ff._as_rates(rates)).astype(p1.dtype)
    n_steps = _sgd_chunk(ff._CODE[p1.arch], p1.arrays(), p2.arrays(), X, Y, order, c,
                         p1.dtype.type(_SQRT_HALF), losses, ff._workspace(p1), ff._workspace(p2))
    return int(n_steps), losses


@jit
def _sgd_chunk(arch, P1, P2, X, Y, order, c, s, losses, ws1, ws2):
    """Per step: forward both copies, ``r = s (out_1 - out_2) - y`` (``s = 1/sqrt(2)``), the
    model's loss ``0.5 ||r||^2``; copy 1 back-propagates ``s r`` and copy 2 ``-s r``, and both
    are updated by ``c * gradient`` (``c = -eta * rates``)."""
    out1, r1 = ws1[3], ws1[4]
    out2, r2 = ws2[3], ws2[4]
    for k in range(order.shape[0]):
        j = order[k]
        _ff_jit._sample_forward(arch, P1, X[j], ws1)
        _ff_jit._sample_forward(arch, P2, X[j], ws2)
        loss = 0.0
        for q in range(out1.shape[0]):
            r = s * (out1[q] - out2[q]) - Y[j, q]
            loss += 0.5 * float(r) * float(r)
            r1[q] = s * r
            r2[q] = -s * r
        losses[k] = loss
        if not np.isfinite(loss):
            return k
        _ff_jit._backprop(arch, P1, ws1)
        _ff_jit._backprop(arch, P2, ws2)
        _ff_jit._sample_apply(arch, X[j], ws1, P1, c)
        _ff_jit._sample_apply(arch, X[j], ws2, P2, c)
    return order.shape[0]


def warmup(dtypes=("float64",)) -> None:
    """Compile (or load from the on-disk cache) the symmetric chunk for ``dtypes``."""
    for dtype in dtypes:
        rng = np.random.default_rng(0)
        X = np.ones((1, 2), dtype=dtype)
        Y = np.zeros((1, 1), dtype=dtype)
        for arch in ff.ARCHS:
            p = ff.init_params(arch, 2, 2, 1, rng, dtype)
            sgd_chunk(p, p.copy(), X, Y, 0.0)
