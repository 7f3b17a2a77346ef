"""Jitted kernels of the feed-forward ReLU networks (private; see :mod:`pacsim.models.ff`).

One set of kernels serves the three architectures, chosen by the integer code ``arch``::

    MLP2:    h1 = ReLU(W x + b1),                                 out = A h1
    MLP3:    h1 = ReLU(W x + b1),  h2 = ReLU(V h1 + b2),           out = A h2
    RESNET:  h1 = ReLU(W x + b1),  o1 = A h1,  h2 = ReLU(V o1 + b2),  out = o1 + A h2

Arguments are grouped: ``P = (W, b1, V, b2, A)`` (MLP2 passes empty ``V`` and ``b2``), the
per-sample workspace ``ws = (h1, o1, h2, out, r, d1, d2, e1)`` (all 1-D) and a target tuple ``G``
of the shapes of ``P``. The backward pass writes the pre-activation gradients ``d1 = dLoss/dz1``,
``d2 = dLoss/dz2``, the residual ``r = out - y`` and, for RESNET, ``e1 = dLoss/do1``; then
:func:`_sample_apply` adds ``c[a] * dLoss/dP[a]`` to ``G[a]`` for every array ``a``. With
``G = gradient buffers, c = 1`` that accumulates the gradient (``_loss_and_grad``); with
``G = P, c = -eta * rates`` it is the SGD step (``_sgd_chunk``). So the code that SGD runs is the
code the gradient tests check.

ReLU is ``s if not (s <= 0) else 0``: a NaN pre-activation stays NaN, so non-finite weights give a
non-finite loss and stop an SGD chunk. Its derivative is ``1[z > 0]`` (PyTorch's convention).
The kernels validate nothing; the wrappers check dtypes and shapes. (The batch forward pass
for prediction is three GEMMs in NumPy, in the wrapper: Numba adds nothing there but compile time.)
"""

from __future__ import annotations

import numpy as np

from .._numba import jit

MLP2 = 0
MLP3 = 1
RESNET = 2


@jit
def _relu_layer(W, b, x, h):
    """``h = ReLU(W x + b)``, NaN-propagating. ``W (m, n_in)``, ``b (m,)``, ``x (n_in,)``."""
    m, n_in = W.shape
    for i in range(m):
        s = b[i]
        for k in range(n_in):
            s += W[i, k] * x[k]
        h[i] = s if not (s <= 0) else 0


@jit
def _linear(A, h, out):
    """``out = A h``. ``A (k, m)`` with ``m >= 1``."""
    k, m = A.shape
    for r in range(k):
        s = A[r, 0] * h[0]
        for i in range(1, m):
            s += A[r, i] * h[i]
        out[r] = s


@jit
def _tmatvec_add(M, g, out):
    """``out += M^T g``, one row axpy per nonzero ``g[r]``; ``M (k, m)``, ``g (k,)``."""
    k, m = M.shape
    for r in range(k):
        gr = g[r]
        if gr != 0:
            for i in range(m):
                out[i] += gr * M[r, i]


@jit
def _backprop_gate(M, g, h, d):
    """``d = (M^T g) * 1[h > 0]``: the gradient at the pre-activation of ``h = ReLU(z)``."""
    d[:] = 0
    _tmatvec_add(M, g, d)
    for i in range(d.shape[0]):
        if not (h[i] > 0):
            d[i] = 0


@jit
def _outer_add(G, d, v, c):
    """``G += c * outer(d, v)`` row by row, skipping rows where ``c * d[i] == 0``."""
    if c == 0:
        return
    for i in range(G.shape[0]):
        ci = c * d[i]
        if ci != 0:
            for k in range(G.shape[1]):
                G[i, k] += ci * v[k]


@jit
def _axpy(g, d, c):
    """``g += c * d``."""
    if c == 0:
        return
    for i in range(g.shape[0]):
        g[i] += c * d[i]


@jit
def _sample_forward(arch, P, x, ws):
    """Fill ``h1, o1, h2, out`` of ``ws`` for one input ``x (d_in,)``."""
    W, b1, V, b2, A = P
    h1, o1, h2, out, r, d1, d2, e1 = ws
    _relu_layer(W, b1, x, h1)
    if arch == MLP2:
        _linear(A, h1, out)
    elif arch == MLP3:
        _relu_layer(V, b2, h1, h2)
        _linear(A, h2, out)
    else:
        _linear(A, h1, o1)
        _relu_layer(V, b2, o1, h2)
        _linear(A, h2, out)
        for s in range(out.shape[0]):
            out[s] += o1[s]


@jit
def _backprop(arch, P, ws):
    """From the residual ``r`` (``dLoss/dout``) of ``ws``, fill ``d1``, ``d2`` and ``e1``."""
    W, b1, V, b2, A = P
    h1, o1, h2, out, r, d1, d2, e1 = ws
    if arch == MLP2:
        _backprop_gate(A, r, h1, d1)
    elif arch == MLP3:
        _backprop_gate(A, r, h2, d2)  # d2 = (A^T r) * 1[z2 > 0]
        _backprop_gate(V, d2, h1, d1)  # d1 = (V^T d2) * 1[z1 > 0]
    else:
        _backprop_gate(A, r, h2, d2)  # d2 = (A^T r) * 1[z2 > 0]
        e1[:] = r  # dLoss/do1 = r (skip path) + V^T d2 (second block)
        _tmatvec_add(V, d2, e1)
        _backprop_gate(A, e1, h1, d1)  # d1 = (A^T e1) * 1[z1 > 0]


@jit
def _sample_backward(arch, P, y, ws):
    """Loss ``0.5 * ||out - y||^2`` of one sample (after :func:`_sample_forward`); fills the
    gradients of ``ws`` (``r``, ``d1``, ``d2``, ``e1``)."""
    out, r = ws[3], ws[4]
    loss = 0.0
    for s in range(out.shape[0]):
        r[s] = out[s] - y[s]
        loss += 0.5 * float(r[s]) * float(r[s])
    _backprop(arch, P, ws)
    return loss


@jit
def _sample_apply(arch, x, ws, G, c):
    """``G[a] += c[a] * dLoss/dP[a]`` for ``a`` in (W, b1, V, b2, A); ``c[a] == 0`` skips ``a``.

    ``dLoss/dW = outer(d1, x)``, ``dLoss/db1 = d1``, ``dLoss/dV = outer(d2, input of block 2)``,
    ``dLoss/db2 = d2``, ``dLoss/dA = outer(r, top hidden layer)`` (+ ``outer(e1, h1)`` for RESNET,
    whose ``A`` also makes ``o1``).
    """
    GW, Gb1, GV, Gb2, GA = G
    h1, o1, h2, out, r, d1, d2, e1 = ws
    _outer_add(GW, d1, x, c[0])
    _axpy(Gb1, d1, c[1])
    if arch == MLP2:
        _outer_add(GA, r, h1, c[4])
    elif arch == MLP3:
        _outer_add(GV, d2, h1, c[2])
        _axpy(Gb2, d2, c[3])
        _outer_add(GA, r, h2, c[4])
    else:
        _outer_add(GV, d2, o1, c[2])
        _axpy(Gb2, d2, c[3])
        _outer_add(GA, r, h2, c[4])
        _outer_add(GA, e1, h1, c[4])


@jit
def _loss_and_grad(arch, P, X, Y, G, ws, c):
    """Total loss over the batch; ``G`` (zeroed by the caller) receives the summed gradients
    (not divided by n), each multiplied by ``c`` (ones for the plain gradient)."""
    total = 0.0
    for j in range(X.shape[0]):
        _sample_forward(arch, P, X[j], ws)
        total += _sample_backward(arch, P, Y[j], ws)
        _sample_apply(arch, X[j], ws, G, c)
    return total


@jit
def _sgd_chunk(arch, P, X, Y, order, c, losses, ws):
    """Vanilla SGD, batch 1: one step per index in ``order``, updating ``P`` in place by
    ``P[a] += c[a] * dLoss/dP[a]`` (``c = -eta * rates``).

    ``losses[k]`` receives the loss of step ``k`` before its update. Returns the number of
    steps taken; fewer than ``len(order)`` when a loss is not finite (that step is not applied).
    """
    for k in range(order.shape[0]):
        j = order[k]
        _sample_forward(arch, P, X[j], ws)
        loss = _sample_backward(arch, P, Y[j], ws)
        losses[k] = loss
        if not np.isfinite(loss):
            return k
        _sample_apply(arch, X[j], ws, P, c)
    return order.shape[0]


@jit
def _ntk_trace(arch, P, X, rates, ws, traces):
    """``traces[j] = sum_s sum_a rates[a] * ||d out_s / dP[a]||^2`` at input ``X[j]``.

    One backward pass per output ``s`` with residual ``e_s``; ``||outer(d, v)||_F^2 =
    ||d||^2 ||v||^2``.
    """
    h1, o1, h2, out, r, d1, d2, e1 = ws
    k = out.shape[0]
    for j in range(X.shape[0]):
        x = X[j]
        _sample_forward(arch, P, x, ws)
        xx, h1h1 = _dot(x, x), _dot(h1, h1)
        h2h2, o1o1, h1h2 = _dot(h2, h2), _dot(o1, o1), _dot(h1, h2)
        total = 0.0
        for s in range(k):
            r[:] = 0
            r[s] = 1
            _backprop(arch, P, ws)
            n1, n2 = _dot(d1, d1), _dot(d2, d2)
            total += (rates[0] * xx + rates[1]) * n1
            if arch == MLP2:
                total += rates[4] * h1h1
            elif arch == MLP3:
                total += (rates[2] * h1h1 + rates[3]) * n2 + rates[4] * h2h2
            else:  # ||outer(e_s, h2) + outer(e1, h1)||^2
                total += (rates[2] * o1o1 + rates[3]) * n2
                total += rates[4] * (h2h2 + 2.0 * e1[s] * h1h2 + _dot(e1, e1) * h1h1)
        traces[j] = total


@jit
def _dot(u, v):
    """``<u, v>`` accumulated in float64."""
    s = 0.0
    for i in range(u.shape[0]):
        s += float(u[i]) * float(v[i])
    return s
