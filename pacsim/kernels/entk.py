"""Empirical (finite-width) NTKs: Gram matrices of per-output parameter gradients.

For a network ``f(x; theta)`` with outputs ``r = 1..k`` and trained parameter groups ``M``::

    eNTK[(x, r), (x', s)] = sum_{M trained} scale_M * < d f_r(x) / dM , d f_s(x') / dM >

No (n x n_params) Jacobian is formed. Every trained matrix enters a layer as ``z = M u``, so
``d f_r / dM = delta_r u^T`` (``delta_r = d f_r / dz``) and the Gram is a Hadamard product of
two small Grams::

    < d f_r(x)/dM , d f_s(x')/dM > = <u(x), u(x')> * <delta_r(x), delta_s(x')>

and for the RNN, whose ``W`` is shared over time, ``d y_j / dW = sum_t D_t h_{t-1}^T`` gives
``sum_{t, t'} <D_t, D'_t'> <h_{t-1}, h'_{t'-1}>``. Cost: O(n (L) m^2) for the backward signals
plus O(n1 n2 (P L)^2 m) for their Grams, instead of O(n1 n2 n_params).

``scales`` multiplies each group's term: ``scale_M = 1`` is the plain gradient Gram in the
parameterisation the weights are given in; per-group learning rates ``eta_M`` make SGD follow the
kernel with ``scale_M = eta_M``, and the NTK parameterisation of a weight ``M = sigma Z`` (``Z``
i.i.d. N(0, 1), gradients taken w.r.t. ``Z``) is ``scale_M = sigma^2`` (``sigma^2 = c / fan_in``
for ``Z ~ N(0, 1)`` scaled by ``sqrt(c / fan_in)``). This is how the closed forms of
:mod:`pacsim.kernels.relu` and :mod:`pacsim.kernels.residual` are matched by the tests.

``parts=True`` returns ``{group: kernel}`` instead of the sum (the readout groups alone,
``"A"``/``"c"``, give the conjugate kernel: the NNGP of the finite network).

``output`` chooses the output blocks: ``"mean"`` (default) is the average of the ``k``
diagonal blocks ``r = s`` (neural-tangents' default ``trace_axes``; the infinite-width kernels
are ``delta_rs`` times a scalar kernel, so this is the quantity that converges to them), an int
``r`` that single block, ``"full"`` every block: trailing axes ``(k, k)``.

Networks (standard parameterisation: the initial scales live in the weights; all functions take
plain arrays, float64; ``relu'(0) = 0``, ``phi'(0) = leak``):

* :func:`rnn`: pacsim's Elman ReLU RNN (:mod:`pacsim.models.rnn`, ReLU cell, full BPTT);
  groups ``"W"``, ``"A"``, ``"B"``.
* :func:`mlp`: ``z_l = W_l h_{l-1} + b_l``, ``h_l = phi(z_l)`` (``h_0 = x``), ``f = A h_L + c``;
  groups ``"W1".."WL"``, ``"b1".."bL"``, ``"A"``, ``"c"``. The AZLL two-/three-layer learners
  (arXiv 1811.04918, experiments: ``W, b ~ N(0, 1/m)``, ``a ~ N(0, 1)``, hidden layers
  trained) are
  ``weights=(W,)`` / ``(W, V)`` with ``train`` the hidden groups (the default).
* :func:`preact_resnet`: ``z_0 = W_0 x + b_0``,
  ``z_l = z_{l-1} + alpha (W_l phi(z_{l-1}) + b_l)``,
  ``f = A phi(z_B) + c``; groups ``"W0".."WB"``, ``"b0".."bB"``, ``"A"``, ``"c"``.
* :func:`azl_resnet`: AZL-ResNet eq. 2.1 with a full ``U``: ``h1 = relu(W x + b1)``,
  ``h2 = relu(U h1 + b2)``, ``f = A (h1 + h2)`` (``skip=False``: ``f = A h2``, the plain
  three-layer net); groups ``"W"``, ``"b1"``, ``"U"``, ``"b2"``, ``"A"``.
* :func:`azl_bottleneck`: the form AZL analyse (arXiv 1905.10337, Sec. 6): ``out1 = A relu(W (x, 1))``,
  ``f = out1 + A relu(V (out1, 1))``; ``W`` (m, d+1), ``V`` (m, k+1) trained, ``A`` (k, m) fixed;
  groups ``"W"``, ``"V"``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = [
    "rnn",
    "rnn_forward",
    "mlp",
    "mlp_forward",
    "preact_resnet",
    "preact_resnet_forward",
    "azl_resnet",
    "azl_resnet_forward",
    "azl_bottleneck",
    "azl_bottleneck_forward",
]

#: Elements of the largest temporary Gram block (about 160 MB in float64).
_MAX_BLOCK = 20_000_000


# Pacsim's RNN


def rnn_forward(W, A, X) -> np.ndarray:
    """Hidden states ``H`` of shape (n, L+1, m) with ``H[:, 0] = h_0 = 0``, ``H[:, t+1] = h_t``."""
    W, A, X = _f64(W), _f64(A), _f64(X)
    n, L, _ = X.shape
    H = np.zeros((n, L + 1, W.shape[0]))
    for t in range(L):
        H[:, t + 1] = np.maximum(H[:, t] @ W.T + X[:, t] @ A.T, 0.0)
    return H


def rnn(
    p,
    X1,
    X2=None,
    positions: Sequence[int] | None = None,
    *,
    lam: float = 1.0,
    train: Sequence[str] = ("W",),
    blocks: str = "full",
    output: str | int = "mean",
    per_width: bool = False,
    scales: Mapping[str, float] | None = None,
) -> np.ndarray:
    """Empirical NTK of pacsim's RNN ``y_t = lam B h_t`` at the weights ``p`` (``.W, .A, .B``).

    Parameters
    ----------
    p : pacsim.models.rnn.RNNParams or any object with arrays ``W (m, m)``, ``A (m, d_in)``,
        ``B (d, m)``
    X1, X2 : array_like of shape (n, L, d_in)
        Encoded inputs; ``X2=None`` means ``X1``.
    positions : sequence of int or None
        0-based output positions (``None``: all), as in :func:`pacsim.kernels.rntk.rntk`.
    lam : float
    train : sequence of {"W", "A", "B"}
        ``"B"`` adds ``lam^2 delta_ss' <h_j, h'_j'>`` (no factor m).
    blocks : {"full", "diag", "sum"}
        As in :func:`pacsim.kernels.rntk.rntk`: (n1, n2, P, P), (n1, n2, P) or (n1, n2).
    output : "mean", int or "full"
        See the module docstring; ``"full"`` appends axes (d, d).
    per_width : bool
        Divide by ``m``: then ``rnn(..., per_width=True)`` tends to ``rntk(..., d=d)``.
    scales : mapping or None
        Per-group multipliers (module docstring).

    Returns
    -------
    ndarray, float64

    Memory: O(n P d L m) for the backward signals and O(n1 n2 L^2) for the input Grams, so this
    is a diagnostic for small n (use :func:`pacsim.kernels.rntk.rntk` for large n).
    """
    if getattr(p, "cell", "relu") != "relu":
        raise ValueError(f"only the ReLU cell is supported, got {p.cell!r}")
    W, A, B = _f64(p.W), _f64(p.A), _f64(p.B)
    m, d = W.shape[0], B.shape[0]
    train = _groups(train, ("W", "A", "B"))
    sc = _scales(scales, train)
    X1 = _f64(X1)
    same = X2 is None or X2 is X1
    X2 = X1 if same else _f64(X2)
    L = X1.shape[1]
    if positions is None:
        pos = np.arange(L)
    else:
        pos = np.asarray(positions, dtype=np.int64).ravel()
    if pos.size == 0 or pos.min() < 0 or pos.max() >= L:
        raise ValueError(f"positions must lie in [0, {L})")
    if blocks not in ("full", "diag", "sum"):
        raise ValueError(f"blocks must be 'full', 'diag' or 'sum', got {blocks!r}")
    outs = _outputs(output, d)
    full = output == "full"
    n1, n2 = X1.shape[0], X2.shape[0]
    H1 = rnn_forward(W, A, X1)
    H2 = H1 if same else rnn_forward(W, A, X2)
    Pp = 1 if blocks == "sum" else pos.size
    res = np.zeros((n1, n2, Pp, Pp, d, d) if full else (n1, n2, Pp, Pp))
    if "W" in train or "A" in train:
        D1 = _rnn_backward(W, B, H1, pos, lam, blocks == "sum")  # (n, P', d, L, m)
        D2 = D1 if same else _rnn_backward(W, B, H2, pos, lam, blocks == "sum")
        # F[i, t, j, u] = sum over trained groups of scale * <input_t(x_i), input_u(x'_j)>
        F = np.zeros((n1, L, n2, L))
        if "W" in train:  # input of W at 0-based position t is h_{t-1} = H[:, t]
            F += sc["W"] * np.einsum("itk,juk->itju", H1[:, :L], H2[:, :L])
        if "A" in train:
            F += sc["A"] * np.einsum("itk,juk->itju", X1, X2)
        chunk = max(1, _MAX_BLOCK // max(1, Pp * L * n2 * Pp * L))
        for i0 in range(0, n1, chunk):
            sl = slice(i0, min(i0 + chunk, n1))
            c = sl.stop - sl.start
            for r, s in outs:
                Dg = (
                    D1[sl, :, r].reshape(c * Pp * L, m) @ D2[:, :, s].reshape(n2 * Pp * L, m).T
                ).reshape(c, Pp, L, n2, Pp, L)
                blk = np.einsum("iatjbu,itju->ijab", Dg, F[sl], optimize=True)
                if full:
                    res[sl, :, :, :, r, s] = blk
                else:
                    res[sl] += blk / len(outs)
    if "B" in train:  # d(lam y_{j,s})/dB = lam e_s h_j^T: delta_ss' lam^2 <h_j, h'_j'>
        Hj1, Hj2 = H1[:, 1:][:, pos], H2[:, 1:][:, pos]
        if blocks == "sum":
            Hj1, Hj2 = Hj1.sum(1, keepdims=True), Hj2.sum(1, keepdims=True)
        KB = sc["B"] * lam**2 * np.einsum("iak,jbk->ijab", Hj1, Hj2)
        if full:
            for r in range(d):
                res[..., r, r] += KB
        else:
            res += KB * sum(r == s for r, s in outs) / len(outs)
    if per_width:
        res /= m
    if blocks == "diag":
        res = np.einsum("ijaa...->ija...", res).copy()
    elif blocks == "sum":
        res = res[:, :, 0, 0]
    return res


def _rnn_backward(W, B, H, pos, lam, summed):
    """``D[i, a, s, t] = d (lam B_s h_{pos[a]}) / d z_t`` (zero for t > pos[a]); summed: one a.

    All positions are propagated together, one GEMM with ``W`` per time step.
    """
    n, Lp1, m = H.shape
    L = Lp1 - 1
    d = B.shape[0]
    gates = H[:, 1:] > 0  # relu'(z_t) at 0-based t, (n, L, m)
    na = 1 if summed else pos.size
    D = np.zeros((n, na, d, L, m))
    cur = np.zeros((n, na, d, m))
    for t in range(L - 1, -1, -1):
        cur = _mm(cur, W)  # W^T applied to each row vector
        hit = np.flatnonzero(pos == t)
        if hit.size:
            cur[:, 0 if summed else hit[0]] += lam * B[None]
        cur *= gates[:, t, None, None, :]
        D[:, :, :, t] = cur
    return D


def _mm(T, M):
    """``T @ M`` for a stack ``T`` (..., p) as one 2-D GEMM (much faster than stacked matmul)."""
    return (T.reshape(-1, T.shape[-1]) @ M).reshape(T.shape[:-1] + (M.shape[1],))


# Feed-forward networks


def _act(z, leak):
    return np.maximum(z, 0.0) if not leak else np.where(z > 0, z, leak * z)


def _dact(z, leak):
    return (z > 0).astype(np.float64) if not leak else np.where(z > 0, 1.0, leak)


def mlp_forward(
    X, weights: Sequence, readout, biases: Sequence | None = None, readout_bias=None, leak=None
) -> np.ndarray:
    """Outputs (n, k) of ``z_l = W_l h_{l-1} + b_l, h_l = phi(z_l), f = A h_L + c``."""
    return _mlp_pass(_f64(X), weights, readout, biases, readout_bias, leak)[0]


def mlp(
    X1,
    X2=None,
    *,
    weights: Sequence,
    readout,
    biases: Sequence | None = None,
    readout_bias=None,
    leak: float | None = None,
    train: Sequence[str] | None = None,
    scales: Mapping[str, float] | None = None,
    output: str | int = "mean",
    parts: bool = False,
) -> np.ndarray:
    """Empirical NTK of the MLP of :func:`mlp_forward`: (n1, n2), or (n1, n2, k, k) if "full".

    ``weights`` = ``(W_1 (m_1, d), W_2 (m_2, m_1), ...)``, ``biases`` the matching vectors or
    ``None``, ``readout`` ``A (k, m_L)``, ``readout_bias`` ``c (k,)`` or ``None``. Groups
    ``"W1".."WL"``, ``"b1".."bL"`` (1-based), ``"A"``, ``"c"``; ``train=None`` trains the hidden
    layers (weights and, if given, biases), the AZL/AZLL convention.
    """
    nl = len(weights)
    names = [f"W{l + 1}" for l in range(nl)] + ["A"]
    if biases is not None:
        names += [f"b{l + 1}" for l in range(nl)]
    if readout_bias is not None:
        names += ["c"]
    if train is None:
        train = [g for g in names if g[0] in "Wb"]
    train = _groups(train, names)
    sc = _scales(scales, train)
    X1 = _f64(X1)
    X2 = X1 if X2 is None else _f64(X2)
    k = np.asarray(readout).shape[0]
    terms = []
    p1 = _mlp_pass(X1, weights, readout, biases, readout_bias, leak)
    p2 = p1 if X2 is X1 else _mlp_pass(X2, weights, readout, biases, readout_bias, leak)
    for l in range(nl):
        for grp, use_input in ((f"W{l + 1}", True), (f"b{l + 1}", False)):
            if grp in train:
                Z = (p1[1][l], p2[1][l]) if use_input else (None, None)
                terms.append((grp, sc[grp], Z[0], Z[1], p1[2][l], p2[2][l]))
    eye = np.broadcast_to(np.eye(k), (1, k, k))
    if "A" in train:
        terms.append(("A", sc["A"], p1[1][nl], p2[1][nl], np.broadcast_to(eye, (X1.shape[0], k, k)),
                      np.broadcast_to(eye, (X2.shape[0], k, k))))  # fmt: skip
    if "c" in train:
        terms.append(("c", sc["c"], None, None, np.broadcast_to(eye, (X1.shape[0], k, k)),
                      np.broadcast_to(eye, (X2.shape[0], k, k))))  # fmt: skip
    return _gram(terms, output, k, parts)


def _mlp_pass(X, weights, readout, biases, readout_bias, leak):
    """Forward + backward: (outputs, layer inputs [h_0..h_L], deltas[l] (n, k, m_l))."""
    hs = [X]
    zs = []
    h = X
    for l, Wl in enumerate(weights):
        z = h @ _f64(Wl).T
        if biases is not None:
            z = z + _f64(biases[l])
        zs.append(z)
        h = _act(z, leak)
        hs.append(h)
    A = _f64(readout)
    out = h @ A.T
    if readout_bias is not None:
        out = out + _f64(readout_bias)
    deltas = [None] * len(weights)
    g = np.broadcast_to(A[None], (X.shape[0],) + A.shape)  # d f_r / d h_L, (n, k, m_L)
    for l in range(len(weights) - 1, -1, -1):
        dl = g * _dact(zs[l], leak)[:, None, :]
        deltas[l] = dl
        if l > 0:
            g = _mm(dl, _f64(weights[l]))
    return out, hs, deltas


def preact_resnet_forward(X, W0, blocks: Sequence, readout, alpha=1.0, b0=None, biases=None,
                          readout_bias=None, leak=None) -> np.ndarray:  # fmt: skip
    """Outputs (n, k): ``z = W0 x + b0; z += alpha (W_l phi(z) + b_l); f = A phi(z) + c``."""
    return _preact_pass(_f64(X), W0, blocks, readout, alpha, b0, biases, readout_bias, leak)[0]


def preact_resnet(
    X1,
    X2=None,
    *,
    W0,
    blocks: Sequence,
    readout,
    alpha: float = 1.0,
    b0=None,
    biases: Sequence | None = None,
    readout_bias=None,
    leak: float | None = None,
    train: Sequence[str] | None = None,
    scales: Mapping[str, float] | None = None,
    output: str | int = "mean",
    parts: bool = False,
) -> np.ndarray:
    """Empirical NTK of :func:`preact_resnet_forward`; groups ``"W0".."WB"``, ``"b0".."bB"``,
    ``"A"``, ``"c"`` (``train=None``: every group present)."""
    nb = len(blocks)
    names = [f"W{l}" for l in range(nb + 1)] + ["A"]
    if b0 is not None:
        names += ["b0"]
    if biases is not None:
        names += [f"b{l + 1}" for l in range(nb)]
    if readout_bias is not None:
        names += ["c"]
    train = _groups(names if train is None else train, names)
    sc = _scales(scales, train)
    X1 = _f64(X1)
    X2 = X1 if X2 is None else _f64(X2)
    k = np.asarray(readout).shape[0]
    p1 = _preact_pass(X1, W0, blocks, readout, alpha, b0, biases, readout_bias, leak)
    p2 = p1 if X2 is X1 else _preact_pass(
        X2, W0, blocks, readout, alpha, b0, biases, readout_bias, leak
    )
    terms = []
    for l in range(nb + 1):
        for grp, use_input in ((f"W{l}", True), (f"b{l}", False)):
            if grp in train:
                Z = (p1[1][l], p2[1][l]) if use_input else (None, None)
                terms.append((grp, sc[grp], Z[0], Z[1], p1[2][l], p2[2][l]))
    eye = np.eye(k)
    for grp, use_input in (("A", True), ("c", False)):
        if grp in train:
            Z = (p1[1][nb + 1], p2[1][nb + 1]) if use_input else (None, None)
            terms.append((grp, sc[grp], Z[0], Z[1], np.broadcast_to(eye, (X1.shape[0], k, k)),
                          np.broadcast_to(eye, (X2.shape[0], k, k))))  # fmt: skip
    return _gram(terms, output, k, parts)


def _preact_pass(X, W0, blocks, readout, alpha, b0, biases, readout_bias, leak):
    """(out, inputs[g] for W0..WB and A, deltas[g] (n, k, m) for W0..WB incl. alpha)."""
    z = X @ _f64(W0).T
    if b0 is not None:
        z = z + _f64(b0)
    zs = [z]
    for l, Wl in enumerate(blocks):
        br = _act(z, leak) @ _f64(Wl).T
        if biases is not None:
            br = br + _f64(biases[l])
        z = z + alpha * br
        zs.append(z)
    A = _f64(readout)
    hL = _act(z, leak)
    out = hL @ A.T
    if readout_bias is not None:
        out = out + _f64(readout_bias)
    inputs = [X] + [_act(zs[l], leak) for l in range(len(blocks))] + [hL]
    nb = len(blocks)
    deltas = [None] * (nb + 1)
    g = A[None] * _dact(z, leak)[:, None, :]  # d f / d z_B, (n, k, m)
    for l in range(nb, 0, -1):
        deltas[l] = alpha * g  # W_l's output feeds z_l through alpha
        g = g + alpha * _mm(g, _f64(blocks[l - 1])) * _dact(zs[l - 1], leak)[:, None, :]
    deltas[0] = g
    return out, inputs, deltas


def azl_resnet_forward(X, W, U, A, b1=None, b2=None, skip=True) -> np.ndarray:
    """Outputs (n, k) of ``A (relu(W x + b1) + relu(U relu(W x + b1) + b2))`` (eq. 2.1)."""
    return _azl_pass(_f64(X), W, U, A, b1, b2, skip)[0]


def azl_resnet(
    X1,
    X2=None,
    *,
    W,
    U,
    A,
    b1=None,
    b2=None,
    skip: bool = True,
    train: Sequence[str] = ("W", "U"),
    scales: Mapping[str, float] | None = None,
    output: str | int = "mean",
    parts: bool = False,
) -> np.ndarray:
    """Empirical NTK of :func:`azl_resnet_forward` (full ``U``, m x m); groups ``"W"``, ``"b1"``,
    ``"U"``, ``"b2"``, ``"A"``. AZL train ``W`` and ``U`` (with their biases if any), ``A``
    fixed."""
    names = ["W", "U", "A"] + ["b1"] * (b1 is not None) + ["b2"] * (b2 is not None)
    train = _groups(train, names)
    sc = _scales(scales, train)
    X1 = _f64(X1)
    X2 = X1 if X2 is None else _f64(X2)
    k = np.asarray(A).shape[0]
    p1 = _azl_pass(X1, W, U, A, b1, b2, skip)
    p2 = p1 if X2 is X1 else _azl_pass(X2, W, U, A, b1, b2, skip)
    # p = (out, x, h1, h2, delta1 (n,k,m), delta2 (n,k,m))
    table = {"W": (1, 4), "b1": (None, 4), "U": (2, 5), "b2": (None, 5)}
    terms = []
    for grp in ("W", "b1", "U", "b2"):
        if grp in train:
            zi, di = table[grp]
            Z1 = None if zi is None else p1[zi]
            Z2 = None if zi is None else p2[zi]
            terms.append((grp, sc[grp], Z1, Z2, p1[di], p2[di]))
    if "A" in train:
        eye = np.eye(k)
        f1 = p1[2] + p1[3] if skip else p1[3]
        f2 = p2[2] + p2[3] if skip else p2[3]
        terms.append(("A", sc["A"], f1, f2, np.broadcast_to(eye, (X1.shape[0], k, k)),
                      np.broadcast_to(eye, (X2.shape[0], k, k))))  # fmt: skip
    return _gram(terms, output, k, parts)


def _azl_pass(X, W, U, A, b1, b2, skip):
    W, U, A = _f64(W), _f64(U), _f64(A)
    z1 = X @ W.T + (0.0 if b1 is None else _f64(b1))
    h1 = np.maximum(z1, 0.0)
    z2 = h1 @ U.T + (0.0 if b2 is None else _f64(b2))
    h2 = np.maximum(z2, 0.0)
    out = (h1 + h2) @ A.T if skip else h2 @ A.T
    d2 = A[None] * (z2 > 0)[:, None, :]  # d f_r / d z2, (n, k, m)
    g1 = _mm(d2, U)
    if skip:
        g1 = g1 + A[None]
    d1 = g1 * (z1 > 0)[:, None, :]
    return out, X, h1, h2, d1, d2


def azl_bottleneck_forward(X, W, V, A, return_out1=False):
    """Outputs (n, k) of ``out1 = A relu(W (x,1))``, ``out1 + A relu(V (out1, 1))``."""
    p = _bottleneck_pass(_f64(X), W, V, A)
    return (p[0], p[1]) if return_out1 else p[0]


def azl_bottleneck(
    X1,
    X2=None,
    *,
    W,
    V,
    A,
    train: Sequence[str] = ("W", "V"),
    scales: Mapping[str, float] | None = None,
    output: str | int = "mean",
    parts: bool = False,
) -> np.ndarray:
    """Empirical NTK of :func:`azl_bottleneck_forward` (AZL's analysed form, arXiv 1905.10337 Sec. 6).

    ``W`` (m, d+1) acts on ``(x, 1)``, ``V`` (m, k+1) on ``(out1, 1)``, ``A`` (k, m) is fixed;
    groups ``"W"`` and ``"V"`` (AZL train both; ``W``/``V`` here are the full current matrices
    ``W0 + W'``, ``V0 + V'``, so this is the kernel at any point of training)::

        eNTK_rs = <x~, x~'> sum_j G_rj(x) D1_j(x) G_sj(x') D1_j(x')
                + <u~, u~'> sum_i A_ri D2_i(x) A_si D2_i(x'),   G = (I + A D2 V[:, :k]) A
    """
    train = _groups(train, ("W", "V"))
    sc = _scales(scales, train)
    X1 = _f64(X1)
    X2 = X1 if X2 is None else _f64(X2)
    k = np.asarray(A).shape[0]
    p1 = _bottleneck_pass(X1, W, V, A)
    p2 = p1 if X2 is X1 else _bottleneck_pass(X2, W, V, A)
    terms = []
    if "W" in train:
        terms.append(("W", sc["W"], p1[2], p2[2], p1[4], p2[4]))
    if "V" in train:
        terms.append(("V", sc["V"], p1[3], p2[3], p1[5], p2[5]))
    return _gram(terms, output, k, parts)


def _bottleneck_pass(X, W, V, A):
    W, V, A = _f64(W), _f64(V), _f64(A)
    k = A.shape[0]
    xt = np.concatenate([X, np.ones((X.shape[0], 1))], axis=1)
    z1 = xt @ W.T
    out1 = np.maximum(z1, 0.0) @ A.T
    ut = np.concatenate([out1, np.ones((X.shape[0], 1))], axis=1)
    z2 = ut @ V.T
    out = out1 + np.maximum(z2, 0.0) @ A.T
    d2 = A[None] * (z2 > 0)[:, None, :]  # d f_r / d z2
    g_out1 = np.eye(k)[None] + _mm(d2, V[:, :k])  # d f_r / d out1, (n, k, k)
    d1 = _mm(g_out1, A) * (z1 > 0)[:, None, :]  # d f_r / d z1
    return out, out1, xt, ut, d1, d2


# Shared helpers


def _gram(terms, output, k, parts=False):
    """Sum of ``scale * (Z1 Z2^T) * (delta1_r . delta2_s)`` over terms; see the module docstring.

    A term is ``(group, scale, Z1, Z2, Delta1, Delta2)`` with ``Z`` (n, p) the layer input
    (``None`` for a bias: all ones) and ``Delta`` (n, k, q) the output gradients of the layer.
    ``parts``: return ``{group: kernel}`` instead of the sum.
    """
    outs = _outputs(output, k)
    n1, n2 = terms[0][4].shape[0], terms[0][5].shape[0]
    full = output == "full"
    res = {}
    for group, scale, Z1, Z2, D1, D2 in terms:
        ZZ = 1.0 if Z1 is None else Z1 @ Z2.T
        part = np.zeros((n1, n2, k, k) if full else (n1, n2))
        for r, s in outs:
            blk = scale * ZZ * (D1[:, r] @ D2[:, s].T)
            if full:
                part[:, :, r, s] = blk
            else:
                part += blk / len(outs)
        res[group] = part
    return res if parts else sum(res.values())


def _outputs(output, k):
    if isinstance(output, str):
        if output == "mean":
            return [(r, r) for r in range(k)]
        if output == "full":
            return [(r, s) for r in range(k) for s in range(k)]
        raise ValueError(f"output must be 'mean', 'full' or an int, got {output!r}")
    r = int(output)
    if not 0 <= r < k:
        raise ValueError(f"output {r} is outside [0, {k})")
    return [(r, r)]


def _groups(train, names):
    if isinstance(train, str):
        train = (train,)
    train = tuple(train)
    bad = set(train) - set(names)
    if bad or not train:
        raise ValueError(f"train must be a non-empty subset of {tuple(names)}, got {train}")
    return train


def _scales(scales, train):
    scales = dict(scales or {})
    bad = set(scales) - set(train)
    if bad:
        raise ValueError(f"scales given for groups that are not trained: {sorted(bad)}")
    return {g: float(scales.get(g, 1.0)) for g in train}


def _f64(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64)
