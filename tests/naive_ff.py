"""Slow, obviously-correct NumPy references ("slow twins") of the feed-forward kernels.

The references the fast code in :mod:`pacsim.models.ff` (and ``pacsim.models._ff_jit``) is
tested against: one sample at a time, float64, whole-vector NumPy, textbook backpropagation, no
Numba and no workspaces. Written from the formulas, not from the kernels::

    mlp2:    h1 = relu(W x + b1),                                   out = A h1
    mlp3:    h1 = relu(W x + b1),  h2 = relu(V h1 + b2),             out = A h2
    resnet:  h1 = relu(W x + b1),  o1 = A h1,  h2 = relu(V o1 + b2),  out = o1 + A h2

    loss(sample) = 0.5 * ||out - y||^2,   loss(batch) = mean over samples

Weights are passed as a dict ``{"W", "b1", "V", "b2", "A"}`` (no ``V``, ``b2`` for mlp2).
"""

from __future__ import annotations

import numpy as np

NAMES = ("W", "b1", "V", "b2", "A")


def _relu(z):
    return np.maximum(z, 0.0)  # NaN stays NaN


def _as64(w):
    return {k: np.asarray(v, dtype=np.float64) for k, v in w.items() if v is not None}


def sample_forward(arch, w, x):
    """Every intermediate of one input: ``{"z1", "h1", "o1", "z2", "h2", "out"}``."""
    f = {"z1": w["W"] @ x + w["b1"]}
    f["h1"] = _relu(f["z1"])
    if arch == "mlp2":
        f["out"] = w["A"] @ f["h1"]
        return f
    block2_in = f["h1"] if arch == "mlp3" else w["A"] @ f["h1"]
    if arch == "resnet":
        f["o1"] = block2_in
    f["z2"] = w["V"] @ block2_in + w["b2"]
    f["h2"] = _relu(f["z2"])
    f["out"] = w["A"] @ f["h2"] + (f["o1"] if arch == "resnet" else 0.0)
    return f


def forward(arch, w, X):
    """Outputs (n, d_out) and the list of per-sample intermediates, in float64."""
    w = _as64(w)
    fs = [sample_forward(arch, w, x) for x in np.asarray(X, dtype=np.float64)]
    return np.array([f["out"] for f in fs]), fs


def sample_loss_and_grad(arch, w, x, y):
    """Loss of one sample and the gradient w.r.t. every array (chain rule, layer by layer)."""
    f = sample_forward(arch, w, x)
    r = f["out"] - y  # dLoss/dout
    g = {}
    if arch == "mlp2":
        dz1 = (w["A"].T @ r) * (f["z1"] > 0)
        g["A"] = np.outer(r, f["h1"])
    elif arch == "mlp3":
        dz2 = (w["A"].T @ r) * (f["z2"] > 0)
        dz1 = (w["V"].T @ dz2) * (f["z1"] > 0)
        g["A"] = np.outer(r, f["h2"])
        g["V"], g["b2"] = np.outer(dz2, f["h1"]), dz2
    else:
        dz2 = (w["A"].T @ r) * (f["z2"] > 0)
        do1 = r + w["V"].T @ dz2  # skip connection plus the second block
        dz1 = (w["A"].T @ do1) * (f["z1"] > 0)
        g["A"] = np.outer(r, f["h2"]) + np.outer(do1, f["h1"])  # A appears in both blocks
        g["V"], g["b2"] = np.outer(dz2, f["o1"]), dz2
    g["W"], g["b1"] = np.outer(dz1, x), dz1
    return 0.5 * float(r @ r), g


def loss_and_grad(arch, w, X, Y):
    """Mean loss over the samples and its gradients (dict), in float64."""
    w = _as64(w)
    X, Y = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
    total, G = 0.0, {k: np.zeros_like(v) for k, v in w.items()}
    for x, y in zip(X, Y, strict=True):
        loss, g = sample_loss_and_grad(arch, w, x, y)
        total += loss
        for k in G:
            G[k] += g[k]
    n = len(X)
    return total / n, {k: v / n for k, v in G.items()}


def sgd(arch, w, X, Y, eta, rates, order):
    """Vanilla SGD with batch 1: ``a <- a - eta * rates[a] * grad_a`` per index in ``order``.

    Returns new float64 weights (the inputs are not modified) and the loss of every step,
    taken before that step's update.
    """
    w = {k: v.copy() for k, v in _as64(w).items()}
    X, Y = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
    losses = []
    for k in order:
        loss, g = sample_loss_and_grad(arch, w, X[k], Y[k])
        losses.append(loss)
        for name in w:
            w[name] = w[name] - eta * rates[name] * g[name]
    return w, np.array(losses)


def ntk_trace(arch, w, x, rates):
    """``sum_s sum_a rates[a] ||d out_s / d a||^2`` by the one-hot trick: with ``y = out - e_s``
    the residual is ``e_s``, so the loss gradient is exactly ``d out_s / d a``."""
    w = _as64(w)
    out = sample_forward(arch, w, x)["out"]
    total = 0.0
    for s in range(len(out)):
        y = out.copy()
        y[s] -= 1.0
        _, g = sample_loss_and_grad(arch, w, x, y)
        total += sum(rates[k] * float(np.sum(g[k] ** 2)) for k in g)
    return total


def finite_difference_grad(f, a, h):
    """Central differences ``(f(a + h e_i) - f(a - h e_i)) / (2h)`` for every entry of ``a``."""
    a = np.array(a, dtype=np.float64)
    g = np.zeros_like(a)
    for idx in np.ndindex(*a.shape):
        ap, am = a.copy(), a.copy()
        ap[idx] += h
        am[idx] -= h
        g[idx] = (f(ap) - f(am)) / (2.0 * h)
    return g
