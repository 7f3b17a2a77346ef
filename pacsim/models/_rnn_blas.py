"""The BLAS path of :func:`pacsim.models.rnn.loss_and_grad` for a batch of sequences: the
Elman cells position by position, one matrix product over the batch per position, truncated
BPTT included (chosen automatically from ``rnn.BATCH_MIN`` samples on; tested against the
per-sample kernels and the NumPy twin)."""

from __future__ import annotations

import numpy as np


def loss_and_grad_batched(p, X, Y, lam, scored, K, tW, tA, tB):  # noqa: N803
    """:func:`loss_and_grad` for the Elman cells, each position one product over the batch.

    With ``H_t`` (n, m) the states of the batch at position ``t`` (``H_{-1} = 0``),
    ``E_t = X_t A^T + H_{t-1} W^T`` and ``H_t = phi(E_t)``; backward, ``G_t = dLoss/dH_t``
    and ``D_t = G_t * phi'(E_t)`` (``1[h > 0]`` for ReLU, ``1 - h^2`` for tanh, as in the
    kernels), with ``G_{t-1} += D_t W``. Then ``dW = sum_{t>=1} D_t^T H_{t-1}`` and
    ``dA = sum_t D_t^T X_t`` are each one product over all positions and samples, and
    ``dB = lam sum_{t scored} R_t^T H_t``. BPTT(K) as in :func:`loss_and_grad`: the full sweep
    for ``K >= L``; otherwise every scored position sends its gradient back through at most
    ``K - 1`` products with ``W`` and the sums are gated at the end (the gate is linear), as
    the kernels do. The residuals are scaled by ``1/n`` first, so the gradients are the mean's.
    """
    n, L, d_in = X.shape
    m, dt = p.m, p.dtype
    relu = p.cell == "relu"
    W, A, B = p.W, p.A, p.B
    lam = dt.type(lam)
    Xt = np.ascontiguousarray(X.transpose(1, 0, 2))  # (L, n, d_in): position-major
    H = np.empty((L, n, m), dtype=dt)
    np.matmul(Xt, A.T, out=H)  # every position's input drive X_t A^T, one product
    tmp = np.empty((n, m), dtype=dt)
    for t in range(L):
        e = H[t]
        if t > 0:
            e += np.matmul(H[t - 1], W.T, out=tmp)
        if relu:
            np.maximum(e, 0, out=e)  # NaN stays NaN; 1[e > 0] = 1[h > 0]
        else:
            np.tanh(e, out=e)
    loss = 0.0
    R = np.zeros((L, n, p.d), dtype=dt)  # dLoss/dyhat, at the scored positions
    for t in np.flatnonzero(scored):
        r = R[t]
        np.matmul(H[t], B.T, out=r)
        r *= lam
        r -= Y[:, t]
        loss += 0.5 * float(np.sum(np.square(r, dtype=np.float64)))
    R *= dt.type(1.0 / n)
    need_back = tW or tA
    last = 0 if tA else 1  # the last position whose dLoss/dh is sent back through W

    deriv = np.empty((n, m), dtype=dt)

    def gate(g, t, out):  # dLoss/de_t from dLoss/dh_t (out may be g)
        if relu:
            return np.multiply(g, H[t] > 0, out=out)
        np.multiply(H[t], H[t], out=deriv)
        np.subtract(1, deriv, out=deriv)
        return np.multiply(deriv, g, out=out)

    lamB = lam * B  # noqa: N806 - dLoss/dh_t = R_t (lam B)
    D = np.zeros((L, n, m), dtype=dt) if need_back else None
    if need_back and K >= L:
        g = np.zeros((n, m), dtype=dt)
        for t in range(L - 1, -1, -1):
            if scored[t]:
                g += np.matmul(R[t], lamB, out=tmp)
            gate(g, t, D[t])
            if t > last:
                np.matmul(D[t], W, out=g)
    elif need_back:
        g = np.empty((n, m), dtype=dt)
        for t in np.flatnonzero(scored)[::-1]:
            np.matmul(R[t], lamB, out=g)
            lo = max(0, t - K + 1)
            for s in range(t, lo - 1, -1):
                D[s] += g
                if s <= max(lo, last):
                    break
                np.matmul(gate(g, s, tmp), W, out=g)
        for s in range(L):
            gate(D[s], s, D[s])
    gW = gA = gB = None
    if tW:
        Dr, Hr = D[1:].reshape(-1, m), H[:-1].reshape(-1, m)
        # in the layout of p.W (the ReLU kernels' W^T, column-major, from init_params)
        gW = (Hr.T @ Dr).T if W.flags.f_contiguous and not W.flags.c_contiguous else Dr.T @ Hr
    if tA:
        gA = D.reshape(-1, m).T @ Xt.reshape(-1, d_in)
    if tB:
        idx = np.flatnonzero(scored)
        gB = lam * (R[idx].reshape(-1, p.d).T @ H[idx].reshape(-1, m))
    return loss / n, (gW, gA, gB)
