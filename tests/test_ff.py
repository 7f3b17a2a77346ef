"""The feed-forward networks (:mod:`pacsim.models.ff`) and their learners.

* forward, loss_and_grad and sgd_chunk of every architecture agree with the plain-NumPy twins
  of :mod:`naive_ff` (float64 tightly, float32 loosely), and the gradients of every array agree
  with central finite differences;
* a diverging SGD chunk stops at the first non-finite loss without applying that step, and NaN
  weights give a NaN loss (the ReLU does not mask NaN);
* the wrappers reject arrays that do not fit;
* every initialisation preset has its documented variances and initial hidden/output norms;
* ntk_trace equals the one-hot gradient trace, and its initial mean the closed form (mlp2);
* the learners read vector and (concatenated) sequence concepts, run through
  :func:`pacsim.train.run` (both optimisers), and compete with the RNN in one sweep.

Shapes are tiny (``m <= 33``) except in the statistical tests; every test is seeded by the
``rng`` fixture of ``conftest.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import naive_ff as naive
import numpy as np
import numpy.testing as npt
import pandas as pd
import pytest

from pacsim import concepts, learners, train
from pacsim.concepts import azl
from pacsim.config import RunSpec, parse_sweep
from pacsim.models import ff
from pacsim.sweep import run_sweep

ARCHS = ff.ARCHS

#: (m, d_in, d_out): hidden width, input and output dimension.
SHAPES = [(1, 2, 1), (5, 3, 2), (16, 7, 3), (33, 9, 4)]
SHAPE_IDS = [f"m{m}-din{d_in}-dout{d_out}" for m, d_in, d_out in SHAPES]

#: Samples per batch in the comparison tests.
N = 8

#: Relative tolerance (to the largest entry of the reference) per dtype: the jitted nets
#: (fast-math, reassociated sums) against the float64 twin, three layers of sums of <= 33 O(1)
#: terms forward and back: ~1e-14 of the scale in float64; float32 (unit roundoff 6e-8) with
#: the same accumulation stays below ~1e-5. Relative to the scale, not each entry, since entries
#: cancel (tests/tolerance.py); SGD chunks get 10x for the 12 steps compounded.
RTOL = {np.float64: 1e-12, np.float32: 1e-4}

#: Every array trained, at different rates, so that a misplaced rate shows.
ALL_RATES = ff.Rates(W=1.0, b1=0.5, V=2.0, b2=1.5, A=0.7)


@pytest.fixture(scope="module", autouse=True)
def _warm_ff_kernels():
    ff.warmup(("float64", "float32"))


# Helpers


def _problem(rng, arch, m, d_in, d_out, n=N, dtype=np.float64, init=None):
    """Initialised weights and Gaussian inputs/labels, all in ``dtype``.

    Inputs have scale ``sqrt(m)`` so that the MLPs' O(1/sqrt(m)) pre-activations are O(1) and
    every layer's ReLU sees both signs.
    """
    p = ff.init_params(arch, m, d_in, d_out, rng, dtype, init=init)
    X = (rng.standard_normal((n, d_in)) * np.sqrt(max(m, 4))).astype(dtype)
    Y = rng.standard_normal((n, d_out)).astype(dtype)
    return p, X, Y


def _weights(p):
    """The arrays of ``p`` as the dict the twins take."""
    return {n: getattr(p, n) for n in ff.NAMES if getattr(p, n) is not None}


def _with(p, name, a):
    """``p`` with array ``name`` replaced by ``a``."""
    w = {n: getattr(p, n) for n in ff.NAMES}
    w[name] = np.ascontiguousarray(a, dtype=p.dtype)
    return ff.FFParams(arch=p.arch, **w)


def _assert_relus_mixed(p, X):
    """Every hidden layer has active and inactive units on these data (m > 1)."""
    _, fs = naive.forward(p.arch, _weights(p), X)
    for h in ("h1", "h2") if p.arch != "mlp2" else ("h1",):
        H = np.array([f[h] for f in fs])
        assert (H > 0).any() and (H == 0).any(), h


def _assert_close(actual, desired, rtol):
    """``actual == desired`` up to ``rtol`` relative to the largest entry of ``desired``."""
    desired = np.asarray(desired, dtype=np.float64)
    npt.assert_allclose(actual, desired, rtol=rtol, atol=rtol * np.abs(desired).max())


def _rate_dict(rates):
    return dict(zip(ff.NAMES, rates, strict=True))


# forward and loss_and_grad


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("m", "d_in", "d_out"), SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("arch", ARCHS)
def test_forward_matches_naive(rng, arch, m, d_in, d_out, dtype):
    p, X, _ = _problem(rng, arch, m, d_in, d_out, dtype=dtype)
    if m > 1:
        _assert_relus_mixed(p, X)
    Yhat = ff.forward(p, X)
    assert Yhat.shape == (N, d_out) and Yhat.dtype == dtype
    ref, _ = naive.forward(arch, _weights(p), X)  # float64, from the same weights
    _assert_close(Yhat, ref, RTOL[dtype])


@pytest.mark.parametrize("path", ["samples", "batched"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("m", "d_in", "d_out"), SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("arch", ARCHS)
def test_loss_and_grad_matches_naive(rng, arch, m, d_in, d_out, dtype, path):
    p, X, Y = _problem(rng, arch, m, d_in, d_out, dtype=dtype)
    loss, g = ff.loss_and_grad(p, X, Y, path=path)
    ref_loss, ref_g = naive.loss_and_grad(arch, _weights(p), X, Y)
    npt.assert_allclose(loss, ref_loss, rtol=RTOL[dtype])  # a sum of squares: no cancellation
    assert (g.V is None) == (g.b2 is None) == (arch == "mlp2")
    for name, ref in ref_g.items():
        got = getattr(g, name)
        assert got.shape == ref.shape and got.dtype == dtype, name
        if m > 4:
            assert np.abs(ref).max() > 0, name
        _assert_close(got, ref, RTOL[dtype])


@pytest.mark.parametrize("path", ["samples", "batched"])
@pytest.mark.parametrize("arch", ARCHS)
def test_loss_and_grad_matches_finite_differences(rng, arch, path):
    """Every array's gradient (trained or not) is the derivative of the wrapper's loss."""
    p, X, Y = _problem(rng, arch, 6, 3, 2, n=4)
    _assert_relus_mixed(p, X)
    _, g = ff.loss_and_grad(p, X, Y, path=path)
    for name in _weights(p):
        fd = naive.finite_difference_grad(
            lambda a, name=name: ff.loss_and_grad(_with(p, name, a), X, Y, path=path)[0],
            getattr(p, name), 1e-6)
        # central differences, h = 1e-6: truncation ~h^2 and rounding ~eps |loss| / h ~ 2e-10 of
        # the scale (no ReLU kink within h at these seeds); 1e-6 of max |gradient|
        _assert_close(getattr(g, name), fd, 1e-6)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("arch", ARCHS)
def test_batched_path_matches_the_per_sample_kernel(rng, arch, dtype):
    """The momentum preset's shape (a batch of 50, a wider net): the BLAS path and the jitted
    per-sample path agree, and ``path="auto"`` takes the per-sample kernel below BATCH_MIN
    (bit for bit) and the batched path from it on.

    Tolerance: each gradient entry sums 50 samples of products over at most 70 terms, in a
    different order on the two paths: rounding ~1e-14 (float64) / ~1e-5 (float32) relative
    to the largest entry."""
    p, X, Y = _problem(rng, arch, 70, 12, 5, n=50, dtype=dtype)
    _assert_relus_mixed(p, X)
    rtol = {np.float64: 1e-12, np.float32: 1e-4}[dtype]
    loss_s, g_s = ff.loss_and_grad(p, X, Y, path="samples")
    for n, path in ((ff.BATCH_MIN - 1, "samples"), (ff.BATCH_MIN, "batched"), (50, "batched")):
        loss_a, g_a = ff.loss_and_grad(p, X[:n], Y[:n])
        loss_p, g_p = ff.loss_and_grad(p, X[:n], Y[:n], path=path)
        assert loss_a == loss_p
        for a, b in zip(g_a, g_p, strict=True):
            npt.assert_array_equal(a, b)
    npt.assert_allclose(loss_p, loss_s, rtol=rtol)
    for name, got, ref in zip(ff.NAMES, g_p, g_s, strict=True):
        if ref is None:
            assert got is None
            continue
        assert got.dtype == dtype and got.shape == ref.shape and got.flags.c_contiguous, name
        _assert_close(got, ref, rtol)


def test_loss_and_grad_rejects_an_unknown_path(rng):
    p, X, Y = _problem(rng, "mlp2", 4, 3, 2, n=3)
    with pytest.raises(ValueError, match="path must be one of"):
        ff.loss_and_grad(p, X, Y, path="blas")


@pytest.mark.parametrize("arch", ARCHS)
def test_naive_loss_and_grad_matches_finite_differences(rng, arch):
    """The reference itself: its backpropagated gradient is the derivative of its loss."""
    p, X, Y = _problem(rng, arch, 5, 3, 2, n=3)
    w = _weights(p)
    _, g = naive.loss_and_grad(arch, w, X, Y)
    for name in w:
        fd = naive.finite_difference_grad(
            lambda a, name=name: naive.loss_and_grad(arch, {**w, name: a}, X, Y)[0], w[name], 1e-6)
        _assert_close(g[name], fd, 1e-6)


def test_resnet_skip_path_and_shared_output_weights(rng):
    """With V = 0 and b2 = 0 the second block outputs A ReLU(0) = 0: the ResNet is mlp2."""
    p, X, Y = _problem(rng, "resnet", 7, 4, 3)
    p.V[:] = 0
    p.b2[:] = 0
    two = ff.FFParams(arch="mlp2", W=p.W, b1=p.b1, A=p.A)
    # two architectures' code paths on the same arithmetic (the ResNet adds exact zeros):
    # rounding relative to the scale, outputs can cancel
    _assert_close(ff.forward(p, X), ff.forward(two, X), 1e-12)
    _, g = ff.loss_and_grad(p, X, Y)
    _, g2 = ff.loss_and_grad(two, X, Y)
    _assert_close(g.W, g2.W, 1e-12)


# sgd_chunk


def _order_with_repeats(rng, n):
    """Every sample once in a shuffled order, then ``n`` more draws with replacement."""
    order = np.concatenate([rng.permutation(n), rng.integers(0, n, size=n)])
    assert len(np.unique(order)) < len(order)
    return order


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("rates", [None, ALL_RATES], ids=["default-rates", "all-rates"])
@pytest.mark.parametrize("arch", ARCHS)
def test_sgd_chunk_matches_naive(rng, arch, rates, dtype):
    p, X, Y = _problem(rng, arch, 9, 4, 3, n=6, dtype=dtype)
    order = _order_with_repeats(rng, 6)
    eta = 0.02 / 9
    w0 = {n: a.copy() for n, a in _weights(p).items()}
    n_steps, losses = ff.sgd_chunk(p, X, Y, eta, order, rates)
    r = _rate_dict(ff.default_rates() if rates is None else rates)
    ref_w, ref_losses = naive.sgd(arch, w0, X, Y, eta, r, order)
    assert n_steps == len(order)
    assert losses.shape == (len(order),) and losses.dtype == np.float64
    assert p.dtype == dtype
    _assert_close(losses, ref_losses, RTOL[dtype] * 10)
    for name, ref in ref_w.items():
        moved = np.abs(ref - w0[name]).max()
        assert (moved > 1e-4 * np.abs(w0[name]).max()) == (r[name] != 0), name  # fixed iff rate 0
        _assert_close(getattr(p, name), ref, RTOL[dtype] * 10)


def test_sgd_chunk_default_order_is_one_pass(rng):
    p, X, Y = _problem(rng, "mlp3", 5, 3, 2, n=5)
    w0 = {n: a.copy() for n, a in _weights(p).items()}
    n_steps, losses = ff.sgd_chunk(p, X, Y, 0.01)
    ref_w, ref_losses = naive.sgd("mlp3", w0, X, Y, 0.01, _rate_dict(ff.default_rates()), range(5))
    assert n_steps == 5
    _assert_close(losses, ref_losses, 1e-12)
    _assert_close(p.W, ref_w["W"], 1e-12)


@pytest.mark.parametrize("arch", ARCHS)
def test_sgd_chunk_divergence_stops_before_the_bad_step(rng, arch):
    p, X, Y = _problem(rng, arch, 5, 3, 2, n=6)
    order = _order_with_repeats(rng, 6)
    eta = 1e150  # overflows the loss within a few steps (a merely large eta may kill every ReLU)
    w0 = {n: a.copy() for n, a in _weights(p).items()}
    n_steps, losses = ff.sgd_chunk(p, X, Y, eta, order, ALL_RATES)
    assert 0 < n_steps < len(order), n_steps
    assert not np.isfinite(losses[n_steps]) and np.isfinite(losses[:n_steps]).all()
    # the weights are those of exactly n_steps naive steps: the divergent step was not applied
    r = _rate_dict(ALL_RATES)
    with np.errstate(over="ignore", invalid="ignore"):
        ref_w, ref_losses = naive.sgd(arch, w0, X, Y, eta, r, order[:n_steps])
        k = order[n_steps]
        next_loss, _ = naive.loss_and_grad(arch, ref_w, X[k:k + 1], Y[k:k + 1])
    assert not np.isfinite(next_loss)  # the reference agrees that this step diverges
    # a few steps, each multiplicative in the weights (relative rounding stays ~1e-15 a step,
    # whatever eta): 1e-10 of the scale
    _assert_close(losses[:n_steps], ref_losses, 1e-10)
    for name, ref in ref_w.items():  # (an update with a finite loss may overflow a weight)
        got = getattr(p, name)
        npt.assert_array_equal(np.isfinite(got), np.isfinite(ref))
        _assert_close(got[np.isfinite(ref)], ref[np.isfinite(ref)], 1e-10)


@pytest.mark.parametrize("path", ["samples", "batched"])
@pytest.mark.parametrize(("where", "bad"), [("W", np.nan), ("A", np.nan), ("A", np.inf)])
@pytest.mark.parametrize("arch", ARCHS)
def test_non_finite_weights_give_non_finite_loss_and_stop_the_chunk(rng, arch, where, bad,
                                                                      path):
    """The ReLU propagates NaN (``s if not (s <= 0) else 0``): nothing is masked.

    (An infinite first-layer weight is not tested: ``ReLU(-inf) = 0`` is a finite network.)
    """
    p, X, Y = _problem(rng, arch, 5, 3, 2)
    getattr(p, where)[:, 0] = bad  # every unit / output, so no ReLU can hide it
    with np.errstate(invalid="ignore", over="ignore"):
        assert not np.isfinite(ff.forward(p, X)).all()
        assert not np.isfinite(ff.loss_and_grad(p, X, Y, path=path)[0])
        assert not np.isfinite(ff.ntk_trace(p, X)).all()
    n_steps, losses = ff.sgd_chunk(p, X, Y, 0.01)
    assert n_steps == 0 and not np.isfinite(losses[0])


# Wrapper validation


def _valid(rng, arch="mlp3"):
    return _problem(rng, arch, 4, 3, 2, n=3)


@pytest.mark.parametrize(
    ("arch", "change"),
    [
        pytest.param("mlp3", lambda w: {**w, "V": w["V"][:, :3].copy()}, id="mlp3-V-not-square"),
        pytest.param("resnet", lambda w: {**w, "V": w["V"][:, :1].copy()}, id="resnet-V-not-d_out"),
        pytest.param("mlp2", lambda w: {**w, "V": np.zeros((4, 4))}, id="mlp2-with-V"),
        pytest.param("mlp3", lambda w: {**w, "b2": None}, id="mlp3-without-b2"),
        pytest.param("mlp2", lambda w: {**w, "A": w["A"][:, :3].copy()}, id="A-wrong-m"),
        pytest.param("mlp2", lambda w: {**w, "b1": w["b1"][:3].copy()}, id="b1-wrong-m"),
        pytest.param("mlp2", lambda w: {**w, "b1": w["b1"][None]}, id="b1-2d"),
        pytest.param("mlp2", lambda w: {**w, "W": w["W"][None]}, id="W-3d"),
        pytest.param("mlp2", lambda w: {**w, "A": w["A"].astype(np.float32)}, id="mixed-dtypes"),
        pytest.param("mlp2", lambda w: {**w, "W": w["W"].astype(np.int64)}, id="int-dtype"),
        pytest.param("mlp2", lambda w: {**w, "W": np.asfortranarray(w["W"])}, id="not-c-contig"),
        pytest.param("mlp2", lambda w: {**w, "W": w["W"].tolist()}, id="not-ndarray"),
    ],
)
def test_ffparams_rejects_bad_arrays(rng, arch, change):
    p, _, _ = _valid(rng, arch)
    with pytest.raises(ValueError):
        ff.FFParams(arch=arch, **change({n: getattr(p, n) for n in ff.NAMES}))


def test_ffparams_rejects_unknown_arch(rng):
    p, _, _ = _valid(rng, "mlp2")
    with pytest.raises(ValueError, match="arch"):
        ff.FFParams(arch="cnn", W=p.W, b1=p.b1, A=p.A)


#: Calls whose arrays do not fit the problem of ``_valid`` (mlp3, m=4, d_in=3, d_out=2, n=3).
BAD_CALLS = {
    "forward-X-wrong-d_in": lambda p, X, Y: ff.forward(p, X[:, :2]),
    "forward-X-1d": lambda p, X, Y: ff.forward(p, X[0]),
    "grad-Y-wrong-d_out": lambda p, X, Y: ff.loss_and_grad(p, X, Y[:, :1]),
    "grad-Y-wrong-n": lambda p, X, Y: ff.loss_and_grad(p, X, Y[:2]),
    "sgd-Y-wrong-d_out": lambda p, X, Y: ff.sgd_chunk(p, X, Y[:, :1], 0.1),
    "sgd-order-too-big": lambda p, X, Y: ff.sgd_chunk(p, X, Y, 0.1, order=[0, 3]),
    "sgd-order-negative": lambda p, X, Y: ff.sgd_chunk(p, X, Y, 0.1, order=[-1, 0]),
    "sgd-rates-negative": lambda p, X, Y: ff.sgd_chunk(p, X, Y, 0.1, rates=ff.Rates(W=-1.0)),
    "sgd-rates-nan": lambda p, X, Y: ff.sgd_chunk(p, X, Y, 0.1, rates=ff.Rates(V=np.nan)),
    "sgd-rates-short": lambda p, X, Y: ff.sgd_chunk(p, X, Y, 0.1, rates=(1.0, 1.0)),
    "trace-X-wrong-d_in": lambda p, X, Y: ff.ntk_trace(p, X[:, :2]),
}


@pytest.mark.parametrize("call", BAD_CALLS.values(), ids=BAD_CALLS.keys())
def test_wrappers_reject_arrays_that_do_not_fit(rng, call):
    p, X, Y = _valid(rng)
    w0 = {n: a.copy() for n, a in _weights(p).items()}
    with pytest.raises(ValueError):
        call(p, X, Y)
    for name, a in w0.items():  # a rejected call leaves the weights alone
        npt.assert_array_equal(getattr(p, name), a)


# Initialisation presets

#: (arch, init, std of W, b1, V, b2, A at m, d_in): the documented presets (ff.init_std).
PRESETS = [
    ("resnet", "theory", lambda m, d_in: (m**-0.25, m**-0.25, m**-0.5, m**-0.5, m**-0.5)),
    ("resnet", "experiment", lambda m, d_in: (d_in**-0.5, d_in**-0.5, m**-0.5, m**-0.5, m**-0.5)),
    ("mlp2", "azll", lambda m, d_in: (m**-0.5, m**-0.5, None, None, 1.0)),
    ("mlp3", "azll", lambda m, d_in: (m**-0.5, m**-0.5, m**-0.5, m**-0.5, 1.0)),
    ("mlp2", "experiment", lambda m, d_in: (d_in**-0.5, d_in**-0.5, None, None, m**-0.5)),
    ("mlp3", "experiment", lambda m, d_in: (d_in**-0.5, d_in**-0.5, m**-0.5, m**-0.5, m**-0.5)),
]


@pytest.mark.parametrize(("arch", "init", "stds"), PRESETS, ids=[f"{a}-{i}" for a, i, _ in PRESETS])
def test_init_params_variances(rng, arch, init, stds):
    m, d_in, d_out = 300, 30, 8
    p = ff.init_params(arch, m, d_in, d_out, rng, init=init)
    assert (p.m, p.d_in, p.d_out, p.dtype) == (m, d_in, d_out, np.float64)
    for name, std in zip(ff.NAMES, stds(m, d_in), strict=True):
        a = getattr(p, name)
        assert (a is None) == (std is None), name
        if a is None:
            continue
        var, n = std**2, a.size
        # 5 standard errors of the sample mean and of the sample variance of a Gaussian
        assert abs(a.mean()) < 5 * np.sqrt(var / n), name
        assert abs(a.var() / var - 1.0) < 5 * np.sqrt(2.0 / n), name


def test_init_params_eps_a_and_bad_presets(rng):
    p = ff.init_params("mlp2", 400, 3, 20, rng, eps_a=0.1)
    assert abs(p.A.std() / 0.1 - 1) < 0.05
    with pytest.raises(ValueError, match="init"):
        ff.init_params("mlp2", 4, 3, 2, rng, init="theory")
    with pytest.raises(ValueError, match="init"):
        ff.init_params("resnet", 4, 3, 2, rng, init="azll")
    with pytest.raises(ValueError, match="eps_a"):
        ff.init_params("resnet", 4, 3, 2, rng, eps_a=0.5)


@pytest.mark.parametrize("arch", ARCHS)
def test_init_params_draw_order_and_dtypes(arch):
    """W, b1, V, b2, A are drawn in that order in float64, then cast (bit-exact: the same draws
    times the same factors)."""
    m, d_in, d_out = 7, 3, 2
    p64 = ff.init_params(arch, m, d_in, d_out, np.random.default_rng(5), np.float64)
    p32 = ff.init_params(arch, m, d_in, d_out, np.random.default_rng(5), np.float32)
    r = np.random.default_rng(5)
    std = ff.init_std(arch, m, d_in)
    shapes = {"W": (m, d_in), "b1": (m,), "V": (m, m if arch == "mlp3" else d_out), "b2": (m,),
              "A": (d_out, m)}
    for name in _weights(p64):
        npt.assert_array_equal(getattr(p64, name), r.standard_normal(shapes[name]) * std[name])
        npt.assert_array_equal(getattr(p32, name), getattr(p64, name).astype(np.float32))


def _init_norms(arch, init, m, d_in, d_out, x, rng, n_inits):
    """Squared norms of the intermediates of one input over ``n_inits`` initialisations."""
    rows = []
    for _ in range(n_inits):
        p = ff.init_params(arch, m, d_in, d_out, rng, init=init)
        f = naive.sample_forward(arch, _weights(p), x)
        rows.append({k: float(v @ v) for k, v in f.items()})
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("arch", "init"), [(a, i) for a, i, _ in PRESETS],
                         ids=[f"{a}-{i}" for a, i, _ in PRESETS])
def test_init_preset_initial_statistics(rng, arch, init):
    """The documented initial norms (docs/learners.md), for one input with ``q = ||x||^2``.

    ``s_W`` is the std of W and b1: ``E||h1||^2 = m s_W^2 (q + 1) / 2``. ResNet:
    ``E||out1||^2 = d_out E||h1||^2 / m`` and ``E[||h2||^2 | out1] = (||out1||^2 + 1) / 2``.
    MLPs: ``E[||h2||^2 | h1] = (||h1||^2 + 1) / 2`` (mlp3) and
    ``E[||out||^2 | h_top] = d_out s_A^2 ||h_top||^2`` (``s_A`` = eps_a or eps_a / sqrt(m)). Averaged over 60 inits (m = 256);
    the conditional ones are averaged as ratios.
    """
    m, d_in, d_out = 256, 30, 8
    x = rng.choice([-1.0, 1.0], size=d_in)  # AZL's experiment inputs: q = d_in
    q = d_in
    s_w = ff.init_std(arch, m, d_in, init)["W"]
    # Monte Carlo over 60 inits at m = 256: each squared norm scatters by ~10-20% per init
    # (a chi-square of m or d_out = 8 degrees of freedom), so the means are within ~2-3% (5%
    # tolerance) and the d_out = 8 ones within ~5% (10%); fixed seed
    df = _init_norms(arch, init, m, d_in, d_out, x, rng, 60)
    npt.assert_allclose(df["h1"].mean(), m * s_w**2 * (q + 1) / 2, rtol=0.05)
    if arch == "resnet":
        npt.assert_allclose(df["o1"].mean(), d_out * s_w**2 * (q + 1) / 2, rtol=0.1)
        npt.assert_allclose((df["h2"] / ((df["o1"] + 1) / 2)).mean(), 1.0, rtol=0.05)
    else:
        top = "h1" if arch == "mlp2" else "h2"
        if arch == "mlp3":
            npt.assert_allclose((df["h2"] / ((df["h1"] + 1) / 2)).mean(), 1.0, rtol=0.05)
        s_a = ff.init_std(arch, m, d_in, init)["A"]
        npt.assert_allclose((df["out"] / (d_out * s_a**2 * df[top])).mean(), 1.0, rtol=0.1)


def test_resnet_theory_init_starts_small_and_experiment_init_order_one(rng):
    """Theory: ||out1||^2 ~ d_out m^(-1/2) (q+1)/2 shrinks with m; experiment: O(d_out)."""
    d_in, d_out = 30, 8
    x = rng.choice([-1.0, 1.0], size=d_in)
    theory = [_init_norms("resnet", "theory", m, d_in, d_out, x, rng, 20)["o1"].mean()
              for m in (64, 1024)]
    assert 2.5 < theory[0] / theory[1] < 6.5  # sqrt(1024 / 64) = 4
    exp = _init_norms("resnet", "experiment", 1024, d_in, d_out, x, rng, 20)["o1"].mean()
    assert 0.6 * d_out / 2 < exp < 1.6 * d_out / 2  # d_out (q + 1) / (2 d_in), q = d_in


# ntk_trace


@pytest.mark.parametrize("rates", [None, ALL_RATES], ids=["default-rates", "all-rates"])
@pytest.mark.parametrize("arch", ARCHS)
def test_ntk_trace_matches_one_hot_gradients(rng, arch, rates):
    p, X, _ = _problem(rng, arch, 9, 4, 3, n=4)
    r = _rate_dict(ff.default_rates() if rates is None else rates)
    T = ff.ntk_trace(p, X, rates)
    assert T.shape == (4,) and T.dtype == np.float64
    # sums of squared gradients (positive), jitted against the twin: rounding ~1e-14
    npt.assert_allclose(T, [naive.ntk_trace(arch, _weights(p), x, r) for x in X], rtol=1e-11)


def test_ntk_trace_mlp2_closed_form_at_init(rng):
    """mlp2, W and b1 trained: ``E T(x) = d_out (m/2) eps_a^2 (||x||^2 + 1)`` over the init."""
    m, d_in, d_out, eps_a = 128, 6, 3, 0.5
    X = rng.standard_normal((2, d_in))
    T = np.mean([ff.ntk_trace(ff.init_params("mlp2", m, d_in, d_out, rng, eps_a=eps_a), X)
                 for _ in range(50)], axis=0)
    # mean over 50 inits of a sum over m = 128 units: relative sd ~ sqrt(2 / m) / sqrt(50) = 2%
    npt.assert_allclose(T, d_out * m / 2 * eps_a**2 * (np.sum(X**2, axis=1) + 1), rtol=0.05)


# Learners


@dataclass(frozen=True)
class TinyVectorConcept:
    """A vector concept after :mod:`pacsim.concepts.base`: x uniform on the sphere S^{d_in-1},
    ``y = sin(2 W* x)`` with unit rows ``W*`` (d, d_in)."""

    w: np.ndarray
    family = "tiny"
    kind = "vector"
    positions = None

    def sample(self, n, rng):
        X = rng.standard_normal((n, self.w.shape[1]))
        X /= np.linalg.norm(X, axis=1, keepdims=True)
        return X, np.sin(2.0 * X @ self.w.T)

    @property
    def d(self):  # output dimension (the Concept protocol)
        return self.w.shape[0]

    def info(self):
        return {"d_in": self.w.shape[1]}


def _tiny_vector(rng, d_in=5, d=2):
    w = rng.standard_normal((d, d_in))
    return TinyVectorConcept(w / np.linalg.norm(w, axis=1, keepdims=True))


KINDS = {"resnet": {"init": "experiment", "lr_ratio_v": 0.5},
         "mlp2": {"train_output": True}, "mlp3": {"train_bias": False}}


def _cfg(kind, **over):
    return learners.LEARNERS[kind].Config(kind=kind, **{"m": 16, **KINDS[kind], **over})


@pytest.mark.parametrize("sequence", [True, False], ids=["sequence", "vector"])
@pytest.mark.parametrize("kind", KINDS)
def test_learner_shapes_step_size_and_sgd(rng, kind, sequence):
    concept = azl.sample(rng, L=5, d_x=3, d=2) if sequence else _tiny_vector(rng)
    S, d = (3, 2) if sequence else (1, 2)
    cfg = _cfg(kind)
    learner = learners.make(cfg, concept, np.random.default_rng(7))
    X, Y = concept.sample(10, rng)
    inputs = learner.encode(X)
    assert inputs.shape == (10, 4 * 3 if sequence else 5)
    if sequence:  # the concatenation of the tokens at positions 1..L-1
        npt.assert_array_equal(inputs[3], X[3, 1:].ravel())
    p = learner.params
    assert (p.arch, p.m, p.d_out) == (kind, 16, S * d)
    # the probe samples come from a spawned generator: the weights are init_params' own draws
    ref = ff.init_params(kind, 16, inputs.shape[1], S * d, np.random.default_rng(7),
                         init=getattr(cfg, "init", None), eps_a=getattr(cfg, "eps_a", 1.0))
    for name in _weights(p):  # exact: the same draws
        npt.assert_array_equal(getattr(p, name), getattr(ref, name))
    Yhat = learner.predict(inputs)
    assert Yhat.shape == (10, S, d) and Yhat.dtype == np.float64
    _assert_close(Yhat.reshape(10, -1), ff.forward(p, inputs), 1e-12)  # the same forward pass
    assert learner.step_size(0.3, "raw") == 0.3
    npt.assert_allclose(learner.step_size(0.3, "ntk"), 0.3 / learner.info()["ntk_trace"])
    # one chunk: the learner's SGD is ff.sgd_chunk on the scored labels, flattened
    twin = p.copy()
    targets = concepts.scored(concept, Y).reshape(10, -1)
    n_steps, losses = learner.sgd_chunk(inputs, Y, 0.01, None)
    ref_steps, ref_losses = ff.sgd_chunk(twin, inputs, targets, 0.01, None, learner.rates)
    assert n_steps == ref_steps == 10
    # bit-exact: the learner's chunk is this very call on the same arrays
    npt.assert_array_equal(losses, ref_losses)
    for name in _weights(p):
        npt.assert_array_equal(getattr(p, name), getattr(twin, name))


def test_learner_rates_follow_the_config(rng):
    concept = _tiny_vector(rng)
    res = learners.make(_cfg("resnet"), concept, rng)
    assert res.rates == ff.Rates(W=1.0, b1=1.0, V=0.5, b2=0.5, A=0.0)
    p = res.params
    assert all(a is b for a, b in zip(res.trained(), [p.W, p.b1, p.V, p.b2], strict=True))
    X, Y = concept.sample(6, rng)
    loss, grads = res.batch_grad(res.encode(X), Y)
    ref_loss, g = ff.loss_and_grad(res.params, res.encode(X), Y)
    assert loss == ref_loss
    for got, want in zip(grads, [g.W, g.b1, 0.5 * g.V, 0.5 * g.b2], strict=True):
        npt.assert_array_equal(got, want)  # exact: a rate of 1 or 0.5 scales without rounding
    mlp2 = learners.make(_cfg("mlp2"), concept, rng)
    assert mlp2.rates == ff.Rates(W=1.0, b1=1.0, V=1.0, b2=1.0, A=1.0)
    assert [a.shape for a in mlp2.trained()] == [(16, 5), (16,), (2, 16)]
    mlp3 = learners.make(_cfg("mlp3"), concept, rng)
    assert [a.shape for a in mlp3.trained()] == [(16, 5), (16, 16)]  # biases fixed


@pytest.mark.parametrize("kind", KINDS)
def test_train_run_online_on_the_azl_sequence_concept(kind):
    spec = RunSpec.model_validate({"concept": {"L": 4, "d_x": 3},
                                   "model": {"kind": kind, "m": 32},
                                   "train": {"n_test": 100}})
    res = train.run(spec, seed=0, lr=1.0, checkpoints=[16, 256, 2048])
    assert res.status == "ok" and [r["n"] for r in res.rows] == [16, 256, 2048]
    errs = [r["test_nmse"] for r in res.rows]
    assert errs[-1] < 0.5 * errs[0], errs
    assert res.info["learner_info.ntk_trace"] > 0
    npt.assert_allclose(res.eta, 1.0 / res.info["learner_info.ntk_trace"])


@pytest.mark.parametrize("kind", KINDS)
def test_train_run_on_a_vector_concept(monkeypatch, kind):
    """Online vanilla SGD and the momentum preset, on the tiny vector concept."""
    monkeypatch.setattr(concepts, "make", lambda cfg, rng: _tiny_vector(rng))
    model = {"kind": kind, "m": 32, **KINDS[kind]}
    spec = RunSpec.model_validate({"model": model, "train": {"n_test": 100}})
    res = train.run(spec, seed=1, lr=1.0, checkpoints=[16, 1024])
    assert res.status == "ok" and res.info["concept_info.d_in"] == 5
    assert res.rows[-1]["test_nmse"] < 0.5 * res.rows[0]["test_nmse"]
    mom = RunSpec.model_validate({"model": model, "train": {
        "n_test": 100, "protocol": "finite", "optimizer": "momentum", "epochs": 40, "batch": 8}})
    res = train.run(mom, seed=1, lr=1.0, checkpoints=[64])
    assert res.status == "ok" and res.rows[0]["test_nmse"] < 0.5


@pytest.mark.parametrize(("family", "kind"),
                         [("resnet-parity", "resnet"), ("azll-exp", "mlp2"), ("azll-exp", "mlp3")])
def test_train_run_on_the_papers_vector_targets(family, kind):
    assert family in concepts.FAMILIES
    spec = RunSpec.model_validate({"concept": {"family": family},
                                   "model": {"kind": kind, "m": 32}, "train": {"n_test": 200}})
    res = train.run(spec, seed=0, lr=1.0, checkpoints=[64, 2048])
    assert res.status == "ok"
    assert res.rows[-1]["test_nmse"] < res.rows[0]["test_nmse"]


def test_resnet_theorem_lr_ratio(rng):
    """``lr_ratio_v = "theorem"``: (alpha p_G C_s(G) / (p_F C_s(F)))^2 of a Concept-1 target."""
    ccfg = concepts.FAMILIES["resnet"].Config(d_in=6, d=2, p_F=2, p_G=3, links_G=("z3",))
    concept = concepts.make(ccfg, rng)
    info = concept.info()
    c_ratio = 10.0 ** (info["G_log10_C_s_shape"] - info["F_log10_C_s_shape"])
    expected = (ccfg.alpha * 3 * c_ratio / 2) ** 2
    learner = learners.make(_cfg("resnet", lr_ratio_v="theorem"), concept, rng)
    npt.assert_allclose([learner.rates.V, learner.rates.b2], expected, rtol=1e-12)
    assert learner.rates.W == learner.rates.b1 == 1.0
    assert learner.info()["lr_ratio_v"] == learner.rates.V
    with pytest.raises(learners.LearnerError, match="theorem"):
        learners.make(_cfg("resnet", lr_ratio_v="theorem"), _tiny_vector(rng), rng)


def test_configs_reject_keys_of_other_kinds():
    with pytest.raises(ValueError):
        learners.LEARNERS["mlp2"].Config(init="theory")
    with pytest.raises(ValueError):
        learners.LEARNERS["resnet"].Config(lr_ratio_v="fast")
    with pytest.raises(ValueError):
        learners.LEARNERS["mlp3"].Config(m="8")


def test_train_run_divergence_is_recorded(monkeypatch):
    spec = RunSpec.model_validate({"concept": {"L": 4, "d_x": 3},
                                   "model": {"kind": "mlp3", "m": 8}, "train": {"n_test": 50}})
    res = train.run(spec, seed=0, lr=1e120, checkpoints=[64])
    assert res.status == "diverged" and res.diverged_step is not None


def test_sweep_compares_rnn_and_mlp2_on_the_same_data(tmp_path):
    """``[[grid.model]]`` tables: one cell per learner; the same target and test set per seed."""
    cfg = parse_sweep({
        "name": "rnn-vs-mlp2",
        "seeds": [0, 1],
        "base": {"concept": {"L": 4, "d_x": 3},
                 "model": {"m": 16, "eps_x": 0.5},
                 "train": {"lr": 1.0, "n_test": 60}},
        "grid": {"model": [{"kind": "rnn"}, {"kind": "mlp2", "m": 32}]},
        "target": {"eps": 0.9, "n_min": 8, "n_max": 256, "points_per_doubling": 1,
                   "n_boot": 100},
    })
    outcome = run_sweep(cfg, out=tmp_path, workers=1, progress=False)
    assert outcome.n_failed == 0 and outcome.n_cells == 2, outcome.failures
    res = pd.read_parquet(tmp_path / "rnn-vs-mlp2" / "results.parquet")
    assert set(res["model.kind"]) == {"rnn", "mlp2"}
    assert set(res.loc[res["model.kind"] == "mlp2", "model.m"]) == {32}
    assert set(res.loc[res["model.kind"] == "rnn", "model.eps_x"]) == {0.5}
    per_seed = res.groupby(["seed", "model.kind"])["test_label_var"].first().unstack()
    npt.assert_array_equal(per_seed["rnn"], per_seed["mlp2"])  # the same test set
    sc = pd.read_parquet(tmp_path / "rnn-vs-mlp2" / "sample_complexity.parquet")
    assert len(sc) == 2
