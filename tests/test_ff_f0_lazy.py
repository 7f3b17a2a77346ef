"""The feed-forward SGD learners' f0 options and laziness diagnostics (issue 14, items 2, 5)."""

import math

import numpy as np
import numpy.testing as npt
import pytest

from pacsim import concepts, learners
from pacsim.learners import LEARNERS
from pacsim.models import ff, ff_sym

MODULES = {kind: LEARNERS[kind] for kind in ("mlp2", "mlp3", "resnet")}


def _concept(family="azll2", **kw):
    return concepts.make(concepts.FAMILIES[family].Config(**kw), np.random.default_rng(0))


def _learner(kind, concept, seed=1, **cfg):
    return learners.make(MODULES[kind].Config(**cfg), concept, np.random.default_rng(seed))


@pytest.mark.parametrize("kind", list(MODULES))
def test_subtract_is_keep_on_the_centred_targets(kind):
    c = _concept()
    X, Y = c.sample(10, np.random.default_rng(5))
    keep = _learner(kind, c, m=16)
    sub = _learner(kind, c, m=16, f0="subtract")
    inputs = keep.encode(X)
    npt.assert_array_equal(sub.predict(inputs), 0.0)  # same BLAS call for f and f_0
    f0 = ff.forward(keep.params, inputs)
    lk, gk = keep.batch_grad(inputs, Y + f0)
    ls, gs = sub.batch_grad(inputs, Y)
    assert ls == lk
    for a, b in zip(gs, gk, strict=True):
        npt.assert_array_equal(a, b)
    eta = keep.step_size(0.5, "ntk")
    keep.sgd_chunk(inputs, Y + f0, eta, None)
    sub.sgd_chunk(inputs, Y, eta, None)
    npt.assert_array_equal(sub.params.W, keep.params.W)
    assert sub.info()["f0"] == "subtract" and sub.info()["ntk_trace"] == keep.info()["ntk_trace"]


@pytest.mark.parametrize("kind", list(MODULES))
def test_symmetric_output_is_exactly_zero_at_init(kind):
    c = _concept("azl", L=5, d_x=4)
    X, _ = c.sample(6, np.random.default_rng(5))
    sym = _learner(kind, c, m=16, f0="symmetric")
    assert np.all(sym.predict(sym.encode(X)) == 0.0)
    assert sym.info()["ntk_trace"] == _learner(kind, c, m=16).info()["ntk_trace"]
    assert len(sym.trained()) == 2 * len(_learner(kind, c, m=16).trained())


@pytest.mark.parametrize("arch", ff.ARCHS)
def test_symmetric_sgd_step_matches_finite_differences(arch):
    """One jitted step of each copy is -eta * rate times the central difference of the
    symmetric model's loss 0.5 ||(f1 - f2)/sqrt(2) - y||^2 (copies made unequal first)."""
    rng = np.random.default_rng(3)
    p1 = ff.init_params(arch, 12, 3, 2, rng)
    p2 = p1.copy()
    for a in p2.arrays():
        if a is not None:
            a += 0.05 * rng.standard_normal(a.shape)
    x = rng.standard_normal((1, 3))
    y = rng.standard_normal((1, 2))
    rates = ff.Rates(1.0, 0.5, 2.0, 1.0, 0.3) if arch != "mlp2" else ff.Rates(1.0, 0.5, 0, 0, 0.3)
    eta = 1e-3
    q1, q2 = p1.copy(), p2.copy()

    def loss():
        return 0.5 * float(np.sum((ff_sym.forward(q1, q2, x) - y) ** 2))

    n, losses = ff_sym.sgd_chunk(p1, p2, x, y, eta, rates=rates)
    assert n == 1 and losses[0] == pytest.approx(loss(), rel=1e-12)
    h = 1e-6
    for q, after in ((q1, p1), (q2, p2)):
        for name, rate in rates._asdict().items():
            M = getattr(q, name)  # noqa: N806
            if rate == 0 or M is None:
                continue
            for idx in {tuple(0 for _ in M.shape), tuple(s - 1 for s in M.shape)}:
                old = M[idx]
                M[idx] = old + h
                up = loss()
                M[idx] = old - h
                down = loss()
                M[idx] = old
                fd = (up - down) / (2 * h)
                step = (getattr(after, name)[idx] - old) / (-eta * rate)
                # central difference: O(h^2) truncation plus ~1e-16/h rounding, ~1e-10 absolute
                assert step == pytest.approx(fd, rel=1e-5, abs=1e-8), (name, idx)


@pytest.mark.parametrize("arch", ff.ARCHS)
def test_symmetric_chunk_matches_the_numpy_twin(arch):
    rng = np.random.default_rng(4)
    p1 = ff.init_params(arch, 10, 3, 2, rng)
    p2 = p1.copy()
    q1, q2 = p1.copy(), p2.copy()
    X = rng.standard_normal((5, 3))
    Y = rng.standard_normal((5, 2))
    order = np.array([0, 3, 4, 1, 1])
    eta = 0.05
    rates = ff.default_rates()
    ff_sym.sgd_chunk(p1, p2, X, Y, eta, order, rates)
    for k in order:
        _, g1, g2 = ff_sym.loss_and_grad(q1, q2, X[k : k + 1], Y[k : k + 1])
        for q, g in ((q1, g1), (q2, g2)):
            for name, rate in rates._asdict().items():
                if rate and getattr(q, name) is not None:
                    getattr(q, name)[...] -= eta * rate * getattr(g, name)
    for a, b in zip(p1.arrays() + p2.arrays(), q1.arrays() + q2.arrays(), strict=True):
        if a is not None:  # five steps of O(1) sums in different orders: rounding ~1e-15
            npt.assert_allclose(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("kind", "f0"), [("mlp2", "keep"), ("mlp3", "subtract"),
                                          ("resnet", "symmetric")])
def test_laziness_is_zero_with_a_zero_step(kind, f0):
    c = _concept()
    X, Y = c.sample(20, np.random.default_rng(5))
    learner = _learner(kind, c, m=16, f0=f0)
    assert learner.laziness()["ntk_align"] == pytest.approx(1.0, rel=1e-14)  # rounding only
    learner.sgd_chunk(learner.encode(X), Y, 0.0, None)
    lazy = learner.laziness()
    assert all(lazy[f"move_{n}"] == 0.0 for n in learner._trained)
    assert lazy["sign_flip"] == 0.0 and lazy["trace"] == lazy["trace0"] > 0
    assert lazy["ntk_align_c"] == pytest.approx(1.0, rel=1e-12)  # centring: a few more sums
    assert lazy["ntk_align"] == pytest.approx(1.0, rel=1e-14)
    learner.sgd_chunk(learner.encode(X), Y, learner.step_size(1.0, "ntk"), None)
    moved = learner.laziness()
    assert moved["move_W"] > 0 and moved["sign_flip"] > 0 and moved["ntk_align"] < 1.0


@pytest.mark.parametrize("kind", list(MODULES))
def test_probe_kernel_diagonal_is_the_rate_weighted_trace(kind):
    """One output (d = 1, a vector concept): the probe Gram's diagonal is ff.ntk_trace, the
    rate-weighted sum of squared gradients, computed by another kernel."""
    c = _concept()
    learner = _learner(kind, c, m=16)
    G = learner._gram(learner.params)
    T = ff.ntk_trace(learner.params, learner.probe, learner.rates)
    npt.assert_allclose(np.diag(G), T, rtol=1e-12)  # sums of ~m d_in squares: rounding only
    assert math.isclose(learner.laziness()["trace0"], float(np.mean(T[:8])), rel_tol=1e-12)
