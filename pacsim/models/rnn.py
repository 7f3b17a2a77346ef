"""Elman ReLU RNN in the parameterisation of Allen-Zhu & Li (AZL mode).

Notation (``shared/research/rnn_theory.md`` sections 1.1, 1.2, 3, 7.1)::

    h_0 = 0,   h_l = ReLU(W h_{l-1} + A x_l),   y_l = lam * B h_l
    W (m, m), A (m, d_in) ~ N(0, 2/m);   B (d, m) ~ N(0, 1/d);   only W is trained

AZL inputs: a start token ``x_1 = (0, ..., 0, 1)`` and tokens ``x_l = (eps_x * x*_l, 0)``.
The loss of a sample is ``sum over scored positions j of 0.5 * ||yhat_j - y_j||^2``; AZL scores
``j >= 3`` (1-based), i.e. 0-based positions ``2..L-1``.

Every function here works on arrays, without any config::

    p = rnn.RNNParams(W=W, A=A, B=B)
    Yhat = rnn.forward(p, X, lam=1.0)                 # X (n, L, d_in) -> (n, L, d)
    loss, g = rnn.loss_and_grad(p, X, Y, lam=1.0)     # g.W (m, m)

float64 is the default dtype: the signal that tells sequences apart enters the hidden state at
O(eps_x) on top of an O(1) common part (the start token), so float32 rounding (1e-7 relative)
is amplified by 1/eps_x in the informative directions. float32 is supported and about twice as
fast; use it with eps_x >= 0.1 and check it against float64 on a cell first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from . import _rnn_jit

DTYPES = (np.float32, np.float64)


@dataclass(frozen=True)
class RNNParams:
    """Weights of the RNN. Arrays are C-contiguous, of one float dtype; SGD updates ``W`` in place.

    Attributes
    ----------
    W : ndarray of shape (m, m)
        Recurrent weights (trained).
    A : ndarray of shape (m, d_in)
        Input weights (fixed in AZL mode).
    B : ndarray of shape (d, m)
        Readout weights (fixed).
    """

    W: np.ndarray
    A: np.ndarray
    B: np.ndarray

    def __post_init__(self):
        W, A, B = self.W, self.A, self.B
        for name, a in (("W", W), ("A", A), ("B", B)):
            if not isinstance(a, np.ndarray) or a.ndim != 2:
                raise ValueError(f"{name} must be a 2-D ndarray")
            if a.dtype not in DTYPES or not a.flags.c_contiguous:
                raise ValueError(f"{name} must be C-contiguous float32 or float64, got {a.dtype}")
        if not (W.dtype == A.dtype == B.dtype):
            raise ValueError(f"W, A, B must share a dtype, got {W.dtype}, {A.dtype}, {B.dtype}")
        m = W.shape[0]
        if W.shape != (m, m) or A.shape[0] != m or B.shape[1] != m:
            raise ValueError(f"shapes do not fit: W {W.shape}, A {A.shape}, B {B.shape}")

    @property
    def m(self) -> int:
        return self.W.shape[0]

    @property
    def d_in(self) -> int:
        return self.A.shape[1]

    @property
    def d(self) -> int:
        return self.B.shape[0]

    @property
    def dtype(self) -> np.dtype:
        return self.W.dtype

    def copy(self) -> RNNParams:
        return RNNParams(W=self.W.copy(), A=self.A.copy(), B=self.B.copy())


class RNNGrad(NamedTuple):
    """Gradients of the trained matrices; ``None`` for a matrix that is not trained."""

    W: np.ndarray
    A: np.ndarray | None = None
    B: np.ndarray | None = None


def init_params(m: int, d_in: int, d: int, rng: np.random.Generator, dtype=np.float64) -> RNNParams:
    """AZL initialisation: ``W, A ~ N(0, 2/m)``, ``B ~ N(0, 1/d)``, drawn in that order.

    Draws are made in float64 and then cast, so float32 and float64 runs start from the same
    weights up to rounding.
    """
    W = rng.standard_normal((m, m)) * np.sqrt(2.0 / m)
    A = rng.standard_normal((m, d_in)) * np.sqrt(2.0 / m)
    B = rng.standard_normal((d, m)) * np.sqrt(1.0 / d)
    dtype = np.dtype(dtype)
    return RNNParams(W=W.astype(dtype), A=A.astype(dtype), B=B.astype(dtype))


def azl_inputs(tokens: np.ndarray, eps_x: float, dtype=np.float64) -> np.ndarray:
    """AZL input normalisation: (n, L, d_x) tokens -> (n, L, d_x + 1) network inputs.

    ``x_1 = (0, ..., 0, 1)`` (start token) and ``x_l = (eps_x * x*_l, 0)`` for ``l >= 2``;
    ``tokens[:, 0]`` is ignored.
    """
    n, L, d_x = tokens.shape
    X = np.zeros((n, L, d_x + 1), dtype=dtype)
    X[:, 0, -1] = 1.0
    X[:, 1:, :-1] = eps_x * tokens[:, 1:]
    return X


def forward(p: RNNParams, X: np.ndarray, lam: float = 1.0) -> np.ndarray:
    """Network outputs ``Yhat[:, t] = lam * B h_t`` at every position.

    Parameters
    ----------
    p : RNNParams
    X : ndarray of shape (n, L, d_in)
    lam : float
        Output scale (AZL's lambda).

    Returns
    -------
    Yhat : ndarray of shape (n, L, d), in ``p.dtype``
    """
    X = _as_inputs(p, X)
    Yhat = np.empty((X.shape[0], X.shape[1], p.d), dtype=p.dtype)
    _rnn_jit._forward_batch(p.W, p.A, p.B, X, p.dtype.type(lam), Yhat)
    return Yhat


def loss_and_grad(
    p: RNNParams, X: np.ndarray, Y: np.ndarray, lam: float = 1.0, positions=None
) -> tuple[float, RNNGrad]:
    """Mean loss and its gradient with respect to ``W`` (full BPTT).

    ``loss = mean over the n samples of sum over scored positions j of
    0.5 * ||lam B h_j - Y[:, j]||^2``.

    Parameters
    ----------
    p : RNNParams
    X : ndarray of shape (n, L, d_in)
    Y : ndarray of shape (n, L, d)
    lam : float
    positions : sequence of int or None
        0-based indices of the scored outputs; ``None`` scores every position.

    Returns
    -------
    loss : float
    g : RNNGrad
        ``g.W`` of shape (m, m); ``g.A`` and ``g.B`` are ``None`` (fixed in AZL mode).
    """
    X, Y, scored = _as_batch(p, X, Y, positions)
    H, D, g = _workspace(p, X.shape[1])
    gW = np.empty_like(p.W)
    total = _rnn_jit._loss_and_grad(p.W, p.A, p.B, X, Y, p.dtype.type(lam), scored, gW, H, D, g)
    n = X.shape[0]
    gW /= n
    return total / n, RNNGrad(W=gW)


def sgd_chunk(
    p: RNNParams,
    X: np.ndarray,
    Y: np.ndarray,
    eta: float,
    lam: float = 1.0,
    positions=None,
    order: np.ndarray | None = None,
    losses: np.ndarray | None = None,
) -> tuple[int, np.ndarray]:
    """Vanilla SGD (batch 1, constant step ``eta``) over samples ``order`` of ``X``, in place.

    One step per entry of ``order`` (default: every sample once, in order):
    ``W <- W - eta * grad_W loss(x_k, y_k)``. No momentum, weight decay or clipping.

    Returns
    -------
    n_steps : int
        Steps taken; less than ``len(order)`` if a loss was NaN/Inf (the run diverged at step
        ``n_steps``, which was not applied).
    losses : ndarray of shape (len(order),), float64
        Per-step loss before the update (entries after a divergence are unspecified).
    """
    X, Y, scored = _as_batch(p, X, Y, positions)
    if order is None:
        order = np.arange(X.shape[0], dtype=np.int64)
    order = np.ascontiguousarray(order, dtype=np.int64)
    if order.size and (order.min() < 0 or order.max() >= X.shape[0]):
        raise ValueError("order has indices outside the batch")
    if losses is None:
        losses = np.empty(order.shape[0], dtype=np.float64)
    H, D, g = _workspace(p, X.shape[1])
    cast = p.dtype.type
    n_steps = _rnn_jit._sgd_chunk(
        p.W, p.A, p.B, X, Y, order, cast(lam), cast(eta), scored, losses, H, D, g
    )
    return int(n_steps), losses


def ntk_trace(m: int, L: int, eps_x: float, positions, lam: float = 1.0) -> float:  # noqa: N803
    """Expected per-sample trace of the W-gradient kernel at the AZL initialisation.

    ``T = sum over scored positions j and outputs s of E||d(lam y_{j,s})/dW||_F^2``; in the
    wide limit (rnn_theory.md section 6.3, identical inputs, 2 Vdot = 1)::

        T = lam^2 (m/2) sum_{j scored} sum_{t=1}^{j-1} q_t,   q_t = ||h_t||^2 = 1 + (t-1) eps_x^2

    with 1-based ``j`` and ``t``. A per-sample SGD step changes that sample's outputs by
    ``-eta K r`` with ``lambda_max(K) <= trace(K)``, so ``eta = lr / T`` is stable for
    ``lr < 2`` in the kernel regime, whatever ``m``, ``L`` and ``lam``. Like the theory's
    ``eta = Theta(1/(eps rho^2 m))``, it scales as ``1/(m L^2)`` (up to log factors).
    """
    q = 1.0 + np.arange(L) * eps_x**2  # q_1..q_L
    cum = np.cumsum(q)  # cum[j-1] = sum_{t<=j} q_t
    pos = np.asarray(positions, dtype=np.int64)  # 0-based position p is 1-based j = p + 1
    inner = np.where(pos >= 1, cum[np.maximum(pos - 1, 0)], 0.0)  # sum_{t=1}^{j-1} q_t
    return float(lam**2 * (m / 2.0) * inner.sum())


# Internal helpers


def _as_inputs(p: RNNParams, X) -> np.ndarray:
    X = np.ascontiguousarray(X, dtype=p.dtype)
    if X.ndim != 3 or X.shape[2] != p.d_in:
        raise ValueError(f"X must have shape (n, L, {p.d_in}), got {X.shape}")
    return X


def _as_batch(p: RNNParams, X, Y, positions):
    X = _as_inputs(p, X)
    Y = np.ascontiguousarray(Y, dtype=p.dtype)
    n, L, _ = X.shape
    if Y.shape != (n, L, p.d):
        raise ValueError(f"Y must have shape {(n, L, p.d)}, got {Y.shape}")
    scored = np.zeros(L, dtype=np.bool_)
    if positions is None:
        scored[:] = True
    else:
        idx = np.asarray(positions, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= L):
            raise ValueError(f"positions must lie in [0, {L}), got {idx.tolist()}")
        scored[idx] = True
    return X, Y, scored


def _workspace(p: RNNParams, L: int):  # noqa: N803
    H = np.zeros((L + 1, p.m), dtype=p.dtype)
    D = np.empty((L, p.m), dtype=p.dtype)
    g = np.empty(p.m, dtype=p.dtype)
    return H, D, g


def warmup(dtypes=("float64",)) -> None:
    """Compile (or load from the on-disk cache) every kernel for ``dtypes`` on tiny inputs.

    Called once in the parent process before workers start, so workers only read the cache.
    """
    for dtype in dtypes:
        rng = np.random.default_rng(0)
        p = init_params(2, 2, 1, rng, dtype)
        X = np.ones((1, 3, 2), dtype=dtype)
        Y = np.zeros((1, 3, 1), dtype=dtype)
        forward(p, X)
        loss_and_grad(p, X, Y, positions=[2])
        sgd_chunk(p, X, Y, 0.0, positions=[2])
