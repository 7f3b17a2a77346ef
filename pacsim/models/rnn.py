"""Over-parameterized RNNs trained by vanilla SGD: cells, modes, initialisations, BPTT(K).

Notation (Allen-Zhu & Li, arXiv 1902.01028; Panigrahi & Goyal, arXiv 2106.00047, Defs. 3.1-3.2;
Chen, Pennington & Schoenholz, arXiv 1806.05394, for the minimalRNN)::

    relu, tanh (Elman):  h_t = phi(W h_{t-1} + A x_t)                    phi = ReLU or tanh
    minimal (minimalRNN): z_t = A x_t
                          u_t = sigmoid(W h_{t-1} + V z_t + b)
                          h_t = u_t * h_{t-1} + (1 - u_t) * z_t
    every cell:           h_{-1} = 0,   yhat_t = lam * B h_t             (t = 0..L-1, 0-based)

``W (m, m)``, ``A (m, d_in)``, ``B (d, m)``; the minimalRNN also has a gate-input matrix
``V (m, m)`` and a gate bias ``b (m,)``, which are never trained. Any non-empty subset of
``{W, A, B}`` can be trained. The loss of a sample is
``sum over scored positions t of 0.5 * ||yhat_t - y_t||^2``.

The minimalRNN is the cell of Chen, Pennington & Schoenholz (ICML 2018, arXiv 1806.05394),
from Chen 2017 (arXiv 1711.06788), written from memory of the paper **[RECALL]**, not checked
against its text. The paper's input map ``z_t = Phi(x_t)`` (e.g.
``tanh(W_x x_t + b_z)``) is any embedding; pacsim uses the linear map ``z_t = A x_t``, which
is the form its mean-field analysis takes (``Phi`` absorbed, ``z_t`` the embedded input).

Modes (:data:`MODES`; docs/learners.md) fix the input encoding, the initial scales of ``A``
and ``B``, the default trained matrices and the scored outputs; ``init`` (``"azl"``,
``"critical"``, ``"orthogonal"``) fixes ``W``. Every function works on arrays, without any
config::

    p = rnn.init_params(m, d_in, d, rng, cell="tanh", init="critical", mode="pg21")
    X = rnn.encode_inputs("pg21", tokens, eps_x)
    Yhat = rnn.forward(p, X, lam)                                  # (n, L, d)
    loss, g = rnn.loss_and_grad(p, X, Y, lam, positions, trained=("W", "A"), K=None)
    n_steps, losses = rnn.sgd_chunk(p, X, Y, eta, lam, positions, order, trained=("W", "A"))

float64 is the default dtype: in the AZL/PG21 encodings the signal that tells sequences apart
enters the hidden state at O(eps_x) on top of an O(1) common part (the start token), so
float32 rounding (1e-7 relative) is amplified by 1/eps_x in the informative directions.
float32 is supported and about 1.5-2x faster; use it with eps_x >= 0.1 and check it against
float64 on a cell first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from . import _rnn_blas, _rnn_jit
from .rnn_modes import (
    MODES,
    Mode,
    azl_inputs,
    encode_inputs,
    input_dim,
    mode_spec,
    pg21_inputs,
    plain_inputs,
    scored_positions,
)

DTYPES = (np.float32, np.float64)

#: Cells: Elman ReLU (AZL, the default), Elman tanh, minimalRNN.
CELLS = ("relu", "tanh", "minimal")

#: Initialisations of ``W`` (see :func:`init_params`).
INITS = ("azl", "critical", "orthogonal")

#: Names of the matrices that can be trained.
PARAM_NAMES = ("W", "A", "B")

_CELL_CODE = {"relu": _rnn_jit.RELU, "tanh": _rnn_jit.TANH, "minimal": _rnn_jit.MINIMAL}

#: The ways :func:`loss_and_grad` computes a batch.
PATHS = ("auto", "samples", "batched")

#: ``loss_and_grad(path="auto")`` takes the batched (BLAS) path for the Elman cells from this
#: many samples on (the per-sample kernels' matrix-vector products below it). Measured on one
#: thread at L = 16: from 8 samples the products are 1x to 4x faster at m >= 256 (ReLU and
#: tanh); at 50 samples 1.1x (ReLU) to 6x (tanh) at m = 64 and 3.7x (ReLU) at m = 1024.
BATCH_MIN = 8

#: Default ``sigma_w^2`` of the ``azl`` and ``orthogonal`` inits (AZL's N(0, 2/m)).
AZL_W_VAR = 2.0


# Parameters


@dataclass(frozen=True)
class RNNParams:
    """Weights of the RNN. Arrays are C-contiguous, of one float dtype; SGD updates the trained
    matrices in place.

    The ReLU cell's ``W`` may also be stored column-major (``W.T`` C-contiguous), the layout
    its kernels work in (see :mod:`._rnn_jit`): :func:`init_params` stores it so, and then
    :func:`loss_and_grad` and :func:`sgd_chunk` pass ``W.T`` to the kernels and return the
    gradient as a transposed view, with no copy of ``W`` per call. A C-contiguous ReLU ``W``
    works too (a transposed copy per call, as for any array the caller builds); the values
    are the same either way.

    Attributes
    ----------
    W : ndarray of shape (m, m)
        Recurrent weights (the gate's recurrent weights for the minimalRNN); C-contiguous, or
        F-contiguous for the ReLU cell.
    A : ndarray of shape (m, d_in)
        Input weights (the minimalRNN's input embedding ``z_t = A x_t``).
    B : ndarray of shape (d, m)
        Readout weights.
    cell : str
        One of :data:`CELLS`.
    V : ndarray of shape (m, m) or None
        minimalRNN gate-input weights (never trained); ``None`` for the Elman cells.
    b : ndarray of shape (m,) or None
        minimalRNN gate bias (never trained); ``None`` for the Elman cells.
    """

    W: np.ndarray
    A: np.ndarray
    B: np.ndarray
    cell: str = "relu"
    V: np.ndarray | None = None
    b: np.ndarray | None = None

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {CELLS}, got {self.cell!r}")
        arrays = [("W", self.W, 2), ("A", self.A, 2), ("B", self.B, 2)]
        if self.cell == "minimal":
            if self.V is None or self.b is None:
                raise ValueError("the minimal cell needs V (m, m) and b (m,)")
            arrays += [("V", self.V, 2), ("b", self.b, 1)]
        elif self.V is not None or self.b is not None:
            raise ValueError(f"V and b belong to the minimal cell, not to {self.cell!r}")
        for name, a, ndim in arrays:
            if not isinstance(a, np.ndarray) or a.ndim != ndim:
                raise ValueError(f"{name} must be a {ndim}-D ndarray")
            layout_ok = a.flags.c_contiguous or (
                name == "W" and self.cell == "relu" and a.flags.f_contiguous)
            if a.dtype not in DTYPES or not layout_ok:
                allowed = "C- or F-contiguous" if name == "W" and self.cell == "relu" else (
                    "C-contiguous")
                raise ValueError(f"{name} must be {allowed} float32 or float64, got {a.dtype}"
                                 f" (C-contiguous: {a.flags.c_contiguous})")
            if a.dtype != self.W.dtype:
                raise ValueError(f"arrays must share W's dtype {self.W.dtype}; {name} is {a.dtype}")
        m = self.W.shape[0]
        W, A, B = self.W, self.A, self.B
        if W.shape != (m, m) or A.shape[0] != m or B.shape[1] != m:
            raise ValueError(f"shapes do not fit: W {W.shape}, A {A.shape}, B {B.shape}")
        if self.cell == "minimal" and (self.V.shape != (m, m) or self.b.shape != (m,)):
            raise ValueError(f"shapes do not fit: V {self.V.shape}, b {self.b.shape}, m = {m}")

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
        V = None if self.V is None else self.V.copy()
        b = None if self.b is None else self.b.copy()
        W = self.W.copy(order="K")  # keeps the ReLU kernels' layout
        return RNNParams(W, self.A.copy(), self.B.copy(), self.cell, V, b)


class RNNGrad(NamedTuple):
    """Gradients of the trained matrices; ``None`` for a matrix that is not trained."""

    W: np.ndarray | None = None
    A: np.ndarray | None = None
    B: np.ndarray | None = None


# Initialisation


def w_var(
    cell: str,
    init: str,
    m: int,
    *,
    x_sq_norm: float = 1.0,
    a_var: float = 2.0,
    sigma_v: float = 1.0,
    mu_b: float = 0.0,
    sigma_b: float = 0.0,
) -> float:
    """``sigma_w^2`` of an init: ``W ~ N(0, sigma_w^2 / m)`` or ``W = sigma_w * orthogonal``.

    ``azl`` and ``orthogonal``: ``2`` (AZL's N(0, 2/m); ``E||W v||^2 = 2 ||v||^2``).
    ``critical``: the root of the mean-field ``chi_1(sigma_w) = 1`` for ``cell`` (solved
    numerically by :func:`pacsim.models.meanfield.critical_sigma_w`), for inputs with
    ``||x_t||^2 = x_sq_norm`` at stationarity, i.e. an input drive ``A x_t`` of per-unit second
    moment ``r = a_var * x_sq_norm / m``. ReLU gives 2 for any input; tanh and minimal depend
    on ``r`` (and on ``sigma_v``, ``mu_b``, ``sigma_b`` for minimal).
    """
    _check_choice("cell", cell, CELLS)
    _check_choice("init", init, INITS)
    if init != "critical":
        return AZL_W_VAR
    from . import meanfield

    r = a_var * x_sq_norm / m
    s = meanfield.critical_sigma_w(cell, r, sigma_v=sigma_v, mu_b=mu_b, sigma_b=sigma_b)
    return s * s


def orthogonal(m: int, rng: np.random.Generator) -> np.ndarray:
    """A Haar-random orthogonal (m, m) matrix (QR of a Gaussian with the signs of R fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((m, m)))
    return q * np.sign(np.diag(r))


def init_params(
    m: int,
    d_in: int,
    d: int,
    rng: np.random.Generator,
    dtype=np.float64,
    *,
    cell: str = "relu",
    init: str = "azl",
    mode: str = "azl",
    sigma_w: float | None = None,
    x_sq_norm: float = 1.0,
    sigma_v: float = 1.0,
    mu_b: float = 0.0,
    sigma_b: float = 0.0,
) -> RNNParams:
    """Random weights, drawn in the order ``W, A, B`` (then ``V, b`` for minimal).

    * ``W``: ``init="azl"``: ``N(0, sigma_w^2 / m)``, ``sigma_w^2 = 2`` by default;
      ``"critical"``: the same Gaussian at the mean-field critical ``sigma_w`` (see
      :func:`w_var`; ``x_sq_norm`` is the typical ``||x_t||^2``: 1 for plain unit tokens,
      ``eps_x^2`` for azl/pg21); ``"orthogonal"``: ``sigma_w`` times a Haar orthogonal
      matrix, ``sigma_w = sqrt(2)`` by default, so that ``||W v|| = sqrt(2) ||v||`` exactly
      (the second moment of the azl init, hence its mean-field ``q_t`` and ``chi_1``).
    * ``A ~ N(0, a_var / m)``, ``B ~ N(0, b_var / d)`` with ``a_var``, ``b_var`` of ``mode``
      (azl, plain: 2 and 1; pg21: 2 and 2).
    * minimal only: ``V ~ N(0, sigma_v^2 / m)``, ``b = mu_b + sigma_b * N(0, 1)``
      (the mean-field ensemble of arXiv 1806.05394).

    Draws are made in float64 and then cast, so float32 and float64 runs start from the same
    weights up to rounding. The ReLU cell's ``W`` is stored column-major, the layout of its
    kernels (see :class:`RNNParams`).
    """
    _check_choice("cell", cell, CELLS)
    _check_choice("init", init, INITS)
    md = mode_spec(mode)
    if init == "critical":
        if sigma_w is not None:
            raise ValueError("init='critical' solves for sigma_w; do not pass sigma_w")
        var = w_var(
            cell, init, m, x_sq_norm=x_sq_norm, a_var=md.a_var,
            sigma_v=sigma_v, mu_b=mu_b, sigma_b=sigma_b,
        )  # fmt: skip
    else:
        var = AZL_W_VAR if sigma_w is None else float(sigma_w) ** 2
    if init == "orthogonal":
        W = orthogonal(m, rng) * np.sqrt(var)
    else:
        W = rng.standard_normal((m, m)) * np.sqrt(var / m)
    A = rng.standard_normal((m, d_in)) * np.sqrt(md.a_var / m)
    B = rng.standard_normal((d, m)) * np.sqrt(md.b_var / d)
    dtype = np.dtype(dtype)
    V = b = None
    if cell == "minimal":
        V = (rng.standard_normal((m, m)) * (sigma_v / np.sqrt(m))).astype(dtype)
        b = (mu_b + sigma_b * rng.standard_normal(m)).astype(dtype)
    if cell == "relu":
        W = np.asfortranarray(W)  # same values; W.T is the kernels' C-contiguous W^T
    return RNNParams(W.astype(dtype), A.astype(dtype), B.astype(dtype), cell, V, b)


# Forward


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
    H = states(p, X)
    return (p.dtype.type(lam) * (H @ p.B.T)).astype(p.dtype, copy=False)


def states(p: RNNParams, X: np.ndarray) -> np.ndarray:
    """Hidden states ``H[:, t] = h_t``, shape (n, L, m), in ``p.dtype`` (batched BLAS)."""
    return _run(p, _as_inputs(p, X))[0]


def _run(p: RNNParams, X: np.ndarray):
    """Batched forward pass: hidden states ``H``, pre-activations ``E`` (the gate's for
    minimal) and embedded inputs ``Z = A x`` (minimal; else ``None``), each (n, L, m)."""
    n, L, _ = X.shape
    H = np.empty((n, L, p.m), dtype=p.dtype)
    E = np.empty_like(H)
    Z = np.empty_like(H) if p.cell == "minimal" else None
    h = None
    for t in range(L):
        xt = X[:, t, :]
        if p.cell == "minimal":
            z = xt @ p.A.T
            e = z @ p.V.T + p.b
            if h is not None:
                e += h @ p.W.T
            with np.errstate(over="ignore"):  # exp(-e) = inf gives u = 0, as it should
                u = 1.0 / (1.0 + np.exp(-e))
            h = (1 - u) * z if h is None else u * h + (1 - u) * z
            Z[:, t] = z
        else:
            e = xt @ p.A.T
            if h is not None:
                e += h @ p.W.T
            h = np.maximum(e, 0) if p.cell == "relu" else np.tanh(e)  # maximum keeps NaN
        E[:, t] = e
        H[:, t] = h
    return H, E, Z


def _trajectories(p: RNNParams, X: np.ndarray):
    """Like :func:`_run` (``H``, ``E``, ``Z``, each (n, L, m)), from the single-threaded jitted
    per-sample kernels instead of batched BLAS: no thread start-up per position, which on a
    busy machine costs more than the work for a few samples."""
    X = _as_inputs(p, X)
    n, L, _ = X.shape
    Hs = np.empty((n, L, p.m), dtype=p.dtype)
    Es = np.empty_like(Hs)
    gated = p.cell == "minimal"
    Zs = np.empty_like(Hs) if gated else np.zeros((n, 0, p.m), dtype=p.dtype)
    V, C, bias, use_c = _gate_arrays(p, False)
    H, U, Z, _, _, _, _, I, _ = _workspace(p, L)  # noqa: E741
    _rnn_jit._trajectories(
        _CELL_CODE[p.cell], _kernel_w(p), p.A, V, C, bias, X, use_c, Hs, Es, Zs, H, U, Z, I
    )
    return Hs, Es, (Zs if gated else None)


# Gradients and SGD


def loss_and_grad(
    p: RNNParams,
    X: np.ndarray,
    Y: np.ndarray,
    lam: float = 1.0,
    positions=None,
    *,
    trained: Iterable[str] = ("W",),
    K: int | None = None,  # noqa: N803
    path: str = "auto",
) -> tuple[float, RNNGrad]:
    """Mean loss and its gradient with respect to the ``trained`` matrices (BPTT(K)).

    ``loss = mean over the n samples of sum over scored positions t of
    0.5 * ||lam B h_t - Y[:, t]||^2``.

    Parameters
    ----------
    p : RNNParams
    X : ndarray of shape (n, L, d_in)
    Y : ndarray of shape (n, L, d)
    lam : float
    positions : sequence of int or None
        0-based indices of the scored outputs; ``None`` scores every position.
    trained : iterable of str
        Non-empty subset of ``{"W", "A", "B"}``.
    K : int or None
        Truncation of backpropagation through time: the loss at position ``t`` sends gradient
        to the uses of ``W`` and ``A`` at positions ``t, t-1, ..., t-K+1`` only, i.e. through
        ``K`` transitions counting the one that produced ``h_t`` (``lrjconan/RBP``'s
        ``TBPTT`` convention, Liao et al. 2018, arXiv 1803.06396)::

            grad_K = sum_{t scored} sum_{s = max(0, t-K+1)}^{t} (d loss_t / d theta_s)

        where ``theta_s`` is the copy of the weights used at position ``s``. ``K = None``
        (or any ``K >= L``) is full BPTT; ``K = 1`` keeps only the direct dependence of
        ``h_t`` on the weights. ``B``'s gradient never goes through time.
    path : {"auto", "samples", "batched"}
        How the batch is computed; the results agree up to rounding. ``"samples"``: the jitted
        per-sample kernel (matrix-vector products, the code :func:`sgd_chunk` runs);
        ``"batched"`` (Elman cells only): position by position, each position one
        matrix-matrix product over the batch (NumPy/BLAS, :func:`_loss_and_grad_batched`);
        ``"auto"``: batched for the Elman cells when ``n >= BATCH_MIN``, else per sample.

    Returns
    -------
    loss : float
    g : RNNGrad
        ``g.W`` (m, m), ``g.A`` (m, d_in), ``g.B`` (d, m) for the trained matrices, else
        ``None``; ``g.W`` in the memory layout of ``p.W`` (column-major for the ReLU cell of
        :func:`init_params`: the kernels' ``W^T`` layout, returned without a copy).
    """
    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS}, got {path!r}")
    if path == "batched" and p.cell == "minimal":
        raise ValueError("path='batched' supports the Elman cells ('relu', 'tanh'), "
                         "got cell 'minimal'")
    X, Y, scored = _as_batch(p, X, Y, positions)
    tW, tA, tB = _trained_flags(trained)
    K = _as_k(K, X.shape[1])
    batched = path == "batched" or (path == "auto" and p.cell != "minimal"
                                    and X.shape[0] >= BATCH_MIN)
    if batched:
        with np.errstate(over="ignore", invalid="ignore"):  # a diverging run: inf/NaN, no warning
            loss, grads = _rnn_blas.loss_and_grad_batched(p, X, Y, lam, scored, K, tW, tA, tB)
            return loss, RNNGrad(*grads)
    ws = _workspace(p, X.shape[1])
    Wk = _kernel_w(p)
    # the kernel zeroes the gradients first: no zero-filled allocation
    gW = np.empty_like(Wk, order="C") if tW else np.zeros((0, 0), p.dtype)
    gA = np.empty_like(p.A) if tA else np.zeros((0, 0), p.dtype)
    gB = np.empty_like(p.B) if tB else np.zeros((0, 0), p.dtype)
    V, C, bias, use_c = _gate_arrays(p, tA)
    total = _rnn_jit._loss_and_grad(
        _CELL_CODE[p.cell], Wk, p.A, p.B, V, C, bias, X, Y, p.dtype.type(lam), scored, K,
        tW, tA, tB, use_c, gW, gA, gB, *ws,
    )  # fmt: skip
    if tW and Wk is not p.W:  # W^T layout: the gradient in the layout of p.W
        gW = gW.T if p.W.flags.f_contiguous else np.ascontiguousarray(gW.T)
    n = X.shape[0]
    grads = [np.divide(g, p.dtype.type(n), out=g) if flag else None
             for g, flag in ((gW, tW), (gA, tA), (gB, tB))]
    return total / n, RNNGrad(*grads)


def sgd_chunk(
    p: RNNParams,
    X: np.ndarray,
    Y: np.ndarray,
    eta: float,
    lam: float = 1.0,
    positions=None,
    order: np.ndarray | None = None,
    losses: np.ndarray | None = None,
    *,
    trained: Iterable[str] = ("W",),
    K: int | None = None,  # noqa: N803
) -> tuple[int, np.ndarray]:
    """Vanilla SGD (batch 1, constant step ``eta``) over samples ``order`` of ``X``, in place.

    One step per entry of ``order`` (default: every sample once, in order):
    ``M <- M - eta * grad_M loss(x_k, y_k)`` for every trained ``M`` in ``{W, A, B}``, all
    gradients taken at the weights before the step (BPTT(K), see :func:`loss_and_grad`).
    No momentum, weight decay or clipping.

    Parameters
    ----------
    losses : ndarray or None
        Output buffer: 1-D, float64, C-contiguous, of length ``>= len(order)``.

    Returns
    -------
    n_steps : int
        Steps taken; less than ``len(order)`` if the run diverged at step ``n_steps``: its loss
        was NaN/Inf (the step was not applied), or, for the ReLU cell, its ``W`` update
        overflowed (the step was applied; ``W`` holds the non-finite entries). A ReLU ``W``
        that is not finite on entry diverges at step 0 (the ReLU kernels skip closed units, so
        they check for it rather than rely on ``0 * inf = NaN``).
    losses : ndarray of shape (len(order),), float64
        Per-step loss before the update (entries after a divergence are unspecified); a view
        of the ``losses`` buffer when one was given.
    """
    X, Y, scored = _as_batch(p, X, Y, positions)
    tW, tA, tB = _trained_flags(trained)
    K = _as_k(K, X.shape[1])
    if order is None:
        order = np.arange(X.shape[0], dtype=np.int64)
    order = np.ascontiguousarray(order, dtype=np.int64)
    if order.ndim != 1:
        raise ValueError(f"order must be 1-D, got shape {order.shape}")
    if order.size and (order.min() < 0 or order.max() >= X.shape[0]):
        raise ValueError("order has indices outside the batch")
    if losses is None:
        losses = np.empty(order.shape[0], dtype=np.float64)
    elif not (
        isinstance(losses, np.ndarray)
        and losses.ndim == 1
        and losses.dtype == np.float64
        and losses.flags.c_contiguous
        and losses.flags.writeable
    ):
        raise ValueError("losses must be a writeable, C-contiguous, 1-D float64 ndarray")
    elif losses.shape[0] < order.shape[0]:
        raise ValueError(f"losses has length {losses.shape[0]} < len(order) = {order.shape[0]}")
    ws = _workspace(p, X.shape[1])
    V, C, bias, use_c = _gate_arrays(p, tA)
    cast = p.dtype.type
    Wk = _kernel_w(p)
    n_steps = _rnn_jit._sgd_chunk(
        _CELL_CODE[p.cell], Wk, p.A, p.B, V, C, bias, X, Y, order, cast(lam), cast(eta),
        scored, K, tW, tA, tB, use_c, losses, *ws,
    )  # fmt: skip
    if tW and not np.shares_memory(Wk, p.W):  # a copy: the steps taken, also on divergence
        p.W[...] = Wk.T
    return int(n_steps), losses[: order.shape[0]]


# Internal helpers


def _sq_norm(a: np.ndarray) -> float:
    return float(np.sum(np.square(a, dtype=np.float64)))


def _check_choice(what, value, allowed):
    if value not in allowed:
        raise ValueError(f"{what} must be one of {allowed}, got {value!r}")


def _trained_flags(trained) -> tuple[bool, bool, bool]:
    if isinstance(trained, str):
        trained = (trained,)
    names = set(trained)
    if not names or not names <= set(PARAM_NAMES):
        raise ValueError(f"trained must be a non-empty subset of {PARAM_NAMES}, got {trained!r}")
    return "W" in names, "A" in names, "B" in names


def _as_k(K, L):  # noqa: N803
    if K is None:
        return L
    if isinstance(K, bool) or not isinstance(K, int | np.integer) or K < 1:
        raise ValueError(f"K must be None or an integer >= 1, got {K!r}")
    return int(min(K, L))


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


def _gate_arrays(p: RNNParams, train_a: bool):
    """``V``, ``C = V A``, ``b`` and ``use_c`` for the kernels (empty dummies for Elman).

    ``C`` replaces the per-position ``V z_t`` (m^2) by ``C x_t`` (m d_in); it is only valid
    while ``A`` is fixed, so it is not used when ``A`` is trained.
    """
    if p.cell != "minimal":
        empty = np.zeros((0, 0), p.dtype)
        return empty, empty, np.zeros(0, p.dtype), False
    if train_a:
        return p.V, np.zeros((0, 0), p.dtype), p.b, False
    return p.V, np.ascontiguousarray(p.V @ p.A), p.b, True


def _kernel_w(p: RNNParams) -> np.ndarray:
    """``W`` in the layout the kernels take: ``W^T``, C-contiguous, for the ReLU cell (its
    forward and backward products then read only the rows of open units, see
    :mod:`._rnn_jit`), ``W`` itself for the dense cells. For the ReLU cell this is a view of
    ``p.W`` when ``p.W`` is stored column-major (as :func:`init_params` stores it), else a
    transposed copy."""
    return np.ascontiguousarray(p.W.T) if p.cell == "relu" else p.W


def _workspace(p: RNNParams, L: int):  # noqa: N803
    """``H, U, Z, D, G, R, S, I, c`` of :mod:`._rnn_jit` (``H[0] = 0``)."""
    m, dt = p.m, p.dtype
    gated = p.cell == "minimal"
    H = np.zeros((L + 1, m), dtype=dt)
    U = np.zeros((L if gated else 0, m), dtype=dt)
    Z = np.zeros((L if gated else 0, m), dtype=dt)
    D = np.zeros((L, m), dtype=dt)
    G = np.zeros((L if gated else 0, m), dtype=dt)
    R = np.zeros((L, p.d), dtype=dt)
    S = np.zeros((3, m), dtype=dt)
    I = np.zeros(max(m, L), dtype=np.int64)  # noqa: E741
    c = np.zeros(L, dtype=dt)
    return H, U, Z, D, G, R, S, I, c


def warmup(dtypes=("float64",)) -> None:
    """Compile (or load from the on-disk cache) every kernel for ``dtypes`` on tiny inputs.

    Every kernel takes the cell, the trained set and ``K`` as runtime arguments, so one call
    per dtype compiles every variant; the calls below still run each cell, the truncated path
    and a trained ``A`` so that a broken variant fails here, before workers start.
    """
    for dtype in dtypes:
        rng = np.random.default_rng(0)
        for cell in CELLS:
            p = init_params(2, 2, 1, rng, dtype, cell=cell)
            X = np.ones((1, 3, 2), dtype=dtype)
            Y = np.zeros((1, 3, 1), dtype=dtype)
            forward(p, X)
            _trajectories(p, X)
            loss_and_grad(p, X, Y, positions=[2], trained=("W", "A", "B"))
            loss_and_grad(p, X, Y, positions=[2], K=1)
            sgd_chunk(p, X, Y, 0.0, positions=[2])
            sgd_chunk(p, X, Y, 0.0, positions=[2], trained=("A",), K=1)


# The NTK trace (the step-size scale) lives in rnn_trace, and uses the functions above.
from .rnn_trace import empirical_ntk_trace, ntk_trace  # noqa: E402

__all__ = ["AZL_W_VAR", "BATCH_MIN", "CELLS", "DTYPES", "INITS", "MODES", "PARAM_NAMES",
           "PATHS", "Mode", "RNNGrad", "RNNParams", "azl_inputs", "empirical_ntk_trace",
           "encode_inputs", "forward", "init_params", "input_dim", "loss_and_grad",
           "mode_spec", "ntk_trace", "orthogonal", "pg21_inputs", "plain_inputs",
           "scored_positions", "sgd_chunk", "states", "w_var", "warmup"]
