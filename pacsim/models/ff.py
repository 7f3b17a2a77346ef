"""Feed-forward ReLU networks: the AZL-ResNet and the AZLL two- and three-layer networks.

Notation (Allen-Zhu & Li, arXiv 1905.10337, eq. 2.1 and Sec. 6; Allen-Zhu, Li & Liang, arXiv
1811.04918, Secs. 3-4; ``arch`` names the
network; the bias columns of the papers' augmented inputs ``(x, 1)`` are the vectors ``b1, b2``)::

    "mlp2":    h1 = ReLU(W x + b1),                                   out = A h1
    "mlp3":    h1 = ReLU(W x + b1),  h2 = ReLU(V h1 + b2),             out = A h2
    "resnet":  h1 = ReLU(W x + b1),  out1 = A h1,
               h2 = ReLU(V out1 + b2),                                out = out1 + A h2

    W (m, d_in), b1 (m,), A (d_out, m);  V (m, m) and b2 (m,) for "mlp3";
    V (m, d_out) and b2 (m,) for "resnet" (AZL's bottleneck U = V A, arXiv 1905.10337 Sec. 6)

AZL-ResNet writes ``W (x, 1)`` and ``V (out1, 1)``: that is ``[W | b1]`` and ``[V | b2]`` here.
The loss of a sample is ``0.5 * ||out - y||^2``. Which arrays are trained, and at what relative
step size, is a :class:`Rates` (``eta_a = eta * rates.a``; 0 = fixed). The papers train the
hidden layers only: ``W, b1`` (and ``V, b2``), with ``A`` fixed (:func:`default_rates`).

Every function works on arrays, without any config::

    p = ff.init_params("resnet", m, d_in, d_out, rng, init="theory")
    Yhat = ff.forward(p, X)                        # X (n, d_in) -> (n, d_out)
    loss, g = ff.loss_and_grad(p, X, Y)            # g.W (m, d_in), g.V, g.b1, g.b2, g.A
                                                   # (batched BLAS products from 4 samples)
    n_steps, losses = ff.sgd_chunk(p, X, Y, eta)   # vanilla SGD, batch 1, in place
    T = ff.ntk_trace(p, X)                         # per-sample gradient-kernel traces (n,)

float32 and float64 are supported (float64 is the default).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from . import _ff_jit

DTYPES = (np.float32, np.float64)
ARCHS = ("mlp2", "mlp3", "resnet")
_CODE = {"mlp2": _ff_jit.MLP2, "mlp3": _ff_jit.MLP3, "resnet": _ff_jit.RESNET}
#: Initialisation presets of each architecture (see :func:`init_std`).
INITS = {"resnet": ("theory", "experiment"), "mlp2": ("azll", "experiment"),
         "mlp3": ("azll", "experiment")}
#: The arrays of every network, in kernel (and draw) order.
NAMES = ("W", "b1", "V", "b2", "A")
#: The ways :func:`loss_and_grad` computes a batch.
PATHS = ("auto", "samples", "batched")
#: ``loss_and_grad(path="auto")`` takes the batched (BLAS) path from this many samples on:
#: below it, the per-sample kernel's matrix-vector products cost about as much as the
#: matrix-matrix products and skip NumPy's per-call overhead (measured on one thread: the
#: batched path is 1.3-2.2x faster at 4 samples for m in {64, 256, 1000}, except the ResNet at
#: m = 64, 0.85x; at 50 samples, 6x faster for mlp3 at m = 1000 and 2000).
BATCH_MIN = 4


@dataclass(frozen=True, kw_only=True)
class FFParams:
    """Weights of a feed-forward network. Arrays are C-contiguous, of one float dtype; SGD
    updates the trained ones in place.

    Attributes
    ----------
    arch : {"mlp2", "mlp3", "resnet"}
    W : ndarray of shape (m, d_in)
        First-layer weights.
    b1 : ndarray of shape (m,)
        First-layer bias (AZL-ResNet: the last column of its ``W``).
    A : ndarray of shape (d_out, m)
        Output weights (fixed by default; shared by both ResNet blocks).
    V : ndarray of shape (m, m) ("mlp3") or (m, d_out) ("resnet"); None for "mlp2"
        Second-layer weights.
    b2 : ndarray of shape (m,); None for "mlp2"
        Second-layer bias.
    """

    arch: str
    W: np.ndarray
    b1: np.ndarray
    A: np.ndarray
    V: np.ndarray | None = None
    b2: np.ndarray | None = None

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {self.arch!r}")
        two = self.arch != "mlp2"
        if (self.V is not None) != two or (self.b2 is not None) != two:
            raise ValueError(f"{self.arch} needs V and b2" if two else "mlp2 has no V or b2")
        dtype = self.W.dtype if isinstance(self.W, np.ndarray) else None
        for name in NAMES:
            a = getattr(self, name)
            if a is None:
                continue
            ndim = 1 if name.startswith("b") else 2
            if not isinstance(a, np.ndarray) or a.ndim != ndim:
                raise ValueError(f"{name} must be a {ndim}-D ndarray")
            if a.dtype not in DTYPES or not a.flags.c_contiguous:
                raise ValueError(f"{name} must be C-contiguous float32 or float64, got {a.dtype}")
            if a.dtype != dtype:
                raise ValueError(f"{name} has dtype {a.dtype}, W has {dtype}")
        m, d_out = self.W.shape[0], self.A.shape[0]
        shapes = {"W": (m, self.W.shape[1]), "b1": (m,), "A": (d_out, m)}
        if two:
            shapes.update(V=(m, m) if self.arch == "mlp3" else (m, d_out), b2=(m,))
        bad = [n for n, s in shapes.items() if getattr(self, n).shape != s]
        if bad or m == 0 or d_out == 0:
            got = ", ".join(f"{n} {getattr(self, n).shape}" for n in shapes)
            raise ValueError(f"shapes do not fit a {self.arch} network: {got}")

    @property
    def m(self) -> int:
        return self.W.shape[0]

    @property
    def d_in(self) -> int:
        return self.W.shape[1]

    @property
    def d_out(self) -> int:
        return self.A.shape[0]

    @property
    def dtype(self) -> np.dtype:
        return self.W.dtype

    def arrays(self) -> tuple[np.ndarray, ...]:
        """``(W, b1, V, b2, A)`` for the kernels (empty ``V``, ``b2`` for "mlp2")."""
        V = self.V if self.V is not None else np.empty((0, 0), self.dtype)
        b2 = self.b2 if self.b2 is not None else np.empty(0, self.dtype)
        return self.W, self.b1, V, b2, self.A

    def copy(self) -> FFParams:
        return FFParams(arch=self.arch, **{n: _copy(getattr(self, n)) for n in NAMES})


class FFGrad(NamedTuple):
    """Gradients of the mean loss with respect to every array (``None`` where absent)."""

    W: np.ndarray
    b1: np.ndarray
    V: np.ndarray | None
    b2: np.ndarray | None
    A: np.ndarray


class Rates(NamedTuple):
    """Relative step sizes: array ``a`` takes SGD steps ``eta * rate_a``; 0 keeps it fixed.

    ``V`` and ``b2`` are ignored for "mlp2".
    """

    W: float = 1.0
    b1: float = 1.0
    V: float = 1.0
    b2: float = 1.0
    A: float = 0.0


def default_rates(lr_ratio_v: float = 1.0, train_bias: bool = True,
                  train_output: bool = False) -> Rates:
    """The papers' choice: hidden layers trained, ``A`` fixed (AZL-ResNet Sec. 6, AZLL Secs. 3.2 and 4).

    ``lr_ratio_v`` is ``eta_V / eta_W`` (AZL-ResNet trains its two blocks at different rates,
    :func:`theorem_lr_ratio`); ``train_bias = False`` fixes ``b1`` and ``b2`` (the AZLL
    theorems' setting); ``train_output = True`` also trains ``A``.
    """
    b = 1.0 if train_bias else 0.0
    return Rates(W=1.0, b1=b, V=lr_ratio_v, b2=b * lr_ratio_v, A=1.0 if train_output else 0.0)


def theorem_lr_ratio(alpha: float, p_F: int, p_G: int,  # noqa: N803 - paper notation
                     C_s_F: float, C_s_G: float) -> float:
    """AZL-ResNet Theorem 1's ``eta_v / eta_w = (alpha p_G C_s(G) / (p_F C_s(F)))^2``, its
    ``Theta~`` constants and log factors taken as 1 (arXiv 1905.10337, Theorem 1)."""
    return float((alpha * p_G * C_s_G / (p_F * C_s_F)) ** 2)


def init_std(arch: str, m: int, d_in: int, init: str | None = None,
             eps_a: float = 1.0) -> dict[str, float]:
    """Standard deviation of each array's i.i.d. zero-mean Gaussian entries at initialisation.

    * ``resnet``, ``init = "theory"`` (arXiv 1905.10337 Sec. 6 and Table 1; pacsim's values):
      ``A ~ N(0, 1/m)``, ``[W | b1] ~ N(0, sigma_w^2)`` with ``sigma_w = m^(-1/4)`` (inside
      Table 1's range ``[m^(-1/2+0.01), m^(-0.01)]``), ``[V | b2] ~ N(0, sigma_v^2/m)`` with
      ``sigma_v = 1``.
    * ``resnet``, ``init = "experiment"`` (arXiv 1905.10337 v2's experiment, reading the printed
      ``N(1, 1/m)`` as the typo for ``N(0, 1/m)`` it must be): ``A``, ``[V | b2] ~ N(0, 1/m)``;
      ``[W | b1] ~ N(0, 1/d_in)``.
    * ``mlp2`` and ``mlp3``, ``init = "azll"`` (AZLL, arXiv 1811.04918, Secs. 3.2, 4 and the
      experiments): ``W, b1`` (and ``V, b2``) ``~ N(0, 1/m)``; ``A ~ N(0, eps_a^2)``. ``eps_a = 1``
      is the experiments' and the three-layer theorem's value; the two-layer theorem takes
      ``eps_a = Theta~(eps)``.
    * ``mlp2`` and ``mlp3``, ``init = "experiment"``: the "similar initialisation" AZL-ResNet's
      experiment gives its two- and three-layer nets (arXiv 1905.10337 v2), i.e. the
      ResNet experiment preset: ``[W | b1] ~ N(0, 1/d_in)``, ``[V | b2] ~ N(0, 1/m)``,
      ``A ~ N(0, eps_a^2 / m)``. Use it on unnormalised inputs such as {-1, 1}^30, where
      ``N(0, 1/m)`` first-layer weights give vanishing pre-activations.
    """
    init = init or INITS[arch][0]
    if init not in INITS[arch]:
        raise ValueError(f"init for {arch} must be one of {INITS[arch]}, got {init!r}")
    s = 1.0 / np.sqrt(m)
    if arch != "resnet" and init == "azll":
        return {"W": s, "b1": s, "V": s, "b2": s, "A": float(eps_a)}
    if arch != "resnet":  # "experiment"
        s_w = 1.0 / np.sqrt(d_in)
        return {"W": s_w, "b1": s_w, "V": s, "b2": s, "A": float(eps_a) * s}
    if eps_a != 1.0:
        raise ValueError("eps_a applies to mlp2 and mlp3 only")
    s_w = m**-0.25 if init == "theory" else 1.0 / np.sqrt(d_in)
    return {"W": s_w, "b1": s_w, "V": s, "b2": s, "A": s}


def init_params(arch: str, m: int, d_in: int, d_out: int, rng: np.random.Generator,
                dtype=np.float64, *, init: str | None = None, eps_a: float = 1.0) -> FFParams:
    """Gaussian initialisation of :func:`init_std` (``init`` defaults to the first preset:
    "theory" for the ResNet, "azll" for the MLPs).

    ``W, b1, V, b2, A`` are drawn in that order in float64 (``V``, ``b2`` skipped for "mlp2")
    and then cast, so float32 and float64 runs start from the same weights up to rounding.
    """
    std = init_std(arch, m, d_in, init, eps_a)
    shapes = {"W": (m, d_in), "b1": (m,), "V": (m, m if arch == "mlp3" else d_out),
              "b2": (m,), "A": (d_out, m)}
    dtype = np.dtype(dtype)
    arrays = {}
    for name in NAMES:
        if arch == "mlp2" and name in ("V", "b2"):
            continue
        arrays[name] = (rng.standard_normal(shapes[name]) * std[name]).astype(dtype)
    return FFParams(arch=arch, **arrays)


def concat_tokens(tokens: np.ndarray, dtype=np.float64) -> np.ndarray:
    """A sequence concept's inputs as one vector: (n, L, d_x) -> (n, (L-1) d_x).

    The tokens at positions 1..L-1, concatenated; ``tokens[:, 0]`` (the start position, which
    carries no token) is dropped.
    """
    n = tokens.shape[0]
    return np.ascontiguousarray(tokens[:, 1:].reshape(n, -1), dtype=dtype)


def forward(p: FFParams, X: np.ndarray) -> np.ndarray:
    """Network outputs.

    Parameters
    ----------
    p : FFParams
    X : ndarray of shape (n, d_in)

    Returns
    -------
    Yhat : ndarray of shape (n, d_out), in ``p.dtype``
    """
    X = _as_inputs(p, X)
    relu = functools.partial(np.maximum, 0)  # propagates NaN, like the kernels' ReLU
    H1 = relu(X @ p.W.T + p.b1)  # (n, m): one GEMM per layer
    if p.arch == "mlp2":
        return H1 @ p.A.T
    if p.arch == "mlp3":
        return relu(H1 @ p.V.T + p.b2) @ p.A.T
    O1 = H1 @ p.A.T  # (n, d_out)
    return O1 + relu(O1 @ p.V.T + p.b2) @ p.A.T


def loss_and_grad(p: FFParams, X: np.ndarray, Y: np.ndarray, *,
                  path: str = "auto") -> tuple[float, FFGrad]:
    """Mean loss ``mean_k 0.5 * ||out(X[k]) - Y[k]||^2`` and its gradient w.r.t. every array.

    Parameters
    ----------
    p : FFParams
    X : ndarray of shape (n, d_in)
    Y : ndarray of shape (n, d_out)
    path : {"auto", "samples", "batched"}
        How the batch is computed; the results agree up to rounding. ``"samples"``: the jitted
        per-sample kernel (matrix-vector products, the code :func:`sgd_chunk` runs);
        ``"batched"``: every layer as one matrix-matrix product over the batch (NumPy/BLAS,
        :func:`_loss_and_grad_batched`); ``"auto"``: batched when ``n >= BATCH_MIN``.

    Returns
    -------
    loss : float
    g : FFGrad
        One gradient per array of ``p``, trained or not (``V``, ``b2`` are None for "mlp2").
    """
    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS}, got {path!r}")
    X, Y = _as_batch(p, X, Y)
    n = X.shape[0]
    if path == "batched" or (path == "auto" and n >= BATCH_MIN):
        with np.errstate(over="ignore", invalid="ignore"):  # a diverging run: inf/NaN, no warning
            return _loss_and_grad_batched(p, X, Y)
    P = p.arrays()
    G = tuple(np.zeros_like(a) for a in P)
    ones = np.ones(5, dtype=p.dtype)
    total = _ff_jit._loss_and_grad(_CODE[p.arch], P, X, Y, G, _workspace(p), ones)
    for g in G:
        g /= n
    grads = dict(zip(NAMES, G, strict=True))
    if p.arch == "mlp2":
        grads.update(V=None, b2=None)
    return total / n, FFGrad(**grads)


def _loss_and_grad_batched(p: FFParams, X: np.ndarray, Y: np.ndarray) -> tuple[float, FFGrad]:
    """:func:`loss_and_grad` with each layer one matrix-matrix product over the batch.

    Rows of ``X`` are samples; ``Z_l = H_{l-1} M_l^T + b_l`` forward, and backward the
    pre-activation gradients ``D_l`` (one row per sample) give ``dLoss/dM_l = D_l^T H_{l-1}``
    and ``dLoss/db_l = sum of the rows of D_l``. The residual is scaled by ``1/n`` first, so
    every gradient is already the mean's. ReLU and its derivative ``1[z > 0]`` as in the
    kernels (a NaN pre-activation stays NaN in the forward pass).
    """
    n = X.shape[0]
    arch, W, A = p.arch, p.W, p.A
    H1 = X @ W.T
    H1 += p.b1
    np.maximum(H1, 0, out=H1)  # h1 = ReLU(z1), NaN-propagating; 1[z1 > 0] = 1[h1 > 0]
    if arch == "mlp2":
        out = H1 @ A.T
    elif arch == "mlp3":
        H2 = H1 @ p.V.T
        H2 += p.b2
        np.maximum(H2, 0, out=H2)
        out = H2 @ A.T
    else:
        O1 = H1 @ A.T
        H2 = O1 @ p.V.T
        H2 += p.b2
        np.maximum(H2, 0, out=H2)
        out = H2 @ A.T
        out += O1
    R = out
    R -= Y  # r = out - y, then dLoss/dout of the mean loss
    loss = 0.5 * float(np.sum(np.square(R, dtype=np.float64))) / n
    R *= p.dtype.type(1.0 / n)
    gV = gb2 = None
    if arch == "mlp2":
        D1 = R @ A
        gA = R.T @ H1
    else:
        D2 = R @ A
        D2 *= H2 > 0  # d2 = (A^T r) * 1[z2 > 0]
        gb2 = D2.sum(axis=0)
        gA = R.T @ H2
        # both products with V before gV (m x m for mlp3) is written, while V may be in cache
        if arch == "mlp3":
            D1 = D2 @ p.V  # d1 = (V^T d2) * 1[z1 > 0]
            gV = D2.T @ H1
        else:
            E1 = D2 @ p.V  # dLoss/do1 = r (skip path) + V^T d2 (second block)
            gV = D2.T @ O1
            E1 += R
            gA += E1.T @ H1  # A also makes o1
            D1 = E1 @ A
    D1 *= H1 > 0  # d1 * 1[z1 > 0]
    gW = D1.T @ X
    gb1 = D1.sum(axis=0)
    return loss, FFGrad(W=gW, b1=gb1, V=gV, b2=gb2, A=gA)


def sgd_chunk(
    p: FFParams,
    X: np.ndarray,
    Y: np.ndarray,
    eta: float,
    order: np.ndarray | None = None,
    rates: Rates | None = None,
    losses: np.ndarray | None = None,
) -> tuple[int, np.ndarray]:
    """Vanilla SGD (batch 1, constant step) over samples ``order`` of ``X``, in place.

    One step per entry of ``order`` (default: every sample once, in order):
    ``a <- a - eta * rates.a * grad_a loss(x_k, y_k)`` for every array ``a`` with a nonzero
    rate (default :func:`default_rates`: ``W, b1, V, b2``). No momentum, weight decay or clipping.

    Returns
    -------
    n_steps : int
        Steps taken; less than ``len(order)`` if a loss was NaN/Inf (the run diverged at step
        ``n_steps``, which was not applied).
    losses : ndarray of shape (len(order),), float64
        Per-step loss before the update (entries after a divergence are unspecified).
    """
    X, Y = _as_batch(p, X, Y)
    if order is None:
        order = np.arange(X.shape[0], dtype=np.int64)
    order = np.ascontiguousarray(order, dtype=np.int64)
    if order.size and (order.min() < 0 or order.max() >= X.shape[0]):
        raise ValueError("order has indices outside the batch")
    if losses is None:
        losses = np.empty(order.shape[0], dtype=np.float64)
    c = (-eta * _as_rates(rates)).astype(p.dtype)
    n_steps = _ff_jit._sgd_chunk(_CODE[p.arch], p.arrays(), X, Y, order, c, losses,
                                 _workspace(p))
    return int(n_steps), losses


def ntk_trace(p: FFParams, X: np.ndarray, rates: Rates | None = None) -> np.ndarray:
    """Per-sample trace of the gradient kernel of the trained arrays, exactly, at ``p``.

    ``T(x) = sum over outputs s and arrays a of rates.a * ||d out_s(x) / d a||_F^2``: the
    trace of the kernel ``K(x, x)`` through which one SGD step of size ``eta`` changes the
    sample's outputs by ``-eta K r``. With ``lambda_max(K) <= T``, ``eta = lr / E_x T(x)`` is
    stable for ``lr < 2`` in the kernel regime, whatever the width and the input scale.

    Returns
    -------
    T : ndarray of shape (n,), float64
    """
    X = _as_inputs(p, X)
    traces = np.empty(X.shape[0], dtype=np.float64)
    _ff_jit._ntk_trace(_CODE[p.arch], p.arrays(), X, _as_rates(rates), _workspace(p), traces)
    return traces


# Internal helpers


def _copy(a):
    return None if a is None else a.copy()


def _as_rates(rates) -> np.ndarray:
    r = np.asarray(default_rates() if rates is None else rates, dtype=np.float64)
    if r.shape != (5,) or not (np.isfinite(r).all() and (r >= 0).all()):
        raise ValueError(f"rates must be 5 finite non-negative numbers, got {rates!r}")
    return r


def _as_inputs(p: FFParams, X) -> np.ndarray:
    X = np.ascontiguousarray(X, dtype=p.dtype)
    if X.ndim != 2 or X.shape[1] != p.d_in:
        raise ValueError(f"X must have shape (n, {p.d_in}), got {X.shape}")
    return X


def _as_batch(p: FFParams, X, Y):
    X = _as_inputs(p, X)
    Y = np.ascontiguousarray(Y, dtype=p.dtype)
    if Y.shape != (X.shape[0], p.d_out):
        raise ValueError(f"Y must have shape {(X.shape[0], p.d_out)}, got {Y.shape}")
    return X, Y


def _workspace(p: FFParams):
    """``(h1, o1, h2, out, r, d1, d2, e1)`` of :mod:`pacsim.models._ff_jit`."""
    m, k = p.m, p.d_out
    return tuple(np.zeros(size, dtype=p.dtype) for size in (m, k, m, k, k, m, m, k))


def warmup(dtypes=("float64",)) -> None:
    """Compile (or load from the on-disk cache) every kernel for ``dtypes`` on tiny inputs.

    The architectures share one compiled kernel per dtype (``arch`` is a runtime code).
    """
    for dtype in dtypes:
        rng = np.random.default_rng(0)
        X = np.ones((1, 2), dtype=dtype)
        Y = np.zeros((1, 1), dtype=dtype)
        for arch in ARCHS:
            p = init_params(arch, 2, 2, 1, rng, dtype)
            forward(p, X)
            loss_and_grad(p, X, Y)
            sgd_chunk(p, X, Y, 0.0)
            ntk_trace(p, X)
