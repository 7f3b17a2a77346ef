"""Slow, obviously-correct NumPy references ("slow twins") of the RNN kernels.

These are the references the fast code in :mod:`pacsim.models.rnn` (and its jitted kernels in
``pacsim.models._rnn_jit``) is tested against. They are written independently of the kernels:
plain Python loops over samples and time, float64 NumPy, no Numba, no workspaces, and BPTT in
its textbook form. Speed is irrelevant here; only clarity is.

Model (AZL mode)::

    h_0 = 0,   h_t = ReLU(W h_{t-1} + A x_t),   yhat_t = lam * B h_t

    loss(sample) = sum over scored positions t of 0.5 * ||yhat_t - y_t||^2
    loss(batch)  = mean over samples of loss(sample)

Only ``W`` is trained. ``positions`` are 0-based scored indices (``None``: every position).
"""

from __future__ import annotations

import numpy as np


def _scored(L, positions):  # noqa: N803
    """Set of scored 0-based positions."""
    return set(range(L)) if positions is None else {int(t) for t in positions}


def _sample_forward(W, A, x):
    """Hidden states ``[h_0, h_1, ..., h_L]`` (h_0 = 0) and pre-activations ``[z_1, ..., z_L]``."""
    m = W.shape[0]
    hs = [np.zeros(m)]
    zs = []
    for t in range(x.shape[0]):
        z = W @ hs[-1] + A @ x[t]
        zs.append(z)
        hs.append(np.maximum(z, 0.0))
    return hs, zs


def rnn_forward(W, A, B, X, lam):
    """Outputs and hidden states of every sample, in float64.

    Returns
    -------
    Yhat : ndarray (n, L, d)
        ``Yhat[k, t] = lam * B h_t`` for sample ``k`` (0-based position ``t``).
    H : ndarray (n, L, m)
        ``H[k, t] = h_t`` (the state after reading ``X[k, t]``).
    """
    W, A, B, X = (np.asarray(a, dtype=np.float64) for a in (W, A, B, X))
    n, L, _ = X.shape
    Yhat = np.zeros((n, L, B.shape[0]))
    H = np.zeros((n, L, W.shape[0]))
    for k in range(n):
        hs, _ = _sample_forward(W, A, X[k])
        for t in range(L):
            H[k, t] = hs[t + 1]
            Yhat[k, t] = lam * (B @ hs[t + 1])
    return Yhat, H


def _sample_loss_and_grad(W, A, B, x, y, lam, scored):
    """Loss of one sample and its gradient with respect to ``W`` (textbook BPTT)."""
    L = x.shape[0]
    hs, zs = _sample_forward(W, A, x)  # hs[t + 1] = h_t for 0-based position t
    loss = 0.0
    gW = np.zeros_like(W)
    dh_next = np.zeros(W.shape[0])  # dLoss/dh_t that flows back from position t + 1
    for t in reversed(range(L)):
        dh = dh_next.copy()
        if t in scored:
            r = lam * (B @ hs[t + 1]) - y[t]
            loss += 0.5 * float(r @ r)
            dh += lam * (B.T @ r)
        delta = dh * (zs[t] > 0)  # dLoss/dz_t: ReLU derivative
        gW += np.outer(delta, hs[t])  # z_t = W h_{t-1} + ..., and hs[t] = h_{t-1}
        dh_next = W.T @ delta
    return loss, gW


def rnn_loss_and_grad(W, A, B, X, Y, lam, positions):
    """Mean loss over the samples and its gradient with respect to ``W``, in float64."""
    W, A, B, X, Y = (np.asarray(a, dtype=np.float64) for a in (W, A, B, X, Y))
    n, L, _ = X.shape
    scored = _scored(L, positions)
    total = 0.0
    gW = np.zeros_like(W)
    for k in range(n):
        loss, g = _sample_loss_and_grad(W, A, B, X[k], Y[k], lam, scored)
        total += loss
        gW += g
    return total / n, gW / n


def rnn_sgd(W, A, B, X, Y, eta, lam, positions, order):
    """Vanilla SGD with batch 1: one step ``W <- W - eta * grad`` per sample index in ``order``.

    Returns the final ``W`` (a new float64 array; the input is not modified) and the loss of
    every step, taken before that step's update.
    """
    W = np.array(W, dtype=np.float64)
    A, B, X, Y = (np.asarray(a, dtype=np.float64) for a in (A, B, X, Y))
    scored = _scored(X.shape[1], positions)
    losses = []
    for k in order:
        loss, g = _sample_loss_and_grad(W, A, B, X[k], Y[k], lam, scored)
        losses.append(loss)
        W = W - eta * g
    return W, np.array(losses)


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
