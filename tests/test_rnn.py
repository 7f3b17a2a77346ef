"""The Elman ReLU RNN (:mod:`pacsim.models.rnn`) against its slow twins in :mod:`naive`.

* forward, loss_and_grad and sgd_chunk agree with plain-NumPy references (float64 tightly,
  float32 loosely), and the gradients agree with central finite differences;
* a diverging SGD chunk stops at the first non-finite loss without applying that step;
* the wrapper rejects arrays that do not fit;
* init_params and azl_inputs follow the AZL conventions;
* ntk_trace predicts the measured gradient-kernel trace at initialisation.

Shapes are tiny (``m <= 33``) except in the statistical tests; every test is seeded by the
``rng`` fixture of ``conftest.py``.
"""

from __future__ import annotations

import naive
import numpy as np
import numpy.testing as npt
import pytest

from pacsim.concepts import azl
from pacsim.models import rnn

#: (m, L, d_in, d): hidden width, sequence length, input and output dimension.
SHAPES = [(1, 3, 2, 1), (5, 4, 3, 2), (16, 7, 4, 1), (33, 5, 9, 3)]
SHAPE_IDS = [f"m{m}-L{L}-din{d_in}-d{d}" for m, L, d_in, d in SHAPES]

#: Output scale used throughout; not 1, so that a misplaced or doubled lam shows.
LAM = 0.7

#: Samples per batch in the comparison tests.
N = 8

#: Relative tolerance (to the largest entry of the reference) per dtype.
RTOL = {np.float64: 1e-12, np.float32: 1e-4}


# Helpers


def _problem(rng, m, L, d_in, d, n=N, dtype=np.float64):  # noqa: N803
    """AZL-initialised weights and Gaussian inputs/labels, all in ``dtype``."""
    p = rnn.init_params(m, d_in, d, rng, dtype)
    X = rng.standard_normal((n, L, d_in)).astype(dtype)
    Y = rng.standard_normal((n, L, d)).astype(dtype)
    return p, X, Y


def _assert_relus_mixed(p, X):
    """The data exercise both ReLU branches (some units active, some not)."""
    _, H = naive.rnn_forward(p.W, p.A, p.B, X, LAM)
    assert (H > 0).any() and (H == 0).any()


def _assert_close(actual, desired, rtol):
    """``actual == desired`` up to ``rtol`` relative to the largest entry of ``desired``."""
    desired = np.asarray(desired, dtype=np.float64)
    npt.assert_allclose(actual, desired, rtol=rtol, atol=rtol * np.abs(desired).max())


def _tail(L):  # noqa: N803
    """The AZL scored positions 2..L-1 (0-based)."""
    return list(range(2, L))


# forward


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("m", "L", "d_in", "d"), SHAPES, ids=SHAPE_IDS)
def test_forward_matches_naive(rng, m, L, d_in, d, dtype):  # noqa: N803
    p, X, _ = _problem(rng, m, L, d_in, d, dtype=dtype)
    _assert_relus_mixed(p, X)
    Yhat = rnn.forward(p, X, LAM)
    assert Yhat.shape == (N, L, d) and Yhat.dtype == dtype
    ref, _ = naive.rnn_forward(p.W, p.A, p.B, X, LAM)  # float64, from the same weights
    _assert_close(Yhat, ref, RTOL[dtype])


# loss_and_grad


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("scored", ["all", "tail"])
@pytest.mark.parametrize(("m", "L", "d_in", "d"), SHAPES, ids=SHAPE_IDS)
def test_loss_and_grad_matches_naive(rng, m, L, d_in, d, scored, dtype):  # noqa: N803
    p, X, Y = _problem(rng, m, L, d_in, d, dtype=dtype)
    _assert_relus_mixed(p, X)
    positions = None if scored == "all" else _tail(L)
    loss, g = rnn.loss_and_grad(p, X, Y, LAM, positions)
    ref_loss, ref_gW = naive.rnn_loss_and_grad(p.W, p.A, p.B, X, Y, LAM, positions)
    assert g.W.shape == (m, m) and g.W.dtype == dtype
    assert g.A is None and g.B is None  # only W is trained
    assert np.abs(ref_gW).max() > 0
    npt.assert_allclose(loss, ref_loss, rtol=RTOL[dtype])
    _assert_close(g.W, ref_gW, RTOL[dtype])


def test_loss_and_grad_positions_select_the_scored_terms(rng):
    """The loss over a set of positions is the sum of the single-position losses."""
    p, X, Y = _problem(rng, 5, 6, 3, 2)
    total, g = rnn.loss_and_grad(p, X, Y, LAM, [1, 3, 4])
    parts = [rnn.loss_and_grad(p, X, Y, LAM, [j]) for j in (1, 3, 4)]
    npt.assert_allclose(total, sum(loss for loss, _ in parts), rtol=1e-12)
    _assert_close(g.W, sum(gj.W for _, gj in parts), 1e-12)
    assert rnn.loss_and_grad(p, X, Y, LAM, [])[0] == 0.0


@pytest.mark.parametrize(
    ("m", "L", "d_in", "d", "scored"),
    [(5, 4, 3, 2, "all"), (16, 7, 4, 1, "tail")],
    ids=["m5-L4-all", "m16-L7-tail"],
)
def test_loss_and_grad_matches_finite_differences(rng, m, L, d_in, d, scored):  # noqa: N803
    p, X, Y = _problem(rng, m, L, d_in, d, n=4)
    _assert_relus_mixed(p, X)
    positions = None if scored == "all" else _tail(L)

    def loss_of(W):
        return rnn.loss_and_grad(rnn.RNNParams(W=W, A=p.A, B=p.B), X, Y, LAM, positions)[0]

    fd = naive.finite_difference_grad(loss_of, p.W, 1e-6)
    _, g = rnn.loss_and_grad(p, X, Y, LAM, positions)
    _assert_close(g.W, fd, 1e-6)


def test_naive_loss_and_grad_matches_finite_differences(rng):
    """The reference itself: its BPTT gradient is the derivative of its loss."""
    p, X, Y = _problem(rng, 6, 5, 3, 2, n=3)
    _assert_relus_mixed(p, X)
    positions = [1, 3, 4]

    def loss_of(W):
        return naive.rnn_loss_and_grad(W, p.A, p.B, X, Y, LAM, positions)[0]

    fd = naive.finite_difference_grad(loss_of, p.W, 1e-6)
    _, gW = naive.rnn_loss_and_grad(p.W, p.A, p.B, X, Y, LAM, positions)
    _assert_close(gW, fd, 1e-6)


# sgd_chunk


def _order_with_repeats(rng, n):
    """Every sample once in a shuffled order, then ``n`` more draws with replacement."""
    order = np.concatenate([rng.permutation(n), rng.integers(0, n, size=n)])
    assert len(np.unique(order)) < len(order)  # some index repeats
    return order


@pytest.mark.parametrize(("m", "L", "d_in", "d"), SHAPES[1:3], ids=SHAPE_IDS[1:3])
def test_sgd_chunk_matches_naive(rng, m, L, d_in, d):  # noqa: N803
    p, X, Y = _problem(rng, m, L, d_in, d, n=6)
    order = _order_with_repeats(rng, 6)
    eta, positions = 0.05, _tail(L)
    W0 = p.W.copy()
    n_steps, losses = rnn.sgd_chunk(p, X, Y, eta, LAM, positions, order)
    ref_W, ref_losses = naive.rnn_sgd(W0, p.A, p.B, X, Y, eta, LAM, positions, order)
    assert n_steps == len(order)
    assert losses.shape == (len(order),) and losses.dtype == np.float64
    assert np.abs(ref_W - W0).max() > 1e-3 * np.abs(W0).max()  # the chunk did move W
    _assert_close(losses, ref_losses, 1e-12)
    _assert_close(p.W, ref_W, 1e-12)


def test_sgd_chunk_float32_matches_naive(rng):
    p, X, Y = _problem(rng, 16, 7, 4, 1, n=6, dtype=np.float32)
    order = _order_with_repeats(rng, 6)
    W0 = p.W.copy()
    n_steps, losses = rnn.sgd_chunk(p, X, Y, 0.05, LAM, None, order)
    ref_W, ref_losses = naive.rnn_sgd(W0, p.A, p.B, X, Y, 0.05, LAM, None, order)
    assert n_steps == len(order) and p.W.dtype == np.float32
    _assert_close(losses, ref_losses, 1e-4)
    _assert_close(p.W, ref_W, 1e-4)


def test_sgd_chunk_default_order_is_one_pass(rng):
    p, X, Y = _problem(rng, 5, 4, 3, 2, n=5)
    W0 = p.W.copy()
    n_steps, losses = rnn.sgd_chunk(p, X, Y, 0.05, LAM)
    ref_W, ref_losses = naive.rnn_sgd(W0, p.A, p.B, X, Y, 0.05, LAM, None, range(5))
    assert n_steps == 5
    _assert_close(losses, ref_losses, 1e-12)
    _assert_close(p.W, ref_W, 1e-12)


def test_sgd_chunk_divergence_stops_before_the_bad_step(rng):
    p, X, Y = _problem(rng, 5, 6, 3, 2, n=6)
    order = _order_with_repeats(rng, 6)
    # eta must overflow the loss: a merely large eta (1e3) can kill every ReLU instead, and the
    # loss of a dead network is finite.
    eta, positions = 1e100, _tail(6)
    W0 = p.W.copy()
    n_steps, losses = rnn.sgd_chunk(p, X, Y, eta, LAM, positions, order)

    assert 0 < n_steps < len(order), n_steps
    assert not np.isfinite(losses[n_steps])
    assert np.isfinite(losses[:n_steps]).all() and np.isfinite(p.W).all()
    # W is the result of exactly n_steps naive steps: the divergent step was not applied.
    with np.errstate(over="ignore", invalid="ignore"):
        ref_W, ref_losses = naive.rnn_sgd(W0, p.A, p.B, X, Y, eta, LAM, positions, order[:n_steps])
        k = order[n_steps]
        next_loss, _ = naive.rnn_loss_and_grad(
            ref_W, p.A, p.B, X[k : k + 1], Y[k : k + 1], LAM, positions
        )
    _assert_close(losses[:n_steps], ref_losses, 1e-10)
    _assert_close(p.W, ref_W, 1e-10)
    assert not np.isfinite(next_loss)  # the reference agrees that this step diverges


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
        pytest.param(lambda W, A, B: (np.asfortranarray(W), A, B), id="not-c-contiguous"),
        pytest.param(lambda W, A, B: (W.tolist(), A, B), id="not-ndarray"),
    ],
)
def test_rnnparams_rejects_bad_arrays(rng, change):
    p, _, _ = _valid(rng)
    W, A, B = change(p.W, p.A, p.B)
    with pytest.raises(ValueError):
        rnn.RNNParams(W=W, A=A, B=B)


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
    "sgd-Y-wrong-d": lambda p, X, Y: rnn.sgd_chunk(p, X, Y[..., :1], 0.1),
    "sgd-pos-too-big": lambda p, X, Y: rnn.sgd_chunk(p, X, Y, 0.1, positions=[5]),
    "sgd-order-too-big": lambda p, X, Y: rnn.sgd_chunk(p, X, Y, 0.1, order=[0, 3]),
    "sgd-order-negative": lambda p, X, Y: rnn.sgd_chunk(p, X, Y, 0.1, order=[-1, 0]),
}


@pytest.mark.parametrize("call", BAD_CALLS.values(), ids=BAD_CALLS.keys())
def test_wrappers_reject_arrays_that_do_not_fit(rng, call):
    p, X, Y = _valid(rng)
    W0 = p.W.copy()
    with pytest.raises(ValueError):
        call(p, X, Y)
    npt.assert_array_equal(p.W, W0)  # a rejected call leaves the weights alone


# init_params and azl_inputs


def test_init_params_variances(rng):
    m, d_in, d = 400, 50, 5
    p = rnn.init_params(m, d_in, d, rng)
    assert (p.m, p.d_in, p.d) == (m, d_in, d) and p.dtype == np.float64
    for a, var in ((p.W, 2.0 / m), (p.A, 2.0 / m), (p.B, 1.0 / d)):
        n = a.size
        # 5 standard errors of the sample mean and of the sample variance of a Gaussian.
        assert abs(a.mean()) < 5 * np.sqrt(var / n)
        assert abs(a.var() / var - 1.0) < 5 * np.sqrt(2.0 / n)


def test_init_params_draw_order_and_dtypes():
    """W, A, B are drawn in that order in float64, then cast: float32 is float64 rounded."""
    m, d_in, d = 7, 3, 2
    p64 = rnn.init_params(m, d_in, d, np.random.default_rng(5), np.float64)
    p32 = rnn.init_params(m, d_in, d, np.random.default_rng(5), np.float32)
    r = np.random.default_rng(5)
    npt.assert_array_equal(p64.W, r.standard_normal((m, m)) * np.sqrt(2.0 / m))
    npt.assert_array_equal(p64.A, r.standard_normal((m, d_in)) * np.sqrt(2.0 / m))
    npt.assert_array_equal(p64.B, r.standard_normal((d, m)) * np.sqrt(1.0 / d))
    assert p32.dtype == np.float32
    for a32, a64 in ((p32.W, p64.W), (p32.A, p64.A), (p32.B, p64.B)):
        npt.assert_array_equal(a32, a64.astype(np.float32))
        npt.assert_allclose(a32, a64, rtol=2**-23)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_azl_inputs_start_token_and_scaled_tokens(rng, dtype):
    n, L, d_x, eps_x = 4, 5, 3, 0.1  # noqa: N806
    tokens = rng.standard_normal((n, L, d_x))  # row 0 is not zero: it must be ignored
    X = rnn.azl_inputs(tokens, eps_x, dtype)
    assert X.shape == (n, L, d_x + 1) and X.dtype == dtype
    npt.assert_array_equal(X[:, 0], np.tile(np.r_[np.zeros(d_x), 1.0], (n, 1)))
    npt.assert_array_equal(X[:, 1:, -1], 0.0)
    npt.assert_array_equal(X[:, 1:, :-1], (eps_x * tokens[:, 1:]).astype(dtype))


# ntk_trace


def _gradient_kernel_trace(p, x, lam, positions):
    """``sum over positions j and outputs s of ||d(yhat_{j,s})/dW||_F^2`` for one sample.

    One-hot trick: with ``Y = yhat - e_s`` at the single scored position ``j``, the residual is
    ``e_s``, so the gradient of ``0.5 * ||yhat_j - Y_j||^2`` is exactly ``d(yhat_{j,s})/dW``
    (``yhat = lam * B h`` includes ``lam``).
    """
    x = x[None]
    yhat = rnn.forward(p, x, lam)
    total = 0.0
    for j in positions:
        for s in range(p.d):
            Y = yhat.copy()
            Y[0, j, s] -= 1.0
            _, g = rnn.loss_and_grad(p, x, Y, lam, [j])
            total += float(np.sum(g.W**2))
    return total


@pytest.mark.parametrize("eps_x", [0.1, 2.0])
def test_ntk_trace_matches_measured_trace(rng, eps_x):
    """Mean over inits and AZL samples of the measured trace, against the wide-limit formula.

    At m = 512 the trace of one initialisation scatters by about 15% around the formula (the
    per-sample scatter is far smaller), so the mean is taken over 16 inits (standard error about
    4%). eps_x = 0.1 is the AZL regime, where the growth of q_t = 1 + (t-1) eps_x^2 is a 1%
    effect; eps_x = 2 makes that term dominate, so that it is tested too.
    """
    m, L, d_x, d, lam = 512, 6, 8, 2, 0.5  # noqa: N806
    positions = _tail(L)
    concept = azl.sample(rng, L=L, d_x=d_x, d=d)
    traces = []
    for _ in range(16):
        p = rnn.init_params(m, d_x + 1, d, rng)
        tokens, _ = concept.sample(2, rng)
        X = rnn.azl_inputs(tokens, eps_x)
        traces += [_gradient_kernel_trace(p, x, lam, positions) for x in X]
    expected = rnn.ntk_trace(m, L, eps_x, positions, lam)
    npt.assert_allclose(np.mean(traces), expected, rtol=0.15)


def test_ntk_trace_first_positions(rng):
    """Position 0 sees no W (h_0 = 0); position 1 sees it through h_1 alone: T = lam^2 m / 2 q_1."""
    m, lam = 64, 0.5
    assert rnn.ntk_trace(m, 4, 0.1, [0], lam) == 0.0
    npt.assert_allclose(rnn.ntk_trace(m, 4, 0.1, [1], lam), lam**2 * m / 2)
    npt.assert_allclose(  # additive over positions
        rnn.ntk_trace(m, 4, 0.1, [1, 3], lam),
        rnn.ntk_trace(m, 4, 0.1, [1], lam) + rnn.ntk_trace(m, 4, 0.1, [3], lam),
    )
    p = rnn.init_params(m, 3, 2, rng)
    X = rnn.azl_inputs(rng.standard_normal((1, 4, 2)), 0.1)
    assert _gradient_kernel_trace(p, X[0], lam, [0]) == 0.0


# Known issues (strict xfail: these start failing, i.e. XPASS, once pacsim is fixed)


@pytest.mark.xfail(
    strict=True,
    reason="_sample_forward's ReLU `s if s > 0 else 0` maps a NaN pre-activation to 0, so the "
    "kernels return a finite loss for non-finite weights while forward() returns NaN",
)
def test_loss_and_grad_non_finite_weights_give_non_finite_loss(rng):
    p, X, Y = _problem(rng, 5, 4, 3, 2)
    p.W[0, 0] = np.nan
    assert not np.isfinite(rnn.forward(p, X, LAM)).all()  # forward propagates the NaN
    loss, _ = rnn.loss_and_grad(p, X, Y, LAM)
    assert not np.isfinite(loss)


@pytest.mark.xfail(
    strict=True,
    reason="same NaN-masking ReLU: sgd_chunk keeps stepping on weights that hold Inf/NaN",
)
def test_sgd_chunk_non_finite_weights_stop_the_chunk(rng):
    p, X, Y = _problem(rng, 5, 4, 3, 2)
    p.W[0, 0] = np.inf
    n_steps, _ = rnn.sgd_chunk(p, X, Y, 0.01, LAM)
    assert n_steps == 0
