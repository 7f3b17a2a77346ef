"""The RNN cells (:mod:`pacsim.models.rnn`) against their slow twins in :mod:`naive`.

* forward, loss_and_grad (W, A, B; full and truncated BPTT) and sgd_chunk agree with
  plain-NumPy references for every cell (float64 tightly, float32 loosely), and the gradients
  agree with central finite differences;
* truncated BPTT(K): equal to full BPTT for K >= L, to the twin's per-window sum otherwise,
  and to Neumann-series RBP at a fixed point (Liao et al. 2018, arXiv 1803.06396, Sec. 3);
* a diverging SGD chunk stops at the first non-finite loss without applying that step, also
  when the weights themselves are not finite (NaN-propagating ReLU);
* float32 kernels accumulate in float32; the wrapper rejects arrays that do not fit;
* init_params, the mode presets and the encoders follow their documented conventions;
* ntk_trace predicts the measured gradient-kernel trace at initialisation.

Shapes are tiny (``m <= 33``) except in the statistical tests; every test is seeded by the
``rng`` fixture of ``conftest.py``.
"""

from __future__ import annotations

import naive
import numba
import numpy as np
import numpy.testing as npt
import pytest
from numba.core import types

from pacsim._numba import FASTMATH
from pacsim.concepts import azl
from pacsim.models import _rnn_jit, rnn

#: (m, L, d_in, d): hidden width, sequence length, input and output dimension.
SHAPES = [(1, 3, 2, 1), (5, 4, 3, 2), (16, 7, 4, 1), (33, 5, 9, 3)]
SHAPE_IDS = [f"m{m}-L{L}-din{d_in}-d{d}" for m, L, d_in, d in SHAPES]

#: Output scale used throughout; not 1, so that a misplaced or doubled lam shows.
LAM = 0.7

#: Samples per batch in the comparison tests.
N = 8

#: Relative tolerance (to the largest entry of the reference) per dtype. The jitted cells
#: (fast-math, reassociated sums) against the float64 twin: L <= 7 steps of sums of m + d_in
#: <= 42 O(1) terms, forward and back, ~1e-14 of the scale in float64; in float32 (unit roundoff
#: 6e-8) the same few hundred accumulated roundings and their growth through W give <~1e-5.
#: Relative to the scale, not to each entry, because entries cancel (tests/tolerance.py).
RTOL = {np.float64: 1e-12, np.float32: 1e-4}

#: minimalRNN gate settings for the comparison tests: a non-uniform bias and a strong V, so
#: that the gates are far from 1/2 and differ across units.
MINIMAL_KW = {"sigma_v": 2.0, "mu_b": 0.3, "sigma_b": 0.5}

TRAINED_SETS = [("W",), ("A",), ("B",), ("W", "A", "B")]
TRAINED_IDS = ["W", "A", "B", "WAB"]

#: Every cell through the per-sample kernels, and the Elman cells through the batched path.
CELL_PATHS = [(c, "samples") for c in rnn.CELLS] + [("relu", "batched"), ("tanh", "batched")]
CELL_PATH_IDS = [f"{c}-{path}" for c, path in CELL_PATHS]


# Helpers


def _params(rng, m, d_in, d, dtype=np.float64, cell="relu", **kw):
    extra = MINIMAL_KW if cell == "minimal" else {}
    return rnn.init_params(m, d_in, d, rng, dtype, cell=cell, **extra, **kw)


def _problem(rng, m, L, d_in, d, n=N, dtype=np.float64, cell="relu"):  # noqa: N803
    """Weights of ``cell`` and Gaussian inputs/labels, all in ``dtype``."""
    p = _params(rng, m, d_in, d, dtype, cell)
    X = rng.standard_normal((n, L, d_in)).astype(dtype)
    Y = rng.standard_normal((n, L, d)).astype(dtype)
    return p, X, Y


def _assert_nonlinear(p, X):
    """The data exercise the nonlinearity: both ReLU branches, tanh beyond its linear range,
    gates away from 1/2."""
    _, H = naive.rnn_forward(p, X, LAM)
    if p.cell == "relu":
        assert (H > 0).any() and (H == 0).any()
    elif p.cell == "tanh":
        assert np.abs(H).max() > 0.3
    else:
        E = rnn._run(p, np.asarray(X, p.dtype))[1]
        assert np.abs(E - np.mean(E)).max() > 1.0


def _assert_close(actual, desired, rtol):
    """``actual == desired`` up to ``rtol`` relative to the largest entry of ``desired`` (as
    :func:`tolerance.assert_close`)."""
    desired = np.asarray(desired, dtype=np.float64)
    npt.assert_allclose(actual, desired, rtol=rtol, atol=rtol * np.abs(desired).max())


def _tail(L):  # noqa: N803
    """The AZL scored positions 2..L-1 (0-based)."""
    return list(range(2, L))


def _with(p, **arrays):
    """``p`` with some arrays replaced."""
    fields = {"W": p.W, "A": p.A, "B": p.B, "cell": p.cell, "V": p.V, "b": p.b, **arrays}
    return rnn.RNNParams(**fields)


# forward


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cell", rnn.CELLS)
@pytest.mark.parametrize(("m", "L", "d_in", "d"), SHAPES, ids=SHAPE_IDS)
def test_forward_matches_naive(rng, m, L, d_in, d, cell, dtype):  # noqa: N803
    p, X, _ = _problem(rng, m, L, d_in, d, dtype=dtype, cell=cell)
    Yhat = rnn.forward(p, X, LAM)
    assert Yhat.shape == (N, L, d) and Yhat.dtype == dtype
    ref, H = naive.rnn_forward(p, X, LAM)  # float64, from the same weights
    _assert_close(Yhat, ref, RTOL[dtype])
    _assert_close(rnn.states(p, X), H, RTOL[dtype])
    # the jitted per-sample path (meanfield.measure) gives the same states and pre-activations
    H_blas, E_blas, Z_blas = rnn._run(p, X)
    H_jit, E_jit, Z_jit = rnn._trajectories(p, X)
    _assert_close(H_jit, H, RTOL[dtype])
    _assert_close(E_jit, E_blas, RTOL[dtype])
    if cell == "minimal":
        _assert_close(Z_jit, Z_blas, RTOL[dtype])
    else:
        assert Z_jit is None and Z_blas is None


# loss_and_grad


@pytest.mark.parametrize("K", [None, 2], ids=["full", "K2"])
@pytest.mark.parametrize("trained", TRAINED_SETS, ids=TRAINED_IDS)
@pytest.mark.parametrize(("cell", "path"), CELL_PATHS, ids=CELL_PATH_IDS)
@pytest.mark.parametrize(
    ("m", "L", "d_in", "d", "scored"),
    [(5, 4, 3, 2, "all"), (16, 7, 4, 1, "tail"), (33, 5, 9, 3, "tail")],
    ids=["m5-L4-all", "m16-L7-tail", "m33-L5-tail"],
)
def test_loss_and_grad_matches_naive(rng, m, L, d_in, d, scored, cell, trained, K,  # noqa: N803
                                    path):
    p, X, Y = _problem(rng, m, L, d_in, d, cell=cell)
    _assert_nonlinear(p, X)
    positions = None if scored == "all" else _tail(L)
    loss, g = rnn.loss_and_grad(p, X, Y, LAM, positions, trained=trained, K=K, path=path)
    ref_loss, ref = naive.rnn_loss_and_grad(p, X, Y, LAM, positions, K=K)
    # the loss is a sum of squares (no cancellation): RTOL of the value itself
    npt.assert_allclose(loss, ref_loss, rtol=1e-12)
    for name in rnn.PARAM_NAMES:
        if name not in trained:
            assert getattr(g, name) is None
            continue
        assert np.abs(ref[name]).max() > 0
        assert getattr(g, name).shape == ref[name].shape
        _assert_close(getattr(g, name), ref[name], 1e-12)


@pytest.mark.parametrize("K", [None, 2], ids=["full", "K2"])
@pytest.mark.parametrize(("cell", "path"), CELL_PATHS, ids=CELL_PATH_IDS)
def test_loss_and_grad_float32_matches_naive(rng, cell, K, path):  # noqa: N803
    p, X, Y = _problem(rng, 16, 7, 4, 2, dtype=np.float32, cell=cell)
    loss, g = rnn.loss_and_grad(p, X, Y, LAM, _tail(7), trained=("W", "A", "B"), K=K,
                                path=path)
    ref_loss, ref = naive.rnn_loss_and_grad(p, X, Y, LAM, _tail(7), K=K)
    npt.assert_allclose(loss, ref_loss, rtol=1e-5)  # ~50 squares summed in float32: ~3e-6
    for name in rnn.PARAM_NAMES:
        assert getattr(g, name).dtype == np.float32
        _assert_close(getattr(g, name), ref[name], RTOL[np.float32])


@pytest.mark.parametrize("mode", list(rnn.MODES))
@pytest.mark.parametrize("cell", rnn.CELLS)
def test_mode_presets_match_naive(rng, cell, mode):
    """Each preset end to end: its init, encoding, scored outputs and trained matrices."""
    m, L, d_x, d = 12, 6, 4, 2  # noqa: N806
    md = rnn.mode_spec(mode)
    extra = MINIMAL_KW if cell == "minimal" else {}
    p = rnn.init_params(m, rnn.input_dim(mode, d_x), d, rng, cell=cell, mode=mode, **extra)
    tokens = rng.standard_normal((5, L, d_x))
    tokens /= np.linalg.norm(tokens, axis=2, keepdims=True)
    X = rnn.encode_inputs(mode, tokens, eps_x=0.5)
    Y = rng.standard_normal((5, L, d))
    positions = rnn.scored_positions(mode, L)
    lam = md.lam if md.lam is not None else LAM
    loss, g = rnn.loss_and_grad(p, X, Y, lam, positions, trained=md.trained)
    ref_loss, ref = naive.rnn_loss_and_grad(p, X, Y, lam, positions)
    npt.assert_allclose(loss, ref_loss, rtol=1e-12)  # a sum of squares: no cancellation
    for name in rnn.PARAM_NAMES:
        if name in md.trained:
            _assert_close(getattr(g, name), ref[name], 1e-12)
        else:
            assert getattr(g, name) is None


def test_loss_and_grad_positions_select_the_scored_terms(rng):
    """The loss over a set of positions is the sum of the single-position losses."""
    p, X, Y = _problem(rng, 5, 6, 3, 2)
    total, g = rnn.loss_and_grad(p, X, Y, LAM, [1, 3, 4])
    parts = [rnn.loss_and_grad(p, X, Y, LAM, [j]) for j in (1, 3, 4)]
    npt.assert_allclose(total, sum(loss for loss, _ in parts), rtol=1e-12)  # positive terms
    _assert_close(g.W, sum(gj.W for _, gj in parts), 1e-12)
    assert rnn.loss_and_grad(p, X, Y, LAM, [])[0] == 0.0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("K", [None, 1, 3], ids=["full", "K1", "K3"])
@pytest.mark.parametrize("cell", ["relu", "tanh"])
def test_batched_path_matches_the_per_sample_kernels(rng, cell, K, dtype):  # noqa: N803
    """The momentum preset's shape (a batch of 50, L = 8, every matrix trained, a scored
    subset): one product over the batch per position gives the per-sample kernels' loss and
    gradients, BPTT(K) included; ``path="auto"`` takes the kernels below BATCH_MIN (bit for
    bit) and the products from it on, and the gradient of ``W`` keeps the layout of ``p.W``.

    Tolerance: each entry sums 50 samples x 8 positions of products over at most 40 terms,
    in a different order on the two paths: ~1e-14 (float64) / ~1e-5 (float32) relative to
    the largest entry."""
    p, X, Y = _problem(rng, 40, 8, 5, 2, n=50, dtype=dtype, cell=cell)
    _assert_nonlinear(p, X)
    rtol = {np.float64: 1e-12, np.float32: 1e-4}[dtype]
    kw = {"trained": ("W", "A", "B"), "K": K}
    pos = [1, 2, 5, 7]
    loss_s, g_s = rnn.loss_and_grad(p, X, Y, LAM, pos, path="samples", **kw)
    for n, path in ((rnn.BATCH_MIN - 1, "samples"), (rnn.BATCH_MIN, "batched"), (50, "batched")):
        loss_a, g_a = rnn.loss_and_grad(p, X[:n], Y[:n], LAM, pos, **kw)
        loss_p, g_p = rnn.loss_and_grad(p, X[:n], Y[:n], LAM, pos, path=path, **kw)
        assert loss_a == loss_p
        for a, b in zip(g_a, g_p, strict=True):
            npt.assert_array_equal(a, b)
    npt.assert_allclose(loss_p, loss_s, rtol=rtol)
    for name, got, ref in zip(rnn.PARAM_NAMES, g_p, g_s, strict=True):
        assert got.dtype == dtype and got.shape == ref.shape, name
        _assert_close(got, ref, rtol)
    assert g_p.W.flags.f_contiguous == p.W.flags.f_contiguous


def test_batched_path_rejects_the_minimal_cell_and_unknown_paths(rng):
    p, X, Y = _problem(rng, 5, 4, 3, 2, n=rnn.BATCH_MIN, cell="minimal")
    with pytest.raises(ValueError, match="Elman cells"):
        rnn.loss_and_grad(p, X, Y, LAM, path="batched")
    with pytest.raises(ValueError, match="path must be one of"):
        rnn.loss_and_grad(p, X, Y, LAM, path="blas")
    rnn.loss_and_grad(p, X, Y, LAM)  # auto: the per-sample kernels


@pytest.mark.parametrize("name", rnn.PARAM_NAMES)
@pytest.mark.parametrize("cell", rnn.CELLS)
def test_loss_and_grad_matches_finite_differences(rng, cell, name):
    """Full-BPTT gradients are the derivatives of the loss (pacsim's own loss)."""
    p, X, Y = _problem(rng, 5, 5, 3, 2, n=3, cell=cell)
    _assert_nonlinear(p, X)
    positions = [1, 3, 4]

    def loss_of(M):
        return rnn.loss_and_grad(_with(p, **{name: M}), X, Y, LAM, positions)[0]

    fd = naive.finite_difference_grad(loss_of, getattr(p, name), 1e-6)
    _, g = rnn.loss_and_grad(p, X, Y, LAM, positions, trained=(name,))
    # central differences, h = 1e-6: truncation ~h^2 and rounding ~eps |loss| / h ~ 2e-10 of the
    # scale; 1e-6 of max |gradient| (independent of the CPU)
    _assert_close(getattr(g, name), fd, 1e-6)


@pytest.mark.parametrize("cell", rnn.CELLS)
def test_naive_terms_are_derivatives_of_the_untied_loss(rng, cell):
    """The reference itself: its contribution of use ``s`` to the gradient of the loss at ``t``
    is the derivative with respect to the weights of position ``s`` alone (untied weights), and
    the terms sum to the derivative of the tied loss."""
    m, L, t = 4, 5, 4  # noqa: N806
    p, X, Y = _problem(rng, m, L, 3, 2, n=1, cell=cell)
    x, y = X[0], Y[0]
    _, gB, terms = naive.grad_terms(p, x, y, LAM, t)
    Ws = [p.W.astype(float)] * L
    As = [p.A.astype(float)] * L

    def untied(s, W=None, A=None):
        """Loss at t with W (or A) replaced at position s only."""
        Ws_s = Ws if W is None else Ws[:s] + [W] + Ws[s + 1 :]
        As_s = As if A is None else As[:s] + [A] + As[s + 1 :]
        return naive.untied_position_loss(p, x, y, LAM, t, Ws_s, As_s)

    for s in range(t + 1):
        fd_W = naive.finite_difference_grad(lambda W, s=s: untied(s, W=W), p.W, 1e-6)
        fd_A = naive.finite_difference_grad(lambda A, s=s: untied(s, A=A), p.A, 1e-6)
        if s == 0:  # the use at position 0 multiplies W into h_{-1} = 0: exactly 0
            npt.assert_array_equal(terms[s][0], 0.0)
            npt.assert_array_equal(fd_W, 0.0)
        else:
            assert np.abs(terms[s][0]).max() > 0
            _assert_close(terms[s][0], fd_W, 1e-6)
        _assert_close(terms[s][1], fd_A, 1e-6)
    _, full = naive.rnn_loss_and_grad(p, X, Y, LAM, [t])
    fd_B = naive.finite_difference_grad(
        lambda B: naive.rnn_loss_and_grad(_with(p, B=B), X, Y, LAM, [t])[0], p.B, 1e-6
    )
    _assert_close(gB, fd_B, 1e-6)
    _assert_close(sum(dW for dW, _ in terms.values()), full["W"], 1e-12)


# Truncated BPTT


@pytest.mark.parametrize("cell", rnn.CELLS)
def test_truncated_equals_full_when_K_covers_the_sequence(rng, cell):  # noqa: N802
    L = 6  # noqa: N806
    p, X, Y = _problem(rng, 7, L, 3, 2, cell=cell)
    trained = ("W", "A", "B")
    full_loss, full = rnn.loss_and_grad(p, X, Y, LAM, None, trained=trained)
    for K in (L, L + 3, 10**6):  # noqa: N806
        # bit-exact: every K >= L is clamped to L, the very code path of K = None
        loss, g = rnn.loss_and_grad(p, X, Y, LAM, None, trained=trained, K=K)
        assert loss == full_loss
        for a, b in zip(g, full, strict=True):
            npt.assert_array_equal(a, b)
    # Through the truncated code path (K < L): windows that reach position 0 for every scored
    # output lose nothing.
    _, g = rnn.loss_and_grad(p, X, Y, LAM, [0, 1, 2], trained=trained, K=3)
    _, ref = rnn.loss_and_grad(p, X, Y, LAM, [0, 1, 2], trained=trained)
    for a, b in zip(g, ref, strict=True):
        _assert_close(a, b, 1e-13)
    # K = L - 1 drops only the use at position 0 for the last output: nothing for W (h_{-1} = 0),
    # something for A.
    _, g = rnn.loss_and_grad(p, X, Y, LAM, None, trained=trained, K=L - 1)
    _assert_close(g.W, full.W, 1e-13)
    assert np.abs(g.A - full.A).max() > 1e-6 * np.abs(full.A).max()
    _, ref = naive.rnn_loss_and_grad(p, X, Y, LAM, None, K=L - 1)
    _assert_close(g.A, ref["A"], 1e-12)


@pytest.mark.parametrize("cell", rnn.CELLS)
def test_truncation_drops_the_far_terms(rng, cell):
    """BPTT(K) is the sum of the twin's terms with ``t - s < K``; each K changes the gradient."""
    L = 7  # noqa: N806
    p, X, Y = _problem(rng, 6, L, 3, 1, n=2, cell=cell)
    grads = []
    for K in range(1, L + 1):  # noqa: N806
        _, g = rnn.loss_and_grad(p, X, Y, LAM, _tail(L), trained=("W", "A"), K=K)
        loss, ref = naive.rnn_loss_and_grad(p, X, Y, LAM, _tail(L), K=K)
        _assert_close(g.W, ref["W"], 1e-12)
        _assert_close(g.A, ref["A"], 1e-12)
        grads.append(g.A)
    # By hand, from the per-(t, s) terms of the twin, for K = 2:
    by_hand = np.zeros_like(grads[0], dtype=np.float64)
    for k in range(2):
        for t in _tail(L):
            _, _, terms = naive.grad_terms(p, X[k], Y[k], LAM, t)
            by_hand += sum(dA for s, (_, dA) in terms.items() if t - s < 2)
    _assert_close(grads[1], by_hand / 2, 1e-12)
    for a, b in zip(grads[:-1], grads[1:], strict=True):
        assert np.abs(a - b).max() > 1e-8 * np.abs(b).max()


def test_neumann_rbp_equals_truncated_bptt_at_a_fixed_point(rng):
    """RBP (Liao et al. 2018, arXiv 1803.06396): a contractive tanh RNN driven to its fixed point
    by a constant input, loss 0.5 ||h_T - target||^2 at the last step (B = I, lam = 1).

    Neumann-RBP with K iterations (K + 1 terms) equals BPTT(K + 1) to rounding; full BPTT equals
    the implicit-function gradient.
    """
    m, d_in, T = 30, 4, 200  # noqa: N806
    W = rng.standard_normal((m, m))
    W *= 0.6 / np.linalg.norm(W, 2)  # ||W||_2 = 0.6: a contraction
    p = rnn.RNNParams(W=W, A=rng.standard_normal((m, d_in)), B=np.eye(m), cell="tanh")
    x = rng.standard_normal(d_in)
    X = np.tile(x, (1, T, 1))
    target = rng.standard_normal(m)
    Y = np.zeros((1, T, m))
    Y[0, -1] = target
    h = rnn.states(p, X)[0]
    h_star = h[-1]
    # converged: one more step of the map, in NumPy (BLAS) against the jitted recursion, moves
    # h by rounding only: 34-term dot products of O(1) terms, < ~1e-14 on any CPU/BLAS (200
    # steps of a 0.6-contraction leave 0.6^200 = 1e-44 of the start)
    assert np.abs(h[-1] - np.tanh(W @ h_star + p.A @ x)).max() < 1e-13
    g = h_star - target  # dLoss/dh*
    for K in (1, 2, 5, 10, 20):  # noqa: N806
        _, tb = rnn.loss_and_grad(p, X, Y, 1.0, [T - 1], trained=("W", "A"), K=K + 1)
        nW, nA = naive.neumann_rbp_grad(W, x, h_star, g, K)
        _assert_close(tb.W, nW, 1e-12)  # the same K + 1 terms summed two ways: RTOL
        _assert_close(tb.A, nA, 1e-12)
    _, full = rnn.loss_and_grad(p, X, Y, 1.0, [T - 1], trained=("W", "A"))
    iW, iA = naive.implicit_grad(W, x, h_star, g)
    # BPTT over 200 steps against a linear solve with I - J^T (cond <= 1 / (1 - 0.6) = 2.5):
    # rounding summed over the series ~1e-14 of the scale; 1e-10 leaves room for any BLAS
    _assert_close(full.W, iW, 1e-10)
    _assert_close(full.A, iA, 1e-10)
    # and the truncation matters here: BPTT(2) is far from the implicit gradient
    _, tb = rnn.loss_and_grad(p, X, Y, 1.0, [T - 1], trained=("W",), K=2)
    assert np.abs(tb.W - iW).max() > 1e-3 * np.abs(iW).max()


# float32


def test_float32_kernels_accumulate_in_float32():
    """No float variable of a float32 kernel is float64, except the loss accumulators.

    Fresh (uncached) copies of the kernels are compiled for the float32 signatures that the
    top-level kernels use, and their type maps inspected. A literal ``0`` or ``H[0, 0] * 0`` as
    the starting value of a sum types it float64 and fails here.
    """
    allowed = {"loss", "total"}

    def f32(sig):
        return any(getattr(a, "dtype", a) == types.float32 for a in sig)

    def fresh(disp):
        return numba.njit(fastmath=set(FASTMATH), error_model="numpy")(disp.py_func)

    rng = np.random.default_rng(0)
    m, L, d_in, d = 3, 4, 2, 2  # noqa: N806
    f32a = np.float32
    W, A, B, V = (rng.standard_normal(s).astype(f32a) for s in ((m, m), (m, d_in), (d, m), (m, m)))
    C, bias, x, y = V @ A, np.zeros(m, f32a), np.ones((L, d_in), f32a), np.ones((L, d), f32a)
    H, U, Z, D, G = (np.zeros((L + 1 if k == 0 else L, m), f32a) for k in range(5))
    R, S, c = np.zeros((L, d), f32a), np.zeros((3, m), f32a), np.zeros(L, f32a)
    Idx, scored, lam = np.zeros(max(m, L), np.int64), np.ones(L, np.bool_), f32a(0.5)
    calls = {
        "_gemv_add": (W, H[0], H[1]),
        "_tanh": (lam, f32a(1), f32a(2)),
        "_matvec_t": (W, H[1], H[2], Idx),
        "_axpy_rows": (W, H[1], H[2], Idx),
        "_gemv_masked": (W, H[1], H[2], H[3], Idx),
        "_elman_back_step": (W, H[1], H[2], True, H[3], Idx),
        "_residual": (B, y[0], H[1], lam, R[0], S[0]),
        "_elman_gate": (S[0], H[1], True, S[1]),
        "_minimal_gate": (S[0], H[0], U[0], Z[0], S[1]),
        "_elman_forward": (W, A, x, True, H, D, Idx),
        "_minimal_forward": (W, A, V, C, bias, x, False, H, U, Z, D),
        "_elman_backward": (W, B, y, H, lam, scored, 2, True, False, D, R, S, Idx),
        "_minimal_backward": (W, B, y, H, U, Z, lam, scored, 2, D, G, R, S, Idx),
        "_apply": (lam, lam, x, H, D, G, R, scored, True, True, True, W, A, B, Idx, c, True),
        "_rank_update_dense": (lam, D, H, W),
        "_rank_update_sparse": (lam, H, D, L, W, Idx, c),
        "_all_finite": (W,),
    }
    offenders = {}
    for name, args in calls.items():
        f = fresh(getattr(_rnn_jit, name))
        f(*args)
        (sig,) = [s for s in f.signatures if f32(s)]
        typemap = f.overloads[sig].type_annotation.typemap
        bad = sorted(
            v for v, t in typemap.items()
            if t == types.float64 and not v.startswith("$") and v.split(".")[0] not in allowed
        )  # fmt: skip
        if bad:
            offenders[name] = bad
    assert not offenders, offenders


# sgd_chunk


def _order_with_repeats(rng, n):
    """Every sample once in a shuffled order, then ``n`` more draws with replacement."""
    order = np.concatenate([rng.permutation(n), rng.integers(0, n, size=n)])
    assert len(np.unique(order)) < len(order)  # some index repeats
    return order


@pytest.mark.parametrize(
    ("trained", "K"),
    [(("W",), None), (("W", "A", "B"), None), (("A", "B"), 2), (("W",), 1)],
    ids=["W", "WAB", "AB-K2", "W-K1"],
)
@pytest.mark.parametrize("cell", rnn.CELLS)
def test_sgd_chunk_matches_naive(rng, cell, trained, K):  # noqa: N803
    m, L = 9, 6  # noqa: N806
    p, X, Y = _problem(rng, m, L, 3, 2, n=6, cell=cell)
    order = _order_with_repeats(rng, 6)
    eta, positions = 0.05, _tail(L)
    p0 = p.copy()
    n_steps, losses = rnn.sgd_chunk(p, X, Y, eta, LAM, positions, order, trained=trained, K=K)
    ref, ref_losses = naive.rnn_sgd(p0, X, Y, eta, LAM, positions, order, trained, K)
    assert n_steps == len(order)
    assert losses.shape == (len(order),) and losses.dtype == np.float64
    _assert_close(losses, ref_losses, 1e-12)
    for name in rnn.PARAM_NAMES:
        before, after = getattr(p0, name), getattr(p, name)
        if name in trained:
            assert np.abs(after - before).max() > 1e-4 * np.abs(before).max()  # it moved
            _assert_close(after, getattr(ref, name), 1e-12)
        else:
            npt.assert_array_equal(after, before)  # exact: never written
    if cell == "minimal":  # V and b are never trained
        npt.assert_array_equal(p.V, p0.V)
        npt.assert_array_equal(p.b, p0.b)


@pytest.mark.parametrize("cell", rnn.CELLS)
def test_sgd_chunk_float32_matches_naive(rng, cell):
    p, X, Y = _problem(rng, 16, 7, 4, 1, n=6, dtype=np.float32, cell=cell)
    order = _order_with_repeats(rng, 6)
    p0 = p.copy()
    trained = ("W", "A", "B")
    n_steps, losses = rnn.sgd_chunk(p, X, Y, 0.01, LAM, None, order, trained=trained)
    ref, ref_losses = naive.rnn_sgd(p0, X, Y, 0.01, LAM, None, order, trained)
    assert n_steps == len(order) and p.W.dtype == np.float32
    _assert_close(losses, ref_losses, 1e-4)
    for name in trained:
        _assert_close(getattr(p, name), getattr(ref, name), 1e-4)


def test_sgd_chunk_default_order_is_one_pass(rng):
    p, X, Y = _problem(rng, 5, 4, 3, 2, n=5)
    p0 = p.copy()
    n_steps, losses = rnn.sgd_chunk(p, X, Y, 0.05, LAM)
    ref, ref_losses = naive.rnn_sgd(p0, X, Y, 0.05, LAM, None, range(5))
    assert n_steps == 5
    _assert_close(losses, ref_losses, 1e-12)
    _assert_close(p.W, ref.W, 1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_relu_w_layouts_give_the_same_results_and_the_kernel_layout_is_not_copied(rng, dtype):
    """init_params stores the ReLU ``W`` column-major (the kernels' ``W^T``): the kernels get a
    view of it, the gradient comes back as a view of the kernels' buffer, SGD updates ``p.W``
    itself. A C-contiguous ``W`` (copied per call) gives bit-for-bit the same numbers: the
    kernels see the same values in the same layout."""
    p, X, Y = _problem(rng, 12, 6, 3, 2, n=5, dtype=dtype)
    assert p.W.flags.f_contiguous and not p.W.flags.c_contiguous
    assert np.shares_memory(rnn._kernel_w(p), p.W)
    assert p.copy().W.flags.f_contiguous
    c = _with(p, W=np.ascontiguousarray(p.W), A=p.A.copy(), B=p.B.copy())  # SGD: no sharing
    assert not np.shares_memory(rnn._kernel_w(c), c.W)
    trained = ("W", "A", "B")
    loss_f, g_f = rnn.loss_and_grad(p, X, Y, LAM, _tail(6), trained=trained, K=3)
    loss_c, g_c = rnn.loss_and_grad(c, X, Y, LAM, _tail(6), trained=trained, K=3)
    assert loss_f == loss_c
    assert g_f.W.flags.f_contiguous and g_c.W.flags.c_contiguous
    for a, b in zip(g_f, g_c, strict=True):
        npt.assert_array_equal(a, b)
    W_f, W0 = p.W, p.W.copy()
    rnn.sgd_chunk(p, X, Y, 0.05, LAM, _tail(6), trained=trained)
    rnn.sgd_chunk(c, X, Y, 0.05, LAM, _tail(6), trained=trained)
    assert p.W is W_f and p.W.flags.f_contiguous and not np.array_equal(p.W, W0)
    for name in ("W", "A", "B"):
        npt.assert_array_equal(getattr(p, name), getattr(c, name))


def test_sgd_chunk_divergence_stops_before_the_bad_step(rng):
    p, X, Y = _problem(rng, 5, 6, 3, 2, n=6)
    order = _order_with_repeats(rng, 6)
    # eta must overflow the loss: a merely large eta (1e3) can kill every ReLU instead, and the
    # loss of a dead network is finite.
    eta, positions = 1e100, _tail(6)
    p0 = p.copy()
    n_steps, losses = rnn.sgd_chunk(p, X, Y, eta, LAM, positions, order)

    assert 0 < n_steps < len(order), n_steps
    assert not np.isfinite(losses[n_steps])
    assert np.isfinite(losses[:n_steps]).all() and np.isfinite(p.W).all()
    # W is the result of exactly n_steps naive steps: the divergent step was not applied.
    with np.errstate(over="ignore", invalid="ignore"):
        ref, ref_losses = naive.rnn_sgd(p0, X, Y, eta, LAM, positions, order[:n_steps])
        k = order[n_steps]
        next_loss, _ = naive.rnn_loss_and_grad(ref, X[k : k + 1], Y[k : k + 1], LAM, positions)
    _assert_close(losses[:n_steps], ref_losses, 1e-10)
    _assert_close(p.W, ref.W, 1e-10)
    assert not np.isfinite(next_loss)  # the reference agrees that this step diverges


#: Non-finite weights that make the outputs non-finite (tanh and the sigmoid gate map an
#: infinite pre-activation to a finite value, so only NaN is guaranteed to propagate there).
NON_FINITE = [("relu", np.nan), ("relu", np.inf), ("tanh", np.nan), ("minimal", np.nan)]


@pytest.mark.parametrize(("cell", "bad"), NON_FINITE, ids=[f"{c}-{b}" for c, b in NON_FINITE])
def test_loss_and_grad_non_finite_weights_give_non_finite_loss(rng, cell, bad):
    """A NaN pre-activation stays NaN through the ReLU (``s if not (s <= 0) else 0``), so the
    kernels agree with forward() that the loss is not finite (for a unit that is never open,
    see the test below)."""
    p, X, Y = _problem(rng, 5, 4, 3, 2, cell=cell)
    p.W[0, 0] = bad
    with np.errstate(invalid="ignore"):
        assert not np.isfinite(rnn.forward(p, X, LAM)).all()  # forward propagates it
        loss, _ = rnn.loss_and_grad(p, X, Y, LAM)
    assert not np.isfinite(loss)


@pytest.mark.parametrize(("cell", "bad"), NON_FINITE, ids=[f"{c}-{b}" for c, b in NON_FINITE])
def test_sgd_chunk_non_finite_weights_stop_the_chunk(rng, cell, bad):
    p, X, Y = _problem(rng, 5, 4, 3, 2, cell=cell)
    p.W[0, 0] = bad
    W0 = p.W.copy()
    n_steps, _ = rnn.sgd_chunk(p, X, Y, 0.01, LAM)
    assert n_steps == 0
    npt.assert_array_equal(p.W, W0)  # NaN == NaN here: nothing was applied


def _closed_unit_problem(rng, cell="relu"):
    """Positive inputs and a unit 0 with strongly negative input weights and no recurrent
    input: under ReLU it is closed at every position of every sample."""
    p, X, Y = _problem(rng, 5, 4, 3, 2, cell=cell)
    X = np.abs(X) + 0.1
    p.A[0] = -100.0
    p.W[0] = 0.0
    assert (rnn.states(p, X)[..., 0] == 0).all()
    return p, X, Y


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_relu_non_finite_weights_of_a_closed_unit_still_give_a_non_finite_loss(rng, bad):
    """The ReLU kernels skip closed units, so a non-finite entry in the column of a unit that
    is never open is never multiplied; they still report it, as the dense forward() does."""
    p, X, Y = _closed_unit_problem(rng)
    p.W[1, 0] = bad  # unit 0's outgoing weight: read only when unit 0 is open
    with np.errstate(invalid="ignore"):
        assert not np.isfinite(rnn.forward(p, X, LAM)).all()
        loss, _ = rnn.loss_and_grad(p, X, Y, LAM)
        H, _, _ = rnn._trajectories(p, X)
    assert not np.isfinite(loss) and np.isnan(H).all()
    W0 = p.W.copy()
    n_steps, losses = rnn.sgd_chunk(p, X, Y, 0.01, LAM)
    assert n_steps == 0 and np.isnan(losses[0])
    npt.assert_array_equal(p.W, W0)


def test_relu_sgd_chunk_stops_at_the_step_whose_update_overflows(rng):
    """A finite loss whose W update overflows ends the chunk at that step (it was applied):
    the Inf could land in the column of a unit that then stays closed, unseen by later
    losses."""
    p, X, Y = _problem(rng, 5, 4, 3, 2)
    n_steps, losses = rnn.sgd_chunk(p, X, Y, 1e308, LAM, order=np.array([0, 1, 2]))
    assert n_steps == 0 and np.isfinite(losses[0])
    assert not np.isfinite(p.W).all()
    p, X, Y = _problem(rng, 5, 4, 3, 2)
    assert rnn.sgd_chunk(p, X, Y, 1e-3, LAM, order=np.array([0, 1, 2]))[0] == 3


def test_sgd_chunk_losses_buffer(rng):
    p, X, Y = _problem(rng, 4, 5, 3, 2, n=3)
    order = np.array([0, 2, 1])
    buf = np.full(5, -1.0)
    n_steps, losses = rnn.sgd_chunk(p, X, Y, 0.01, LAM, None, order, buf)
    assert n_steps == 3 and losses.shape == (3,) and np.shares_memory(losses, buf)
    assert (buf[:3] >= 0).all() and (buf[3:] == -1.0).all()  # the tail is left alone
    for bad in (
        np.zeros(2),  # too short
        np.zeros(3, np.float32),  # wrong dtype
        np.zeros(6)[::2],  # not contiguous
        np.zeros((3, 1)),  # not 1-D
        [0.0, 0.0, 0.0],  # not an ndarray
    ):
        W0 = p.W.copy()
        with pytest.raises(ValueError, match="losses"):
            rnn.sgd_chunk(p, X, Y, 0.01, LAM, None, order, bad)
        npt.assert_array_equal(p.W, W0)


# Wrapper validation


def _valid(rng):
    return _problem(rng, 4, 5, 3, 2, n=3)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda W, A, B: (W[:, :3].copy(), A, B), id="W-not-square"),
        pytest.param(lambda W, A, B: (W, A[:3].copy(), B), id="A-wrong-m"),
        pytest.param(lambda W, A, B: (W, A, B[:, :3].copy()), id="B-wrong-m"),
        pytest.param(lambda W, A, B: (W[None], A, B), id="W-3d"),
        pytest.param(lambda W, A, B: (W, A.astype(np.float32), B), id="mixed-dtypes"),
        pytest.param(lambda W, A, B: (W.astype(np.int64), A, B), id="int-dtype"),
        pytest.param(lambda W, A, B: (W, np.asfortranarray(A), B), id="A-not-c-contiguous"),
        pytest.param(lambda W, A, B: (np.repeat(W, 2, axis=1)[:, ::2], A, B),
                     id="W-not-contiguous"),
        pytest.param(lambda W, A, B: (W.tolist(), A, B), id="not-ndarray"),
    ],
)
def test_rnnparams_rejects_bad_arrays(rng, change):
    p, _, _ = _valid(rng)
    W, A, B = change(p.W, p.A, p.B)
    with pytest.raises(ValueError):
        rnn.RNNParams(W=W, A=A, B=B)


def test_only_the_relu_w_may_be_column_major(rng):
    p, _, _ = _valid(rng)
    W = np.asfortranarray(p.W)
    assert rnn.RNNParams(W=W, A=p.A, B=p.B, cell="relu").W is W
    with pytest.raises(ValueError, match="W must be C-contiguous"):
        rnn.RNNParams(W=W, A=p.A, B=p.B, cell="tanh")


def test_rnnparams_cell_arrays(rng):
    p = _params(rng, 4, 3, 2, cell="minimal")
    with pytest.raises(ValueError, match="cell"):
        _with(p, cell="lstm")
    with pytest.raises(ValueError, match="minimal"):
        _with(p, cell="minimal", V=None)
    with pytest.raises(ValueError, match="minimal"):
        _with(p, cell="tanh")  # V and b given to an Elman cell
    with pytest.raises(ValueError):
        _with(p, b=p.b[:3].copy())
    with pytest.raises(ValueError):
        _with(p, V=p.V.astype(np.float32))
    q = p.copy()
    assert q.cell == "minimal" and not np.shares_memory(q.V, p.V)


#: Calls whose arrays do not fit the problem of ``_valid`` (m=4, L=5, d_in=3, d=2, n=3).
BAD_CALLS = {
    "forward-X-wrong-d_in": lambda p, X, Y: rnn.forward(p, X[..., :2]),
    "forward-X-2d": lambda p, X, Y: rnn.forward(p, X[0]),
    "grad-X-wrong-d_in": lambda p, X, Y: rnn.loss_and_grad(p, X[..., :2], Y),
    "grad-Y-wrong-d": lambda p, X, Y: rnn.loss_and_grad(p, X, Y[..., :1]),
    "grad-Y-wrong-L": lambda p, X, Y: rnn.loss_and_grad(p, X, Y[:, :4]),
    "grad-Y-wrong-n": lambda p, X, Y: rnn.loss_and_grad(p, X, Y[:2]),
    "grad-pos-too-big": lambda p, X, Y: rnn.loss_and_grad(p, X, Y, positions=[2, 5]),
    "grad-pos-negative": lambda p, X, Y: rnn.loss_and_grad(p, X, Y, positions=[-1]),
    "grad-trained-empty": lambda p, X, Y: rnn.loss_and_grad(p, X, Y, trained=()),
    "grad-trained-V": lambda p, X, Y: rnn.loss_and_grad(p, X, Y, trained=("W", "V")),
    "grad-K-zero": lambda p, X, Y: rnn.loss_and_grad(p, X, Y, K=0),
    "grad-K-float": lambda p, X, Y: rnn.loss_and_grad(p, X, Y, K=2.0),
    "sgd-Y-wrong-d": lambda p, X, Y: rnn.sgd_chunk(p, X, Y[..., :1], 0.1),
    "sgd-pos-too-big": lambda p, X, Y: rnn.sgd_chunk(p, X, Y, 0.1, positions=[5]),
    "sgd-order-too-big": lambda p, X, Y: rnn.sgd_chunk(p, X, Y, 0.1, order=[0, 3]),
    "sgd-order-negative": lambda p, X, Y: rnn.sgd_chunk(p, X, Y, 0.1, order=[-1, 0]),
    "sgd-order-2d": lambda p, X, Y: rnn.sgd_chunk(p, X, Y, 0.1, order=[[0], [1]]),
    "sgd-K-negative": lambda p, X, Y: rnn.sgd_chunk(p, X, Y, 0.1, K=-1),
    "sgd-trained-bad": lambda p, X, Y: rnn.sgd_chunk(p, X, Y, 0.1, trained=("w",)),
}


@pytest.mark.parametrize("call", BAD_CALLS.values(), ids=BAD_CALLS.keys())
def test_wrappers_reject_arrays_that_do_not_fit(rng, call):
    p, X, Y = _valid(rng)
    W0 = p.W.copy()
    with pytest.raises(ValueError):
        call(p, X, Y)
    npt.assert_array_equal(p.W, W0)  # a rejected call leaves the weights alone


# init_params, modes and encoders


def _assert_gaussian(a, var, mean=0.0):
    """Sample mean and variance within 5 standard errors of a Gaussian's."""
    n = a.size
    assert abs(a.mean() - mean) < 5 * np.sqrt(var / n)
    assert abs(a.var() / var - 1.0) < 5 * np.sqrt(2.0 / n)


@pytest.mark.parametrize("mode", list(rnn.MODES))
def test_init_params_variances(rng, mode):
    m, d_in, d = 400, 50, 5
    p = rnn.init_params(m, d_in, d, rng, mode=mode)
    assert (p.m, p.d_in, p.d, p.cell) == (m, d_in, d, "relu") and p.dtype == np.float64
    b_var = {"azl": 1.0, "pg21": 2.0, "plain": 1.0}[mode]  # PG21 (arXiv 2106.00047): B ~ N(0, 2/d)
    for a, var in ((p.W, 2.0 / m), (p.A, 2.0 / m), (p.B, b_var / d)):
        _assert_gaussian(a, var)


def test_init_params_minimal_gate(rng):
    m = 300
    p = rnn.init_params(m, 4, 2, rng, cell="minimal", sigma_v=1.5, mu_b=0.7, sigma_b=0.4)
    _assert_gaussian(p.V, 1.5**2 / m)
    _assert_gaussian(p.b, 0.4**2, mean=0.7)
    q = rnn.init_params(m, 4, 2, rng, cell="minimal", mu_b=-2.0)
    npt.assert_array_equal(q.b, -2.0)  # sigma_b = 0: a constant bias


def test_init_params_orthogonal(rng):
    m = 50
    p = rnn.init_params(m, 3, 2, rng, init="orthogonal")
    # Householder QR is orthogonal to ~m eps = 1e-14; then a 50-term product: atol 1e-12
    npt.assert_allclose(p.W @ p.W.T, 2.0 * np.eye(m), atol=1e-12)  # scale sqrt(2)
    q = rnn.init_params(m, 3, 2, rng, init="orthogonal", sigma_w=0.5)
    npt.assert_allclose(q.W.T @ q.W, 0.25 * np.eye(m), atol=1e-12)
    _assert_gaussian(p.A, 2.0 / m)  # A and B do not depend on init
    # Haar: not a signed permutation or any fixed matrix
    assert np.abs(p.W).max() < 0.9 * np.sqrt(2.0)
    assert not np.allclose(p.W, rnn.init_params(m, 3, 2, rng, init="orthogonal").W)


def test_init_params_sigma_w_and_critical(rng):
    m = 400
    p = rnn.init_params(m, 3, 2, rng, sigma_w=0.5)
    _assert_gaussian(p.W, 0.25 / m)
    with pytest.raises(ValueError, match="sigma_w"):
        rnn.init_params(m, 3, 2, rng, init="critical", sigma_w=1.0)
    for bad in ({"cell": "gru"}, {"init": "xavier"}, {"mode": "azl2"}):
        with pytest.raises(ValueError):
            rnn.init_params(4, 3, 2, rng, **bad)
    # critical ReLU is the AZL gain; tanh's depends on the input scale
    # a root of chi_1 = 1 found by brentq (rtol 1e-13 on sigma_w): 1e-10 on its square
    npt.assert_allclose(rnn.w_var("relu", "critical", m), 2.0, rtol=1e-10)
    assert rnn.w_var("tanh", "critical", m, x_sq_norm=m / 2) > rnn.w_var(
        "tanh", "critical", m, x_sq_norm=1.0
    )


def test_init_params_draw_order_and_dtypes():
    """W, A, B are drawn in that order in float64, then cast: float32 is float64 rounded."""
    m, d_in, d = 7, 3, 2
    p64 = rnn.init_params(m, d_in, d, np.random.default_rng(5), np.float64)
    p32 = rnn.init_params(m, d_in, d, np.random.default_rng(5), np.float32)
    r = np.random.default_rng(5)
    # bit-exact: the same draws times the same correctly rounded factor
    npt.assert_array_equal(p64.W, r.standard_normal((m, m)) * np.sqrt(2.0 / m))
    npt.assert_array_equal(p64.A, r.standard_normal((m, d_in)) * np.sqrt(2.0 / m))
    npt.assert_array_equal(p64.B, r.standard_normal((d, m)) * np.sqrt(1.0 / d))
    assert p32.dtype == np.float32
    for a32, a64 in ((p32.W, p64.W), (p32.A, p64.A), (p32.B, p64.B)):
        npt.assert_array_equal(a32, a64.astype(np.float32))
        npt.assert_allclose(a32, a64, rtol=2**-23)


def test_mode_presets():
    assert rnn.mode_spec("azl").trained == ("W",)
    assert rnn.mode_spec("pg21").trained == ("W", "A")
    assert rnn.mode_spec("plain").lam == 1.0
    with pytest.raises(ValueError):
        rnn.mode_spec("AZL")
    npt.assert_array_equal(rnn.scored_positions("azl", 6), [2, 3, 4, 5])
    npt.assert_array_equal(rnn.scored_positions("plain", 6), [2, 3, 4, 5])
    npt.assert_array_equal(rnn.scored_positions("pg21", 6), [5])
    assert [rnn.input_dim(mo, 8) for mo in ("azl", "pg21", "plain")] == [9, 9, 8]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_azl_inputs_start_token_and_scaled_tokens(rng, dtype):
    n, L, d_x, eps_x = 4, 5, 3, 0.1  # noqa: N806
    tokens = rng.standard_normal((n, L, d_x))  # row 0 is not zero: it must be ignored
    X = rnn.azl_inputs(tokens, eps_x, dtype)  # exact below: copies and one product each
    assert X.shape == (n, L, d_x + 1) and X.dtype == dtype
    npt.assert_array_equal(X[:, 0], np.tile(np.r_[np.zeros(d_x), 1.0], (n, 1)))
    npt.assert_array_equal(X[:, 1:, -1], 0.0)
    npt.assert_array_equal(X[:, 1:, :-1], (eps_x * tokens[:, 1:]).astype(dtype))
    npt.assert_array_equal(rnn.encode_inputs("azl", tokens, eps_x, dtype), X)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_pg21_and_plain_inputs(rng, dtype):
    n, L, d_x, eps_x = 4, 6, 3, 0.2  # noqa: N806
    tokens = rng.standard_normal((n, L, d_x))
    X = rnn.pg21_inputs(tokens, eps_x, dtype)  # exact below: copies and one product each
    special = np.tile(np.r_[np.zeros(d_x), 1.0], (n, 1))
    assert X.shape == (n, L, d_x + 1) and X.dtype == dtype
    npt.assert_array_equal(X[:, 0], special)  # start token
    npt.assert_array_equal(X[:, -1], special)  # end token
    npt.assert_array_equal(X[:, 1:-1, -1], 0.0)
    npt.assert_array_equal(X[:, 1:-1, :-1], (eps_x * tokens[:, 1:-1]).astype(dtype))
    npt.assert_array_equal(rnn.encode_inputs("pg21", tokens, eps_x, dtype), X)
    P = rnn.plain_inputs(tokens, dtype)
    assert P.dtype == dtype and P.flags.c_contiguous and not np.shares_memory(P, tokens)
    npt.assert_array_equal(P, tokens.astype(dtype))
    npt.assert_array_equal(rnn.encode_inputs("plain", tokens, 0.3, dtype), P)


# ntk_trace


def _naive_kernel_trace(p, x, lam, positions, trained):
    """``sum over positions j, outputs s of ||d(lam yhat_{j,s})/d theta||^2`` from the twin,
    with the one-hot trick (``Y = yhat - e_s`` at ``j`` alone, so the residual is ``e_s``)."""
    yhat, _ = naive.rnn_forward(p, x[None], lam)
    total = 0.0
    for j in positions:
        for s in range(p.d):
            Y = yhat.copy()
            Y[0, j, s] -= 1.0
            _, g = naive.rnn_loss_and_grad(p, x[None], Y, lam, [j])
            total += sum(float(np.sum(g[name] ** 2)) for name in trained)
    return total


@pytest.mark.parametrize("trained", [("W",), ("A", "B"), ("W", "A", "B")], ids=["W", "AB", "WAB"])
@pytest.mark.parametrize("cell", rnn.CELLS)
def test_empirical_ntk_trace_matches_naive(rng, cell, trained):
    p, X, _ = _problem(rng, 6, 5, 3, 2, n=3, cell=cell)
    positions = [1, 3, 4]
    expected = np.mean([_naive_kernel_trace(p, x, LAM, positions, trained) for x in X])
    got = rnn.empirical_ntk_trace(p, X, positions, LAM, trained=trained)
    assert got > 0
    npt.assert_allclose(got, expected, rtol=1e-12)  # sums of squares (positive): RTOL


@pytest.mark.parametrize(
    ("mode", "trained", "eps_x"),
    [
        ("azl", ("W",), 0.1),
        ("azl", ("W",), 2.0),
        ("pg21", ("W", "A"), 0.5),
        ("plain", ("W", "A", "B"), 1.0),
        ("plain", ("A",), 1.0),
    ],
    ids=["azl-W-eps0.1", "azl-W-eps2", "pg21-WA", "plain-WAB", "plain-A"],
)
def test_ntk_trace_matches_measured_trace(rng, mode, trained, eps_x):
    """Mean over inits and samples of the measured trace, against the wide-limit formula.

    At m = 512 the trace of one initialisation scatters by about 15% around the formula (the
    per-sample scatter is far smaller), so the mean is taken over 16 inits (standard error about
    4%). eps_x = 0.1 is the AZL regime, where the growth of q_t = 1 + (t-1) eps_x^2 is a 1%
    effect; eps_x = 2 makes that term dominate, so that it is tested too.
    """
    m, L, d_x, d, lam = 512, 6, 8, 2, 0.5  # noqa: N806
    positions = rnn.scored_positions(mode, L)
    concept = azl.sample(rng, L=L, d_x=d_x, d=d)
    traces = []
    for _ in range(16):
        p = rnn.init_params(m, rnn.input_dim(mode, d_x), d, rng, mode=mode)
        tokens, _ = concept.sample(2, rng)
        X = rnn.encode_inputs(mode, tokens, eps_x)
        traces.append(rnn.empirical_ntk_trace(p, X, positions, lam, trained=trained))
    # the AZL concept leaves token 0 empty, which only the plain encoding shows
    norms = np.r_[0.0, np.ones(L - 1)] if mode == "plain" else None
    expected = rnn.ntk_trace(
        m, L, eps_x, positions, lam, mode=mode, trained=trained, d=d, x_sq_norms=norms
    )
    npt.assert_allclose(np.mean(traces), expected, rtol=0.15)  # ~4 standard errors (docstring)


def test_ntk_trace_first_positions(rng):
    """Position 0 sees no W (h_{-1} = 0); position 1 sees it through h_0 alone:
    T = lam^2 m / 2 q_0."""
    m, lam = 64, 0.5
    # closed forms of a few positive terms: rounding ~1e-15, compared at NumPy's default 1e-7
    assert rnn.ntk_trace(m, 4, 0.1, [0], lam) == 0.0  # exact: no term
    npt.assert_allclose(rnn.ntk_trace(m, 4, 0.1, [1], lam), lam**2 * m / 2)
    npt.assert_allclose(  # additive over positions
        rnn.ntk_trace(m, 4, 0.1, [1, 3], lam),
        rnn.ntk_trace(m, 4, 0.1, [1], lam) + rnn.ntk_trace(m, 4, 0.1, [3], lam),
    )
    npt.assert_allclose(  # additive over trained matrices
        rnn.ntk_trace(m, 4, 0.1, [3], lam, trained=("W", "A", "B"), d=2),
        sum(rnn.ntk_trace(m, 4, 0.1, [3], lam, trained=(t,), d=2) for t in "WAB"),
    )
    npt.assert_allclose(  # explicit norms: q = (1, 1.5, 3.5, 7.5); T_A(j=4) = lam^2 m/2 q_4
        rnn.ntk_trace(m, 4, 0.1, [3], lam, trained=("A",), x_sq_norms=[1, 0.5, 2, 4]),
        lam**2 * m / 2 * 7.5,
    )
    p = rnn.init_params(m, 3, 2, rng)
    X = rnn.azl_inputs(rng.standard_normal((1, 4, 2)), 0.1)
    assert rnn.empirical_ntk_trace(p, X, [0], lam) == 0.0
