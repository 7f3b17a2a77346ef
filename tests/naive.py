"""Slow, obviously-correct NumPy references ("slow twins") of the RNN kernels.

These are the references the fast code in :mod:`pacsim.models.rnn` (and its jitted kernels in
``pacsim.models._rnn_jit``) is tested against. They are written independently of the kernels:
plain Python loops over samples and time, float64 NumPy, no Numba, no workspaces, and
backpropagation in its textbook per-loss-term form (each scored output is back-propagated on
its own, step by step, collecting the contribution of every use of the weights), which makes
truncation a plain filter on those contributions. Speed is irrelevant here; only clarity is.

Model (see :mod:`pacsim.models.rnn`)::

    relu/tanh: h_t = phi(W h_{t-1} + A x_t)
    minimal:   z_t = A x_t,  u_t = sigmoid(W h_{t-1} + V z_t + b),  h_t = u_t h_{t-1} + (1-u_t) z_t
    h_{-1} = 0,   yhat_t = lam * B h_t

    loss(sample) = sum over scored positions t of 0.5 * ||yhat_t - y_t||^2
    loss(batch)  = mean over samples of loss(sample)

``positions`` are 0-based scored indices (``None``: every position). ``p`` is anything with
attributes ``cell, W, A, B, V, b`` (an ``RNNParams``); everything is computed in float64.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np


def _f64(p):
    """A float64 copy of the weights ``p`` (``V``, ``b`` are ``None`` for Elman cells)."""

    def cast(a):
        return None if a is None else np.array(a, dtype=np.float64)

    return SimpleNamespace(
        cell=p.cell, W=cast(p.W), A=cast(p.A), B=cast(p.B), V=cast(p.V), b=cast(p.b)
    )


def _scored(L, positions):  # noqa: N803
    """Set of scored 0-based positions."""
    return set(range(L)) if positions is None else {int(t) for t in positions}


def _sigmoid(e):
    return 1.0 / (1.0 + np.exp(-e))


def _step(p, W, A, h_prev, x_t):
    """One step with the given ``W``, ``A``; returns ``h_t`` and a cache for the backward step."""
    if p.cell == "minimal":
        z = A @ x_t
        e = W @ h_prev + p.V @ z + p.b
        u = _sigmoid(e)
        return u * h_prev + (1.0 - u) * z, (h_prev, z, u)
    e = W @ h_prev + A @ x_t
    h = np.maximum(e, 0.0) if p.cell == "relu" else np.tanh(e)
    return h, (h_prev, e, None)


def _step_backward(p, W, x_t, cache, a):
    """For ``a = dLoss/dh_t`` along one path: the direct gradients of this step's use of ``W``
    and ``A``, and ``dLoss/dh_{t-1}`` (``a`` times the step Jacobian)."""
    if p.cell == "minimal":
        h_prev, z, u = cache
        de = a * (h_prev - z) * u * (1.0 - u)  # h = u h_prev + (1-u) z, u = sigmoid(e)
        dz = a * (1.0 - u) + p.V.T @ de  # z enters h directly and through e = ... + V z
        return np.outer(de, h_prev), np.outer(dz, x_t), a * u + W.T @ de
    h_prev, e, _ = cache
    dphi = (e > 0).astype(float) if p.cell == "relu" else 1.0 - np.tanh(e) ** 2
    de = a * dphi
    return np.outer(de, h_prev), np.outer(de, x_t), W.T @ de


def sample_forward(p, x, Ws=None, As=None):
    """States ``[h_0, ..., h_{L-1}]`` and caches; ``Ws[t]``, ``As[t]`` (optional) are per-position
    ("untied") weights, used by the finite-difference check of the truncation terms."""
    L = x.shape[0]
    h = np.zeros(p.W.shape[0])
    hs, caches = [], []
    for t in range(L):
        W = p.W if Ws is None else Ws[t]
        A = p.A if As is None else As[t]
        h, cache = _step(p, W, A, h, x[t])
        hs.append(h)
        caches.append(cache)
    return hs, caches


def rnn_forward(p, X, lam):
    """Outputs and hidden states of every sample.

    Returns
    -------
    Yhat : ndarray (n, L, d)
        ``Yhat[k, t] = lam * B h_t`` for sample ``k`` (0-based position ``t``).
    H : ndarray (n, L, m)
        ``H[k, t] = h_t`` (the state after reading ``X[k, t]``).
    """
    p = _f64(p)
    X = np.asarray(X, dtype=np.float64)
    n, L, _ = X.shape
    Yhat = np.zeros((n, L, p.B.shape[0]))
    H = np.zeros((n, L, p.W.shape[0]))
    for k in range(n):
        hs, _ = sample_forward(p, X[k])
        for t in range(L):
            H[k, t] = hs[t]
            Yhat[k, t] = lam * (p.B @ hs[t])
    return Yhat, H


def grad_terms(p, x, y, lam, t):
    """Loss ``0.5 ||lam B h_t - y_t||^2`` of position ``t`` alone, its ``B`` gradient, and the
    contribution of each use ``s = t, t-1, ..., 0`` of ``W`` and ``A`` to its gradient.

    Returns ``loss, gB, terms`` with ``terms[s] = (dW_s, dA_s)`` = ``d loss_t / d theta_s``
    where ``theta_s`` is the copy of the weights used at position ``s``.
    """
    p = _f64(p)
    hs, caches = sample_forward(p, np.asarray(x, dtype=np.float64))
    r = lam * (p.B @ hs[t]) - y[t]
    a = lam * (p.B.T @ r)  # dLoss/dh_t
    terms = {}
    for s in range(t, -1, -1):
        dW, dA, a = _step_backward(p, p.W, x[s], caches[s], a)
        terms[s] = (dW, dA)
    return 0.5 * float(r @ r), lam * np.outer(r, hs[t]), terms


def untied_position_loss(p, x, y, lam, t, Ws, As):
    """``0.5 ||lam B h_t - y_t||^2`` with the weights ``Ws[s]``, ``As[s]`` at position ``s``."""
    p = _f64(p)
    hs, _ = sample_forward(p, np.asarray(x, dtype=np.float64), Ws, As)
    r = lam * (p.B @ hs[t]) - y[t]
    return 0.5 * float(r @ r)


def _sample_loss_and_grads(p, x, y, lam, scored, K):  # noqa: N803
    """Loss of one sample and its ``W``, ``A``, ``B`` gradients under BPTT(K): the loss at ``t``
    keeps the contributions of the uses ``s`` with ``t - s < K`` (``K = None``: all)."""
    loss = 0.0
    g = {"W": np.zeros_like(p.W), "A": np.zeros_like(p.A), "B": np.zeros_like(p.B)}
    for t in sorted(scored):
        loss_t, gB, terms = grad_terms(p, x, y, lam, t)
        loss += loss_t
        g["B"] += gB
        for s, (dW, dA) in terms.items():
            if K is None or t - s < K:
                g["W"] += dW
                g["A"] += dA
    return loss, g


def rnn_loss_and_grad(p, X, Y, lam, positions, K=None):  # noqa: N803
    """Mean loss over the samples and its ``W``, ``A``, ``B`` gradients (dict), in float64."""
    p = _f64(p)
    X, Y = (np.asarray(a, dtype=np.float64) for a in (X, Y))
    n, L, _ = X.shape
    scored = _scored(L, positions)
    total = 0.0
    grads = {"W": np.zeros_like(p.W), "A": np.zeros_like(p.A), "B": np.zeros_like(p.B)}
    for k in range(n):
        loss, g = _sample_loss_and_grads(p, X[k], Y[k], lam, scored, K)
        total += loss
        for name in grads:
            grads[name] += g[name]
    return total / n, {name: g / n for name, g in grads.items()}


def rnn_sgd(p, X, Y, eta, lam, positions, order, trained=("W",), K=None):  # noqa: N803
    """Vanilla SGD with batch 1: ``M <- M - eta * grad_M`` for each trained ``M``, per sample
    index in ``order`` (all gradients at the pre-step weights).

    Returns the final weights (a float64 namespace; ``p`` is not modified) and the loss of
    every step, taken before that step's update.
    """
    p = _f64(p)
    X, Y = (np.asarray(a, dtype=np.float64) for a in (X, Y))
    scored = _scored(X.shape[1], positions)
    losses = []
    for k in order:
        loss, g = _sample_loss_and_grads(p, X[k], Y[k], lam, scored, K)
        losses.append(loss)
        for name in trained:
            setattr(p, name, getattr(p, name) - eta * g[name])
    return p, np.array(losses)


def neumann_rbp_grad(W, x, h_star, g, K):  # noqa: N803
    """Neumann-RBP gradient of a loss at the fixed point ``h* = tanh(W h* + A x)``, for ``W``
    and ``A`` (Liao et al. 2018, arXiv 1803.06396; ``lrjconan/RBP`` ``Neumann_RBP`` with
    ``truncate_iter = K``).

    ``J = diag(1 - h*^2) W``; ``s = sum_{k=0}^{K} (J^T)^k g`` (``K + 1`` terms); the gradient
    is ``(dF/dtheta)^T s``: ``outer(s * (1 - h*^2), h*)`` for ``W``, ``outer(.., x)`` for ``A``.
    """
    dphi = 1.0 - h_star**2
    J = dphi[:, None] * W
    v = g.copy()
    s = g.copy()
    for _ in range(K):
        v = J.T @ v
        s = s + v
    return np.outer(s * dphi, h_star), np.outer(s * dphi, x)


def implicit_grad(W, x, h_star, g):  # noqa: N803
    """The exact fixed-point gradient ``(dF/dtheta)^T (I - J^T)^{-1} g`` (the implicit-function
    theorem at ``h* = F(h*)``, as in RBP, arXiv 1803.06396)."""
    dphi = 1.0 - h_star**2
    J = dphi[:, None] * W
    z = np.linalg.solve(np.eye(W.shape[0]) - J.T, g)
    return np.outer(z * dphi, h_star), np.outer(z * dphi, x)


def finite_difference_grad(f, W, h):
    """Central differences ``(f(W + h e_ij) - f(W - h e_ij)) / (2h)`` for every entry of ``W``."""
    W = np.array(W, dtype=np.float64)
    g = np.zeros_like(W)
    for idx in np.ndindex(*W.shape):
        Wp, Wm = W.copy(), W.copy()
        Wp[idx] += h
        Wm[idx] -= h
        g[idx] = (f(Wp) - f(Wm)) / (2.0 * h)
    return g
