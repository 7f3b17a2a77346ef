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
* ``lazy.ntk_align_c``: the same alignment of the centred kernels (:func:`centred_alignment`);
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


def centred_alignment(K0: np.ndarray, K: np.ndarray) -> float:
    """:func:`alignment` of the centred kernels ``C K C``, ``C = I - 1 1^T / n`` (Cortes, Mohri &
    Rostamizadeh 2012, JMLR 13, Def. 1): blind to a constant part common to every pair of
    inputs, which dominates the RNN's kernel under the AZL encoding (every sequence shares the
    start token) and keeps the plain alignment near 1."""
    def centre(M):
        M = np.asarray(M, dtype=np.float64)
        return M - M.mean(axis=0, keepdims=True) - M.mean(axis=1, keepdims=True) + M.mean()
    return alignment(centre(K0), centre(K))


def flip_fraction(signs0: np.ndarray, signs: np.ndarray) -> float:
    """The fraction of entries where two boolean sign arrays differ."""
    return float(np.mean(signs0 != signs)) if signs0.size else math.nan


# The RNN (pacsim.models.rnn)


def rnn_gram(p, X: np.ndarray, positions, lam: float, trained, K: int) -> np.ndarray:
    """Empirical tangent kernel (n, n) on ``X`` of the sum of the scored outputs
    ``g(x) = sum_{j in positions} f_{j,s}(x)`` (mean over the outputs ``s``), for the
    ``trained`` matrices and BPTT(``K``): the slow form, for the minimal cell (and the tests
    of :func:`rnn_tangent`).

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


def rnn_tangent(p, X: np.ndarray, positions, lam: float, trained, K: int, n_trace: int):
    """ReLU sign pattern, probe kernel and NTK trace of an Elman RNN (ReLU or tanh cell) in
    batched float64 BLAS, from one forward pass and back-propagated signals.

    Returns ``(signs, gram, trace)``: the boolean signs ``e_t > 0`` (n, L, m) (``None`` for
    tanh); the kernel (n, n) of :func:`rnn_gram`; the per-sample trace of
    :func:`pacsim.models.rnn.empirical_ntk_trace` averaged over the first ``n_trace`` inputs.

    With ``delta_t = d (lam c . B h) / d e_t`` for an output functional with weights ``c`` over
    (position, output), the gradient is ``sum_t delta_t h_{t-1}^T`` (W) and
    ``sum_t delta_t x_t^T`` (A) over the uses ``t`` that BPTT(K) keeps, and
    ``lam sum_t c_t h_t^T`` (B); inner products of two gradients are then
    ``sum_{t,t'} <delta_t, delta'_t'> <u_t, u'_t'>`` (``u`` = h_{t-1} or x_t), the form of
    :mod:`pacsim.kernels.entk`, here with every product a matrix product.
    """
    W, A, B = (np.asarray(a, dtype=np.float64) for a in (p.W, p.A, p.B))
    X = np.asarray(X, dtype=np.float64)
    n, L, _ = X.shape
    m, d = W.shape[0], B.shape[0]
    relu = p.cell == "relu"
    H = np.zeros((n, L + 1, m))  # H[:, t + 1] = h_t, H[:, 0] = h_{-1} = 0
    E = np.empty((n, L, m))
    for t in range(L):
        E[:, t] = X[:, t] @ A.T + H[:, t] @ W.T
        H[:, t + 1] = np.maximum(E[:, t], 0.0) if relu else np.tanh(E[:, t])
    dphi = (E > 0).astype(np.float64) if relu else 1.0 - H[:, 1:] ** 2
    pos = np.asarray(positions, dtype=np.int64)
    names = set(trained)
    K = min(int(K), L)  # noqa: N806

    def inputs_gram(Hs, Xs):
        """``<u_t, u'_t'>`` summed over the trained W and A, for stacks of inputs: (L, L)
        for one sample, (n, L, n, L) for all (``u`` = h_{t-1} for W, x_t for A)."""
        G = 0.0
        for on, U in (("W" in names, Hs), ("A" in names, Xs)):
            if on:
                G = G + (U @ U.T if U.ndim == 2 else np.tensordot(U, U, axes=([2], [2])))
        return G

    def backward(idx, inject):
        """delta (len(idx), Q, L, m) for injections (Q, L, d) (weights c of each query)."""
        Q = inject.shape[0]
        D = np.zeros((len(idx), Q, L, m))
        nxt = np.zeros((len(idx), Q, m))
        for t in range(L - 1, -1, -1):
            g = lam * (inject[:, t] @ B)[None] + nxt @ W  # (n, Q, m): W^T delta_{t+1}
            D[:, :, t] = dphi[idx, t][:, None] * g
            nxt = D[:, :, t]
        return D

    def window(j):
        """Uses t of W and A kept by BPTT(K) for the loss at position j."""
        mask = np.zeros(L)
        mask[max(0, j - K + 1) : j + 1] = 1.0
        return mask

    # the probe kernel: g_s(x) = sum over scored j of f_{j,s}(x), mean over s
    gram = np.zeros((n, n))
    idx = np.arange(n)
    for s in range(d):
        if names & {"W", "A"}:
            if K >= L:  # one query: every scored position, full BPTT
                inj = np.zeros((1, L, d))
                inj[0, pos, s] = 1.0
                Dl = backward(idx, inj)[:, 0]  # (n, L, m)
            else:  # per scored position, each with its own window of uses
                inj = np.zeros((len(pos), L, d))
                inj[np.arange(len(pos)), pos, s] = 1.0
                Dq = backward(idx, inj) * np.stack([window(j) for j in pos])[None, :, :, None]
                Dl = Dq.sum(axis=1)
            Gd = np.tensordot(Dl, Dl, axes=([2], [2]))  # (n, L, n, L)
            gram += np.einsum("itku,itku->ik", Gd, inputs_gram(H[:, :L], X))
        if "B" in names:
            hs = H[:, 1:][:, pos].sum(axis=1)  # sum over scored j of h_j
            gram += lam**2 * hs @ hs.T
    gram /= d
    # the trace: sum over scored (j, s) of ||grad f_{j,s}||^2, per sample, first n_trace inputs
    traces = []
    for i in range(min(n_trace, n)):
        T = 0.0
        if names & {"W", "A"}:
            Uu = inputs_gram(H[i, :L], X[i])  # (L, L)
            for s in range(d):
                inj = np.zeros((len(pos), L, d))
                inj[np.arange(len(pos)), pos, s] = 1.0
                Dq = backward(np.array([i]), inj)[0]  # (P, L, m)
                Dq = Dq * np.stack([window(j) for j in pos])[:, :, None]
                T += float(np.einsum("qtm,qum,tu->", Dq, Dq, Uu, optimize=True))
        if "B" in names:
            T += d * lam**2 * float(np.sum(H[i, 1:][pos] ** 2))
        traces.append(T)
    signs = E > 0 if relu else None
    return signs, gram, float(np.mean(traces))
