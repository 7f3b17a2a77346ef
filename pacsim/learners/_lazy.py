"""Laziness diagnostics of an SGD learner: how far training has left the initialisation.

Recorded on every evaluated row of an SGD run as ``lazy.*`` columns (:meth:`Learner.laziness`):

* ``lazy.move_<M>``: relative movement ``||M - M0||_F / ||M0||_F`` of each trained array ``M``
  (a symmetric model's two copies count as one array of twice the entries: the norms add in
  squares);
* ``lazy.sign_flip``: the fraction of ReLU pre-activation signs (every hidden unit, position
  and probe input) that differ from those at initialisation; NaN for cells without ReLU;
* ``lazy.ntk_align``: the kernel alignment ``<K0, K> / (||K0||_F ||K||_F)`` (Cristianini et
  al. 2001) between the empirical tangent kernel on the probe set now (``K``) and at
  initialisation (``K0``); 1 while the kernel keeps its shape;
* ``lazy.trace``: the per-sample NTK trace now, measured like ``learner_info.ntk_trace``'s
  empirical method, and ``lazy.trace0`` the same measurement at initialisation.

In the kernel (lazy) regime the weights barely move and the kernel stays fixed (Jacot, Gabriel
& Hongler 2018, arXiv 1806.07572; Lee et al. 2019, arXiv 1902.06720; Chizat, Oyallon & Bach
2019, arXiv 1812.07956): ``move`` tends to 0 and ``ntk_align`` to 1 as the width grows.
"""

from __future__ import annotations

import math

import numpy as np


def rel_move(now: list[np.ndarray], init: list[np.ndarray]) -> float:
    """``||now - init||_F / ||init||_F`` over the arrays of ``now`` and ``init`` together
    (float64 sums); NaN if ``init`` is zero, inf if ``now`` is not finite."""
    num = sum(float(np.sum(np.square(a.astype(np.float64) - b))) for a, b in zip(now, init,
                                                                                     strict=True))
    den = sum(float(np.sum(np.square(b, dtype=np.float64))) for b in init)
    if not math.isfinite(num):
        return math.inf
    return math.sqrt(num / den) if den > 0 else math.nan


def alignment(K0: np.ndarray, K: np.ndarray) -> float:
    """Kernel alignment ``<K0, K>_F / (||K0||_F ||K||_F)``; NaN if either is zero or not
    finite."""
    K0 = np.asarray(K0, dtype=np.float64).ravel()
    K = np.asarray(K, dtype=np.float64).ravel()
    n0, n1 = float(np.linalg.norm(K0)), float(np.linalg.norm(K))
    if not (n0 > 0 and n1 > 0 and math.isfinite(n0) and math.isfinite(n1)):
        return math.nan
    return float(np.dot(K0, K) / (n0 * n1))


def flip_fraction(signs0: np.ndarray, signs: np.ndarray) -> float:
    """The fraction of entries where two boolean sign arrays differ."""
    return float(np.mean(signs0 != signs)) if signs0.size else math.nan


# The RNN (pacsim.models.rnn)


def rnn_relu_signs(p, X: np.ndarray) -> np.ndarray:
    """Signs ``e_t > 0`` of the ReLU cell's pre-activations ``e_t = W h_{t-1} + A x_t`` on the
    encoded inputs ``X (n, L, d_in)``: boolean (n, L, m), float64 arithmetic."""
    W, A = p.W.astype(np.float64), p.A.astype(np.float64)
    X = np.asarray(X, dtype=np.float64)
    n, L, _ = X.shape
    signs = np.empty((n, L, W.shape[0]), dtype=bool)
    h = np.zeros((n, W.shape[0]))
    for t in range(L):
        e = X[:, t] @ A.T + h @ W.T
        signs[:, t] = e > 0
        h = np.maximum(e, 0.0)
    return signs


def rnn_gram(p, X: np.ndarray, positions, lam: float, trained, K: int) -> np.ndarray:
    """Empirical tangent kernel (n, n) on ``X`` of the sum of the scored outputs
    ``g(x) = sum_{j in positions} f_{j,s}(x)`` (mean over the outputs ``s``), for the
    ``trained`` matrices and BPTT(``K``).

    ReLU cell, full BPTT: :func:`pacsim.kernels.entk.rnn` with ``blocks = "sum"`` (no Jacobian
    is formed). Otherwise the gradients of ``g`` per input from
    :func:`pacsim.models.rnn.loss_and_grad` (a target one below the output at every scored
    position gives the residual 1, so the gradient is that of ``g``), a dense Jacobian of
    ``n x (trained entries)``.
    """
    from ..kernels import entk
    from ..models import rnn

    L = X.shape[1]
    if p.cell == "relu" and K >= L:
        return entk.rnn(p, X, positions=positions, lam=lam, train=trained, blocks="sum")
    Yhat = rnn.forward(p, X, lam)
    pos = np.asarray(positions, dtype=np.int64)
    G = np.zeros((X.shape[0], X.shape[0]))
    for s in range(p.d):
        rows = []
        for k in range(X.shape[0]):
            Y = Yhat[k : k + 1].copy()
            Y[0, pos, s] -= 1.0
            _, g = rnn.loss_and_grad(p, X[k : k + 1], Y, lam, pos, trained=trained, K=K)
            rows.append(np.concatenate([a.astype(np.float64).ravel() for a in g
                                        if a is not None]))
        J = np.stack(rows)
        G += J @ J.T
    return G / p.d
