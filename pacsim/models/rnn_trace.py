"""The per-sample trace of the RNN's tangent kernel at initialisation: the wide-limit closed
form for the ReLU cell (:func:`ntk_trace`) and the exact measurement for any cell and weights
(:func:`empirical_ntk_trace`). It sets the scale of the step size (``lr_units = "ntk"``:
``eta = lr / T``). Re-exported by :mod:`pacsim.models.rnn`."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .rnn import RNNParams, _as_inputs, _sq_norm, _trained_flags, forward, loss_and_grad
from .rnn_modes import mode_spec


def ntk_trace(
    m: int,
    L: int,  # noqa: N803
    eps_x: float,
    positions,
    lam: float = 1.0,
    *,
    mode: str = "azl",
    trained: Iterable[str] = ("W",),
    d: int = 1,
    x_sq_norms=None,
) -> float:
    """Expected per-sample trace of the gradient kernel of the trained matrices at init.

    ``T = sum over scored positions j and outputs s of E||d(lam yhat_{j,s})/d theta||^2`` for
    the ReLU cell at a gain-``sqrt(2)`` init (azl, orthogonal or critical: all have
    ``E||W v||^2 = 2||v||^2``, so ``chi_1 = 1``), ``A ~ N(0, 2/m)``, ``B ~ N(0, b_var/d)``.
    Wide limit ([INFER + NUM]; the derivation below, docs/model.md), 1-based ``j`` and ``t``::

        q_t = ||h_t||^2 = sum_{s<=t} n_s,   n_s = ||x_s||^2
        T_W = lam^2 (b_var m / 2) sum_j sum_{t=1}^{j-1} q_t
        T_A = lam^2 (b_var m / 2) sum_j q_j
        T_B = lam^2 d sum_j q_j

    Derivation: ``d y_{j,s}/dW = sum_t D_t h_{t-1}^T`` with ``D_t = dy_{j,s}/de_t``; at
    ``chi_1 = 1`` backpropagation keeps ``E||D_t||^2 = ||B_s||^2 / 2 = b_var m / (2 d)`` at
    every lag, and the cross terms ``t != t'`` vanish in the wide limit; likewise for ``A``
    with ``x_t`` in place of ``h_{t-1}``; ``d(lam y_{j,s})/dB = lam e_s h_j^T``. The input
    norms ``n_s`` follow ``mode``: azl ``(1, eps^2, ..., eps^2)``, pg21
    ``(1, eps^2, ..., eps^2, 1)``, plain ``(1, ..., 1)`` (unit tokens, ``eps_x`` ignored),
    unless ``x_sq_norms`` (length ``L``) gives them: pass the mean ``||x_t||^2`` of the encoded
    inputs when a position is empty (the AZL concept's token 0 is zero, which the plain
    encoding passes through). For other cells or gains use :func:`empirical_ntk_trace`.

    A per-sample SGD step changes that sample's outputs by ``-eta K r`` with
    ``lambda_max(K) <= trace(K)``, so ``eta = lr / T`` is stable for ``lr < 2`` in the kernel
    regime, whatever ``m``, ``L`` and ``lam``. Like the theory's
    ``eta = Theta(1/(eps rho^2 m))``, it scales as ``1/(m L^2)`` (up to log factors).
    """
    md = mode_spec(mode)
    tW, tA, tB = _trained_flags(trained)
    if x_sq_norms is not None:
        n = np.asarray(x_sq_norms, dtype=np.float64)
        if n.shape != (L,):
            raise ValueError(f"x_sq_norms must have shape ({L},), got {n.shape}")
    else:
        n = np.full(L, 1.0 if md.name == "plain" else eps_x**2)
        n[0] = 1.0 if md.start_token else n[0]
        n[-1] = 1.0 if md.end_token else n[-1]
    q = np.cumsum(n)  # q[t-1] = q_t, 1-based t
    cum_q = np.concatenate([[0.0], np.cumsum(q)])  # cum_q[k] = sum_{t<=k} q_t
    pos = np.asarray(positions, dtype=np.int64)  # 0-based position p is 1-based j = p + 1
    total = 0.0
    if tW:
        total += md.b_var * m / 2.0 * cum_q[pos].sum()  # sum_{t=1}^{j-1} q_t = cum_q[j-1]
    if tA:
        total += md.b_var * m / 2.0 * q[pos].sum()
    if tB:
        total += d * q[pos].sum()
    return float(lam**2 * total)


def empirical_ntk_trace(
    p: RNNParams,
    X: np.ndarray,
    positions,
    lam: float = 1.0,
    *,
    trained: Iterable[str] = ("W",),
    K: int | None = None,  # noqa: N803
) -> float:
    """Measured per-sample trace of the gradient kernel of the ``trained`` matrices.

    ``mean over the samples of X of sum over scored positions j and outputs s of
    ||d(lam yhat_{j,s})/d theta||^2`` (squared Frobenius norms summed over the trained
    matrices), exact for the given weights: each gradient is that of
    ``0.5 ||yhat_j - Y_j||^2`` with ``Y = yhat - e_s`` at position ``j`` alone, whose residual
    is ``e_s``. Costs ``len(positions) * d`` forward-backward passes per sample; a few
    samples suffice (the per-sample scatter is small at large ``m``).
    """
    X = _as_inputs(p, X)
    Yhat = forward(p, X, lam)
    total = 0.0
    for k in range(X.shape[0]):
        for j in np.asarray(positions, dtype=np.int64):
            for s in range(p.d):
                Y = Yhat[k : k + 1].copy()
                Y[0, j, s] -= 1.0
                _, g = loss_and_grad(p, X[k : k + 1], Y, lam, [j], trained=trained, K=K)
                total += sum(_sq_norm(a) for a in g if a is not None)
    return total / X.shape[0]
