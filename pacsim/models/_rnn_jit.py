"""Jitted kernels of the RNN cells (private; see :mod:`pacsim.models.rnn`).

Cells (``cell`` argument): ``RELU`` and ``TANH`` (Elman, ``h_t = phi(W h_{t-1} + A x_t)``) and
``MINIMAL`` (minimalRNN: ``z_t = A x_t``, ``u_t = sigmoid(W h_{t-1} + V z_t + b)``,
``h_t = u_t * h_{t-1} + (1 - u_t) * z_t``). Every cell reads out ``yhat_t = lam * B h_t``.

Shapes: ``W (m, m)``, ``A (m, d_in)``, ``B (d, m)``, ``V (m, m)``, ``C = V A (m, d_in)``,
``bias (m,)`` (``V``, ``C``, ``bias`` are empty dummies for the Elman cells); one sample
``x (L, d_in)``, ``y (L, d)``.

Layout of ``W``: the kernels take ``Wk``, which is ``W`` itself for ``TANH`` and ``MINIMAL`` and
its transpose ``W^T`` (C-contiguous) for ``RELU``, and return ``W``'s gradient in the same
layout. About half the ReLU units are closed, so ``h_{t-1}`` is half zeros: with ``W^T`` the
forward product ``W h_{t-1} = sum_k h_{t-1,k} W^T[k]`` reads only the rows of open units, and
the backward product ``W^T d`` is needed only at the open units of ``h_{t-1}`` (the gate zeros
the rest), so both read half of ``W`` (about 1.2x faster per SGD step at m = 256 in float64,
``benchmarks/sgd_step.py``). The dense cells keep ``W`` and dot products, which stream better.

Workspaces, all C-contiguous of the weights' dtype:

* ``H (L+1, m)``: ``H[t+1] = h_t`` for 0-based position ``t``; ``H[0] = h_{-1} = 0`` is never
  read by the forward pass (position 0 skips the recurrent product) and must stay zero;
* ``U (L, m)``, ``Z (L, m)``: minimalRNN gates ``u_t`` and embedded inputs ``z_t``;
* ``D (L, m)``: ``dLoss/de_t``, the gradient at the pre-activation that ``W`` multiplies into
  (the forward pass first leaves the pre-activations ``e_t`` there);
* ``G (L, m)``: minimalRNN ``dLoss/dh_t``, then ``dLoss/dz_t`` (the input gradient);
* ``R (L, d)``: residuals ``lam B h_t - y_t`` at the scored positions;
* ``S (3, m)``: scratch vectors; ``I (max(m, L),)`` int64 and ``c (L,)``: index and
  coefficient scratch.

Non-finite weights: the dense products turn an Inf or NaN anywhere in ``W`` into a NaN loss
(``0 * inf = NaN``). The ReLU products skip closed units, so an Inf in a closed unit's column
would go unseen; the ReLU kernels therefore check ``W`` once on entry (:func:`_all_finite`:
a non-finite ``W`` gives a NaN loss, and no SGD step) and every SGD update for overflow (the
chunk stops at the step whose update made ``W`` non-finite). A diverging run is detected as
with the dense cells, and at the same step or earlier.

``D[0]`` feeds only the input (``A``) gradient; the backward pass completes it only when asked
(``need_din``), which saves the last product with ``W`` when only ``W`` is trained.

Truncated BPTT: ``K >= L`` is full BPTT; otherwise the loss at position ``t`` sends gradient to
the parameter uses at positions ``t, t-1, ..., t-K+1`` only (``K`` transitions).

Dtype discipline: accumulators start from ``W.dtype.type(0)``, a zero of the weights' dtype,
so float32 kernels accumulate in float32 (a literal ``0`` or ``x * 0`` would be typed int64
or float64 and promote every sum to float64). Only the loss is accumulated in float64.

The kernels validate nothing and allocate nothing; the wrapper checks dtypes and shapes. The
same ``_sample`` (forward + backward of one sample) serves ``_loss_and_grad`` and ``_sgd_chunk``,
so the code that SGD runs is the code the gradient tests check.
"""

from __future__ import annotations

import numpy as np

from .._numba import jit

#: Cell codes (see :data:`pacsim.models.rnn.CELLS`).
RELU, TANH, MINIMAL = 0, 1, 2


# Forward


@jit
def _tanh(s, one, two):
    """``tanh(s) = 1 - 2 / (exp(2 s) + 1)``, with ``one`` and ``two`` of the dtype of ``s``.

    Three to four times faster than ``np.tanh`` (libm) for pre-activations of order one, and
    exact at the limits (``+-inf -> +-1``, NaN stays NaN); the absolute error is a few ulp of
    1 (about 2e-16 in float64), so the relative error grows as ``|s| -> 0``.
    """
    return one - two / (np.exp(s + s) + one)


@jit
def _elman_forward(Wk, A, x, relu, H, E, I):  # noqa: N803
    """Fill ``H[1:]`` with ``h_t = phi(W h_{t-1} + A x_t)`` (ReLU or tanh), ``h_{-1} = 0``, and
    ``E[t]`` with the pre-activation ``e_t``; ``Wk`` is ``W^T`` for ReLU (see the module)."""
    m = Wk.shape[0]
    L = x.shape[0]
    zero = Wk.dtype.type(0)
    one = Wk.dtype.type(1)
    two = Wk.dtype.type(2)
    for t in range(L):
        e = H[t + 1]  # the pre-activation e_t = A x_t + W h_{t-1}, then h_t in place
        e[:] = zero
        _gemv_add(A, x[t], e)
        if t > 0:  # h_{-1} = 0: position 0 has no recurrent term
            if relu:  # sum over the open units k of h_{t-1,k} W^T[k]
                _axpy_rows(Wk, H[t], e, I)
            else:
                _gemv_add(Wk, H[t], e)
        for i in range(m):
            s = e[i]
            E[t, i] = s
            if relu:
                e[i] = s if not (s <= zero) else zero  # NaN stays NaN
            else:
                e[i] = _tanh(s, one, two)


@jit
def _minimal_forward(W, A, V, C, bias, x, use_c, H, U, Z, E):
    """minimalRNN forward: fill ``Z``, ``U``, ``H[1:]`` and ``E`` (gate pre-activations).

    ``z_t = A x_t``; ``e_t = W h_{t-1} + V z_t + b`` (``V z_t`` read as ``C x_t`` when
    ``use_c``); ``u_t = sigmoid(e_t)``; ``h_t = u_t h_{t-1} + (1 - u_t) z_t``.
    """
    m = W.shape[0]
    L = x.shape[0]
    zero = W.dtype.type(0)
    one = W.dtype.type(1)
    for t in range(L):
        e = U[t]  # the gate pre-activation e_t, then u_t in place
        Z[t] = zero
        _gemv_add(A, x[t], Z[t])
        for i in range(m):
            e[i] = bias[i]
        if use_c:
            _gemv_add(C, x[t], e)
        else:
            _gemv_add(V, Z[t], e)
        if t > 0:
            _gemv_add(W, H[t], e)
        for i in range(m):
            E[t, i] = e[i]
            u = one / (one + np.exp(-e[i]))
            e[i] = u
            H[t + 1, i] = u * H[t, i] + (one - u) * Z[t, i]


@jit
def _all_finite(W):
    """Whether every entry of ``W`` is finite (one vectorised pass: ``x * 0`` is 0 for finite
    ``x`` and NaN for Inf or NaN, which the fast-math flags in use may not fold away)."""
    zero = W.dtype.type(0)
    probe = zero
    for i in range(W.shape[0]):
        for k in range(W.shape[1]):
            probe += W[i, k] * zero
    return probe == zero


# Backward helpers


@jit
def _residual(B, y_t, h, lam, r, g):
    """``r = lam B h - y_t``; ``g += lam B^T r``; return ``0.5 ||r||^2`` in float64."""
    d, m = B.shape
    zero = B.dtype.type(0)
    loss = 0.0
    for s in range(d):
        yhat = zero
        for i in range(m):
            yhat += B[s, i] * h[i]
        rs = lam * yhat - y_t[s]
        r[s] = rs
        loss += 0.5 * float(rs) * float(rs)
        c = lam * rs
        for i in range(m):
            g[i] += c * B[s, i]
    return loss


@jit
def _gemv_add(W, h, out):
    """``out += W h``: dot products of four rows at a time (``h`` is loaded once per four).

    Readable form: ``for i: out[i] += sum_k W[i, k] * h[k]``.
    """
    m = W.shape[0]
    n = W.shape[1]
    zero = W.dtype.type(0)
    i = 0
    while i + 4 <= m:
        s0 = zero
        s1 = zero
        s2 = zero
        s3 = zero
        for k in range(n):
            hk = h[k]
            s0 += W[i, k] * hk
            s1 += W[i + 1, k] * hk
            s2 += W[i + 2, k] * hk
            s3 += W[i + 3, k] * hk
        out[i] += s0
        out[i + 1] += s1
        out[i + 2] += s2
        out[i + 3] += s3
        i += 4
    while i < m:
        s0 = zero
        for k in range(n):
            s0 += W[i, k] * h[k]
        out[i] += s0
        i += 1


@jit
def _axpy_rows(W, v, out, idx):
    """``out += W^T v = sum_i v[i] W[i]``, over the nonzero ``v[i]`` only (closed ReLU units
    are skipped), eight rows per pass over ``out``; ``idx`` is int scratch of length ``m``."""
    m = W.shape[1]
    zero = W.dtype.type(0)
    n = 0
    for i in range(W.shape[0]):
        if v[i] != zero:  # NaN != 0: a NaN still propagates
            idx[n] = i
            n += 1
    j = 0
    while j + 8 <= n:
        i0, i1, i2, i3 = idx[j], idx[j + 1], idx[j + 2], idx[j + 3]
        i4, i5, i6, i7 = idx[j + 4], idx[j + 5], idx[j + 6], idx[j + 7]
        a0, a1, a2, a3 = v[i0], v[i1], v[i2], v[i3]
        a4, a5, a6, a7 = v[i4], v[i5], v[i6], v[i7]
        for k in range(m):
            out[k] += ((a0 * W[i0, k] + a1 * W[i1, k]) + (a2 * W[i2, k] + a3 * W[i3, k])) + (
                (a4 * W[i4, k] + a5 * W[i5, k]) + (a6 * W[i6, k] + a7 * W[i7, k])
            )
        j += 8
    while j + 4 <= n:
        i0, i1, i2, i3 = idx[j], idx[j + 1], idx[j + 2], idx[j + 3]
        a0, a1, a2, a3 = v[i0], v[i1], v[i2], v[i3]
        for k in range(m):
            out[k] += (a0 * W[i0, k] + a1 * W[i1, k]) + (a2 * W[i2, k] + a3 * W[i3, k])
        j += 4
    while j < n:
        i0 = idx[j]
        a0 = v[i0]
        for k in range(m):
            out[k] += a0 * W[i0, k]
        j += 1


@jit
def _matvec_t(W, v, out, idx):
    """``out = W^T v``, skipping the zero ``v[i]`` (see :func:`_axpy_rows`)."""
    out[:] = W.dtype.type(0)
    _axpy_rows(W, v, out, idx)


@jit
def _gemv_masked(W, v, mask, out, idx):
    """``out[k] = W[k] . v`` where ``mask[k] > 0``, else ``0``: four rows at a time.

    With ``W = W^T`` of the ReLU cell and ``mask = h_{t-1}``: ``W^T v`` at the open units of
    ``h_{t-1}``, the only entries the gate lets through (a NaN in ``mask`` counts as closed,
    as in :func:`_elman_gate`).
    """
    m = W.shape[1]
    zero = W.dtype.type(0)
    n = 0
    for k in range(W.shape[0]):
        out[k] = zero
        if mask[k] > zero:
            idx[n] = k
            n += 1
    j = 0
    while j + 8 <= n:
        k0, k1, k2, k3 = idx[j], idx[j + 1], idx[j + 2], idx[j + 3]
        k4, k5, k6, k7 = idx[j + 4], idx[j + 5], idx[j + 6], idx[j + 7]
        s0 = zero
        s1 = zero
        s2 = zero
        s3 = zero
        s4 = zero
        s5 = zero
        s6 = zero
        s7 = zero
        for i in range(m):
            vi = v[i]
            s0 += W[k0, i] * vi
            s1 += W[k1, i] * vi
            s2 += W[k2, i] * vi
            s3 += W[k3, i] * vi
            s4 += W[k4, i] * vi
            s5 += W[k5, i] * vi
            s6 += W[k6, i] * vi
            s7 += W[k7, i] * vi
        out[k0] = s0
        out[k1] = s1
        out[k2] = s2
        out[k3] = s3
        out[k4] = s4
        out[k5] = s5
        out[k6] = s6
        out[k7] = s7
        j += 8
    while j + 4 <= n:
        k0, k1, k2, k3 = idx[j], idx[j + 1], idx[j + 2], idx[j + 3]
        s0 = zero
        s1 = zero
        s2 = zero
        s3 = zero
        for i in range(m):
            vi = v[i]
            s0 += W[k0, i] * vi
            s1 += W[k1, i] * vi
            s2 += W[k2, i] * vi
            s3 += W[k3, i] * vi
        out[k0] = s0
        out[k1] = s1
        out[k2] = s2
        out[k3] = s3
        j += 4
    while j < n:
        k0 = idx[j]
        s0 = zero
        for i in range(m):
            s0 += W[k0, i] * v[i]
        out[k0] = s0
        j += 1


@jit
def _elman_back_step(Wk, v, h_prev, relu, out, idx):  # noqa: N803
    """``out = W^T v`` (``dLoss/dh_{t-1}`` from ``v = dLoss/de_t``); for ReLU (``Wk = W^T``)
    only at the open units of ``h_prev = h_{t-1}`` and zero elsewhere."""
    if relu:
        _gemv_masked(Wk, v, h_prev, out, idx)
    else:
        _matvec_t(Wk, v, out, idx)


@jit
def _elman_gate(a, h, relu, out):
    """``out = a * phi'(e)`` from ``h = phi(e)``: ``1[h > 0]`` (ReLU) or ``1 - h^2`` (tanh).

    ``out`` may be ``a``.
    """
    zero = h.dtype.type(0)
    one = h.dtype.type(1)
    for i in range(h.shape[0]):
        if relu:
            out[i] = a[i] if h[i] > zero else zero
        else:
            out[i] = a[i] * (one - h[i] * h[i])


@jit
def _minimal_gate(a, h_prev, u, z, out):
    """``out = dLoss/de = a * (h_{t-1} - z_t) * u_t (1 - u_t)`` from ``a = dLoss/dh_t``."""
    one = u.dtype.type(1)
    for i in range(u.shape[0]):
        out[i] = a[i] * (h_prev[i] - z[i]) * u[i] * (one - u[i])


# Backward


@jit
def _elman_backward(Wk, B, y, H, lam, scored, K, relu, need_d0, D, R, S, I):  # noqa: N803
    """Fill ``R`` (scored residuals) and ``D[t] = dLoss/de_t`` (``D[0]`` only with
    ``need_d0``); return the loss (float64). ``Wk`` is ``W^T`` for ReLU (see the module)."""
    m = Wk.shape[0]
    L = D.shape[0]
    zero = Wk.dtype.type(0)
    g = S[0]
    tmp = S[1]
    loss = 0.0
    last = 0 if need_d0 else 1  # the last position whose dLoss/dh is sent back through W
    if K >= L:  # full BPTT, one sweep
        g[:] = zero  # dLoss/dh_t
        for t in range(L - 1, -1, -1):
            if scored[t]:
                loss += _residual(B, y[t], H[t + 1], lam, R[t], g)
            _elman_gate(g, H[t + 1], relu, D[t])
            if t > last:
                _elman_back_step(Wk, D[t], H[t], relu, g, I)
        return loss
    D[:, :] = zero  # dLoss/dh_s summed over the truncation windows, gated at the end
    for t in range(L - 1, -1, -1):
        if scored[t]:
            g[:] = zero
            loss += _residual(B, y[t], H[t + 1], lam, R[t], g)
            lo = max(0, t - K + 1)
            for s in range(t, lo - 1, -1):
                for i in range(m):
                    D[s, i] += g[i]
                if s <= max(lo, last):
                    break
                _elman_gate(g, H[s + 1], relu, tmp)
                _elman_back_step(Wk, tmp, H[s], relu, g, I)
    for s in range(L):
        _elman_gate(D[s], H[s + 1], relu, D[s])
    return loss


@jit
def _minimal_backward(W, B, y, H, U, Z, lam, scored, K, D, G, R, S, I):  # noqa: N803
    """Fill ``R``, ``G[t] = dLoss/dh_t`` and ``D[t] = dLoss/de_t``; return the loss.

    ``dLoss/dh_{t-1} = u_t * dLoss/dh_t + W^T dLoss/de_t`` (the step Jacobian transposed).
    """
    m = W.shape[0]
    L = D.shape[0]
    zero = W.dtype.type(0)
    g = S[0]
    tmp = S[1]
    tmp2 = S[2]
    loss = 0.0
    if K >= L:
        g[:] = zero
        for t in range(L - 1, -1, -1):
            if scored[t]:
                loss += _residual(B, y[t], H[t + 1], lam, R[t], g)
            for i in range(m):
                G[t, i] = g[i]
            _minimal_gate(g, H[t], U[t], Z[t], D[t])
            if t > 0:
                _matvec_t(W, D[t], tmp, I)
                for i in range(m):
                    g[i] = U[t, i] * g[i] + tmp[i]
        return loss
    G[:, :] = zero
    for t in range(L - 1, -1, -1):
        if scored[t]:
            g[:] = zero
            loss += _residual(B, y[t], H[t + 1], lam, R[t], g)
            lo = max(0, t - K + 1)
            for s in range(t, lo - 1, -1):
                for i in range(m):
                    G[s, i] += g[i]
                if s > lo:
                    _minimal_gate(g, H[s], U[s], Z[s], tmp)
                    _matvec_t(W, tmp, tmp2, I)
                    for i in range(m):
                        g[i] = U[s, i] * g[i] + tmp2[i]
    for s in range(L):
        _minimal_gate(G[s], H[s], U[s], Z[s], D[s])
    return loss


@jit
def _sample(cell, W, A, B, V, C, bias, x, y, lam, scored, K, need_back, need_din, use_c,
            H, U, Z, D, G, R, S, I):  # fmt: skip
    """Forward and backward pass of one sample; return its loss (float64).

    ``need_back``: back-propagate (``W`` or ``A`` trained); else only ``R`` and the loss.
    ``need_din`` (``A`` trained): complete ``D[0]`` (Elman) or turn ``G`` into ``dLoss/dz_t``
    (minimalRNN) for the ``A`` gradient.
    """
    m = W.shape[0]
    L = x.shape[0]
    one = W.dtype.type(1)
    if cell == MINIMAL:  # D receives the pre-activations; the backward pass overwrites it
        _minimal_forward(W, A, V, C, bias, x, use_c, H, U, Z, D)
    else:
        _elman_forward(W, A, x, cell == RELU, H, D, I)
    if not need_back:
        g = S[0]
        g[:] = W.dtype.type(0)
        loss = 0.0
        for t in range(L):
            if scored[t]:
                loss += _residual(B, y[t], H[t + 1], lam, R[t], g)
        return loss
    if cell != MINIMAL:
        return _elman_backward(W, B, y, H, lam, scored, K, cell == RELU, need_din, D, R, S, I)
    loss = _minimal_backward(W, B, y, H, U, Z, lam, scored, K, D, G, R, S, I)
    if need_din:  # dLoss/dz_t = (1 - u_t) dLoss/dh_t + V^T dLoss/de_t
        tmp = S[1]
        for s in range(L):
            _matvec_t(V, D[s], tmp, I)
            for i in range(m):
                G[s, i] = (one - U[s, i]) * G[s, i] + tmp[i]
    return loss


@jit
def _rank_update_dense(coef, D, H, MW):
    """``MW[i] += coef * sum_{t>=1} D[t, i] H[t]`` for every row: two rows and four terms per
    pass (each ``H[t, k]`` load serves two rows); for cells whose ``D`` has no zeros."""
    m = MW.shape[0]
    L = D.shape[0]
    i = 0
    while i + 2 <= m:
        t = 1
        while t + 4 <= L:
            a0, a1 = coef * D[t, i], coef * D[t + 1, i]
            a2, a3 = coef * D[t + 2, i], coef * D[t + 3, i]
            b0, b1 = coef * D[t, i + 1], coef * D[t + 1, i + 1]
            b2, b3 = coef * D[t + 2, i + 1], coef * D[t + 3, i + 1]
            for k in range(m):
                h0, h1, h2, h3 = H[t, k], H[t + 1, k], H[t + 2, k], H[t + 3, k]
                MW[i, k] += (a0 * h0 + a1 * h1) + (a2 * h2 + a3 * h3)
                MW[i + 1, k] += (b0 * h0 + b1 * h1) + (b2 * h2 + b3 * h3)
            t += 4
        while t < L:
            a0, b0 = coef * D[t, i], coef * D[t, i + 1]
            for k in range(m):
                MW[i, k] += a0 * H[t, k]
                MW[i + 1, k] += b0 * H[t, k]
            t += 1
        i += 2
    while i < m:
        for t in range(1, L):
            a0 = coef * D[t, i]
            for k in range(m):
                MW[i, k] += a0 * H[t, k]
        i += 1


@jit
def _rank_update_sparse(coef, P, Q, L, M, I, c):  # noqa: N803
    """``M[i] += coef * sum_{1 <= t < L} P[t, i] Q[t]`` over the nonzero coefficients only, four
    terms per pass over the row (which stays in cache); ``I`` (int) and ``c`` are scratch of
    length ``>= L``. With ``P, Q = H, D`` and ``M = W^T``: the ReLU cell's ``W`` update, whose
    coefficients ``h_{t-1,k}`` are zero at the closed units.

    Returns whether every entry it wrote is finite (see :func:`_all_finite`; rows without a
    nonzero coefficient are not written).
    """
    zero = M.dtype.type(0)
    probe = zero
    for i in range(M.shape[0]):
        n = 0
        for t in range(1, L):
            ct = coef * P[t, i]
            if ct != zero:
                I[n] = t
                c[n] = ct
                n += 1
        j = 0
        while j + 4 <= n:
            t0, t1, t2, t3 = I[j], I[j + 1], I[j + 2], I[j + 3]
            c0, c1, c2, c3 = c[j], c[j + 1], c[j + 2], c[j + 3]
            for k in range(M.shape[1]):
                v = M[i, k] + ((c0 * Q[t0, k] + c1 * Q[t1, k]) + (c2 * Q[t2, k] + c3 * Q[t3, k]))
                M[i, k] = v
                probe += v * zero  # in the pass: a separate one costs ~8% of the update
            j += 4
        while j < n:
            t0 = I[j]
            c0 = c[j]
            for k in range(M.shape[1]):
                v = M[i, k] + c0 * Q[t0, k]
                M[i, k] = v
                probe += v * zero
            j += 1
    return probe == zero


@jit
def _apply(coef, lam, x, H, D, Din, R, scored, tW, tA, tB, MW, MA, MB, I, c, relu):  # noqa: N803
    """Add ``coef`` times the gradient of one sample to ``MW``, ``MA``, ``MB`` (trained ones).

    ``dW = sum_{t>=1} outer(D[t], h_{t-1})`` (position 0 multiplies ``h_{-1} = 0``),
    ``dA = sum_t outer(Din[t], x_t)``, ``dB = lam sum_{t scored} outer(R[t], h_t)``.
    ``coef = 1`` accumulates a gradient, ``coef = -eta`` is an SGD step. ``MW`` is in the
    kernels' layout: with ``relu`` it is ``W^T`` and receives ``sum_t outer(h_{t-1}, D[t])``
    row by row over the nonzero ``h_{t-1,k}``; otherwise the dense rank update.

    Returns ``False`` if the ReLU ``W`` update wrote a non-finite entry, else ``True``.
    """
    m = H.shape[1]
    L, d_in = x.shape
    d = R.shape[1]
    zero = MW.dtype.type(0)
    finite = True
    if tW and relu:
        finite = _rank_update_sparse(coef, H, D, L, MW, I, c)
    elif tW:
        _rank_update_dense(coef, D, H, MW)
    if tA:
        for i in range(m):
            for t in range(L):
                ct = coef * Din[t, i]
                if ct != zero:
                    for k in range(d_in):
                        MA[i, k] += ct * x[t, k]
    if tB:
        for t in range(L):
            if scored[t]:
                for s in range(d):
                    ct = coef * lam * R[t, s]
                    for i in range(m):
                        MB[s, i] += ct * H[t + 1, i]
    return finite


# Batch kernels


@jit
def _trajectories(cell, W, A, V, C, bias, X, use_c, Hs, Es, Zs, H, U, Z, I):  # noqa: N803
    """Per-sample forward passes (no BLAS): ``Hs[k, t] = h_t``, ``Es[k, t] = e_t`` (the gate's
    for minimal) and, for minimal, ``Zs[k, t] = z_t``; all NaN for a ReLU ``W`` that is not
    finite (see the module)."""
    if cell == RELU and not _all_finite(W):
        Hs[:] = np.nan
        Es[:] = np.nan
        return
    for k in range(X.shape[0]):
        if cell == MINIMAL:
            _minimal_forward(W, A, V, C, bias, X[k], use_c, H, U, Z, Es[k])
            Zs[k] = Z
        else:
            _elman_forward(W, A, X[k], cell == RELU, H, Es[k], I)
        Hs[k] = H[1:]


@jit
def _loss_and_grad(cell, W, A, B, V, C, bias, X, Y, lam, scored, K, tW, tA, tB, use_c,
                   gW, gA, gB, H, U, Z, D, G, R, S, I, c):  # fmt: skip
    """Total loss over the batch; ``gW``, ``gA``, ``gB`` receive the summed gradients of the
    trained matrices (zeroed first; not divided by n; ``gW`` in the layout of ``W``). NaN
    (gradients left zero) for a ReLU ``W`` that is not finite (see the module)."""
    zero = W.dtype.type(0)
    one = W.dtype.type(1)
    gW[:, :] = zero
    gA[:, :] = zero
    gB[:, :] = zero
    if cell == RELU and not _all_finite(W):
        return np.nan
    need_back = tW or tA
    need_din = tA
    Din = G if cell == MINIMAL else D
    total = 0.0
    for j in range(X.shape[0]):
        total += _sample(cell, W, A, B, V, C, bias, X[j], Y[j], lam, scored, K, need_back,
                         need_din, use_c, H, U, Z, D, G, R, S, I)  # fmt: skip
        _apply(one, lam, X[j], H, D, Din, R, scored, tW, tA, tB, gW, gA, gB, I, c, cell == RELU)
    return total


@jit
def _sgd_chunk(cell, W, A, B, V, C, bias, X, Y, order, lam, eta, scored, K, tW, tA, tB, use_c,
               losses, H, U, Z, D, G, R, S, I, c):  # fmt: skip
    """Vanilla SGD, batch 1: one step per index in ``order``, updating the trained matrices in
    place (``W`` in the kernels' layout; all gradients are taken at the pre-step weights).

    ``losses[k]`` receives the loss of step ``k`` before its update. Returns the number of
    steps taken; fewer than ``len(order)`` when the run diverged at step ``k = n_steps``: its
    loss is not finite (the step is not applied; a ReLU ``W`` that is not finite on entry
    counts as a NaN loss at step 0), or its ReLU ``W`` update overflowed (the step was
    applied, and ``W`` holds the non-finite entries; see the module).
    """
    neg = -eta
    need_back = tW or tA
    need_din = tA
    Din = G if cell == MINIMAL else D
    if cell == RELU and order.shape[0] > 0 and not _all_finite(W):
        losses[0] = np.nan
        return 0
    for k in range(order.shape[0]):
        j = order[k]
        loss = _sample(cell, W, A, B, V, C, bias, X[j], Y[j], lam, scored, K, need_back,
                       need_din, use_c, H, U, Z, D, G, R, S, I)  # fmt: skip
        losses[k] = loss
        if not np.isfinite(loss):
            return k
        if not _apply(neg, lam, X[j], H, D, Din, R, scored, tW, tA, tB, W, A, B, I, c,
                      cell == RELU):
            return k
    return order.shape[0]
