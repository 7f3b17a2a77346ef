"""Jitted kernels of the Elman ReLU RNN (private; see :mod:`pacsim.models.rnn`).

Shapes: ``W (m, m)``, ``A (m, d_in)``, ``B (d, m)``; one sample ``x (L, d_in)``, ``y (L, d)``;
workspaces ``H (L+1, m)`` with ``H[0] = h_0 = 0`` and ``H[t+1] = h_t`` for 0-based position
``t``, ``D (L, m)`` the back-propagated pre-activation gradients, ``g (m,)``.

The kernels validate nothing and allocate only small scratch; the wrapper checks dtypes and
shapes. The same ``_sample_forward``/``_sample_backward`` pair serves ``_loss_and_grad`` and
``_sgd_chunk``, so the code that SGD runs is the code the gradient tests check.
"""

from __future__ import annotations

import numpy as np

from .._numba import jit


@jit
def _sample_forward(W, A, x, H):
    """Fill ``H[1:]`` with ``h_t = ReLU(W h_{t-1} + A x_t)``; ``H[0]`` must be zero."""
    m = W.shape[0]
    L, d_in = x.shape
    for t in range(L):
        for i in range(m):
            s = H[0, 0] * 0  # typed zero (H[0] is h_0 = 0)
            for k in range(m):
                s += W[i, k] * H[t, k]
            for k in range(d_in):
                s += A[i, k] * x[t, k]
            H[t + 1, i] = s if s > 0 else 0


@jit
def _sample_backward(W, B, y, H, lam, scored, D, g):
    """Back-propagate one sample through time; return its loss.

    Loss ``0.5 * sum_{t scored} ||lam B h_t - y_t||^2``. Writes ``D[t] = dLoss/dz_t`` (the
    pre-activation gradient at position ``t``), so that ``dLoss/dW = sum_t outer(D[t], H[t])``.
    """
    m = W.shape[0]
    d = B.shape[0]
    L = D.shape[0]
    loss = 0.0
    g[:] = 0  # dLoss/dh_t arriving from later positions
    for t in range(L - 1, -1, -1):
        if scored[t]:
            for s in range(d):
                yhat = H[0, 0] * 0
                for i in range(m):
                    yhat += B[s, i] * H[t + 1, i]
                r = lam * yhat - y[t, s]
                loss += 0.5 * float(r) * float(r)
                c = lam * r
                for i in range(m):
                    g[i] += c * B[s, i]
        for i in range(m):  # ReLU gate: dz = dh * 1[h > 0]
            D[t, i] = g[i] if H[t + 1, i] > 0 else 0
        g[:] = 0
        for i in range(m):  # g = W^T D[t], row-wise axpy skipping the zero gates
            di = D[t, i]
            if di != 0:
                for k in range(m):
                    g[k] += di * W[i, k]
    return loss


@jit
def _loss_and_grad(W, A, B, X, Y, lam, scored, gW, H, D, g):
    """Total loss over the batch; ``gW`` receives the summed gradient (not divided by n)."""
    n = X.shape[0]
    m = W.shape[0]
    L = X.shape[1]
    gW[:, :] = 0
    total = 0.0
    for j in range(n):
        _sample_forward(W, A, X[j], H)
        total += _sample_backward(W, B, Y[j], H, lam, scored, D, g)
        for i in range(m):  # gW[i] += sum_t D[t, i] * h_{t-1}
            for t in range(L):
                dti = D[t, i]
                if dti != 0:
                    for k in range(m):
                        gW[i, k] += dti * H[t, k]
    return total


@jit
def _sgd_chunk(W, A, B, X, Y, order, lam, eta, scored, losses, H, D, g):
    """Vanilla SGD, batch 1: one step per index in ``order``, updating ``W`` in place.

    ``losses[k]`` receives the loss of step ``k`` before its update. Returns the number of
    steps taken; fewer than ``len(order)`` when a loss is not finite (that step is not applied).
    """
    m = W.shape[0]
    L = X.shape[1]
    for k in range(order.shape[0]):
        j = order[k]
        _sample_forward(W, A, X[j], H)
        loss = _sample_backward(W, B, Y[j], H, lam, scored, D, g)
        losses[k] = loss
        if not np.isfinite(loss):
            return k
        # W -= eta * sum_t outer(D[t], H[t]), one row at a time so the row stays in cache.
        for i in range(m):
            for t in range(L):
                c = eta * D[t, i]
                if c != 0:
                    for kk in range(m):
                        W[i, kk] -= c * H[t, kk]
    return order.shape[0]


@jit
def _forward_batch(W, A, B, X, lam, Yhat):
    """Outputs ``Yhat[:, t] = lam * B h_t`` for a batch, one GEMM per position (BLAS)."""
    n, L, _ = X.shape
    m = W.shape[0]
    h = np.zeros((n, m), dtype=W.dtype)
    for t in range(L):
        xt = np.ascontiguousarray(X[:, t, :])
        h = np.maximum(h @ W.T + xt @ A.T, 0)  # (n, m)
        Yhat[:, t, :] = lam * (h @ B.T)
