"""Kernel ridge regression and ridge readouts (:mod:`pacsim.kernels.krr`, ``fit_monomial``).

* the Cholesky solve against ``np.linalg.solve``; the fitted predictor against the formula;
* the 2-D / 3-D / 4-D kernel layouts (shared, per-output, joint) against explicit systems;
* selection never reads test labels: the fitting API has no place for them, and poisoned test
  labels passed through the evaluation path leave the chosen hyper-parameters unchanged;
* the selection does pick sensible values (bandwidth, ridge) and refits on all N samples;
* feature ridge (primal and dual) and monomial least squares.

Tolerances of linear solves: a backward-stable solve (Cholesky here, LU in NumPy; LAPACK's
blocking varies with the BLAS) is accurate to about ``cond(A) * eps`` relative to the
solution's norm. The ridges below keep ``cond(A) <= 1e6``, so ``1e-8`` of ``max |entry|``
(tests/tolerance.py) leaves a margin of ~100 over ``1e6 * 1.1e-16`` on any CPU and BLAS.
"""

from __future__ import annotations

import functools
import inspect

import numpy as np
import pytest
from tolerance import assert_close

from pacsim.kernels import classical, krr, relu, rntk
from pacsim.models import rnn


def problem(rng, n=60, d=3, k=2, noise=0.05):
    X = rng.standard_normal((n, d))
    W = rng.standard_normal((d, k))
    Y = np.sin(X @ W) + noise * rng.standard_normal((n, k))
    return X, Y


def test_solve_matches_numpy(rng):
    X, Y = problem(rng)
    K = classical.gaussian(X, bandwidth=1.3)
    for ridge in (1e-6, 1e-2, 1.0):
        alpha, r_abs, jitter = krr.solve(K, Y, ridge)
        assert jitter == 0.0
        # a trace of 60 positive terms (any summation order) times a scalar: 1e-13
        assert_close(r_abs, ridge * np.trace(K) / len(K), 1e-13)
        ref = np.linalg.solve(K + r_abs * np.eye(len(K)), Y)
        assert_close(alpha, ref, 1e-8)  # cond <= ~1e6 at ridge 1e-6 (module docstring)
        a1, *_ = krr.solve(K, Y[:, 0], ridge)  # 1-D labels
        assert_close(a1, alpha[:, 0], 1e-8)  # one right-hand side instead of two: LAPACK blocks
    a_abs, r_abs, _ = krr.solve(K, Y, 0.3, relative=False)
    assert r_abs == 0.3
    assert_close(a_abs, np.linalg.solve(K + 0.3 * np.eye(len(K)), Y), 1e-8)


def test_ridge_zero_on_a_singular_kernel_uses_jitter(rng):
    X = rng.standard_normal((30, 2))
    # rank 2, and a zero sample: its pivot is exactly 0, so the unjittered Cholesky fails on
    # every CPU (a rank-deficient pivot alone is +-rounding, and could pass by luck)
    X[4] = 0.0
    K = classical.polynomial(X, degree=1, offset=0.0)
    alpha, _, jitter = krr.solve(K, X[:, :1], 0.0)
    assert 0 < jitter <= 1e-4 * np.trace(K) / 30
    # still interpolates: the residual is jitter * alpha ~ 1e-12 * trace / n / lambda_min(range)
    # ~ 1e-13 of |y| (y = X[:, 0] is in the range of K), plus rounding ~1e-15: 1e-6 of max |y|
    assert_close(K @ alpha, X[:, :1], 1e-6)


def test_fitted_predictor_is_the_krr_formula(rng):
    X, Y = problem(rng)
    Xt = rng.standard_normal((9, 3))
    kern = functools.partial(relu.ntk, depth=2)
    model = krr.fit(kern, X, Y, ridges=(1e-3,))
    K = relu.ntk(X, depth=2)
    ref = relu.ntk(Xt, X, depth=2) @ np.linalg.solve(K + 1e-3 * np.trace(K) / 60 * np.eye(60), Y)
    assert_close(model.predict(Xt), ref, 1e-8)  # solve (cond ~1e4 at ridge 1e-3) and a product
    assert model.ridge == 1e-3 and model.params == {}
    m1 = krr.fit(kern, X, Y[:, 0], ridges=(1e-3,))  # 1-D labels -> 1-D predictions
    assert_close(m1.predict(Xt), ref[:, 0], 1e-8)


def test_kernel_layouts(rng):
    """2-D shared, 3-D per-output and 4-D joint kernels, each against an explicit solve."""
    n, L = 12, 5
    X = rnn.azl_inputs(rng.standard_normal((n, L, 3)), 0.5)
    Xt = rnn.azl_inputs(rng.standard_normal((4, L, 3)), 0.5)
    pos = [2, 3, 4]
    Y = rng.standard_normal((n, len(pos)))
    ridge = 1e-2
    # 3-D: one kernel per position
    Kd = rntk.rntk(X, None, pos, blocks="diag")
    Kdt = rntk.rntk(Xt, X, pos, blocks="diag")
    gm = krr.fit_gram(Kd, Y, ridges=(ridge,))
    for a in range(len(pos)):
        Ka = Kd[:, :, a]
        ref = Kdt[:, :, a] @ np.linalg.solve(Ka + ridge * np.trace(Ka) / n * np.eye(n), Y[:, a])
        assert_close(gm.predict(Kdt)[:, a], ref, 1e-8)  # ridge 1e-2: cond <= ~1e3
    # 4-D: the joint (n P) x (n P) system
    Kf = rntk.rntk(X, None, pos)
    Kft = rntk.rntk(Xt, X, pos)
    gm = krr.fit_gram(Kf, Y, ridges=(ridge,))
    big = Kf.transpose(0, 2, 1, 3).reshape(n * 3, n * 3)
    alpha = np.linalg.solve(big + ridge * np.trace(big) / (3 * n) * np.eye(3 * n), Y.reshape(-1))
    ref = Kft.transpose(0, 2, 1, 3).reshape(4 * 3, n * 3) @ alpha
    assert_close(gm.predict(Kft), ref.reshape(4, 3), 1e-8)
    # a callable kernel returning 4-D blocks works through fit() as well (the same solve again,
    # the kernel recomputed by the jitted code: rounding of the kernel times cond ~1e3)
    model = krr.fit(lambda A, B: rntk.rntk(A, B, pos), X, Y, ridges=(ridge,))
    assert_close(model.predict(Xt), gm.predict(Kft), 1e-10)
    with pytest.raises(ValueError):
        krr.fit_gram(Kf[:, :, :2, :2], Y)


def test_selection_cannot_read_test_labels(rng):
    X, Y = problem(rng, n=80)
    Xt, Yt = problem(rng, n=40)
    # 1. structurally: no fitting entry point has a parameter for anything but training data
    for fn in (krr.fit, krr.fit_gram, krr.fit_features, classical.fit_monomial):
        names = set(inspect.signature(fn).parameters)
        assert not {n for n in names if "test" in n.lower()}, fn
        assert names <= {"kernel", "X", "Y", "K", "F", "params", "ridges", "val_fraction",
                         "seed", "degree", "multilinear"}, (fn, names)  # fmt: skip
    # 2. poisoned test labels go through the evaluation path only: the selection is unchanged
    grid = {"bandwidth": [0.3, 1.0, 3.0]}
    chosen = []
    for labels in (Yt, np.full_like(Yt, np.nan), -1e9 * Yt):
        model = krr.fit(classical.gaussian, X, Y, params=grid)
        score = krr.mse(model.predict(Xt), labels)  # evaluation: the only place labels appear
        chosen.append((model.params, model.ridge, [s.val_mse for s in model.selection]))
        assert np.isnan(score) or score > 0
    assert chosen[0] == chosen[1] == chosen[2]
    # 3. the predictor's only method taking data returns predictions, nothing else
    assert list(inspect.signature(model.predict).parameters) == ["X"]
    # 4. the validation split is carved from the training samples only
    fi, vi = krr.split(80, krr.VAL_FRACTION, 0)
    assert len(vi) == 16 and len(fi) == 64 and set(fi) | set(vi) == set(range(80))


def test_selection_picks_sensible_values(rng):
    X = rng.uniform(-1, 1, (150, 1))
    Y = np.sin(6 * X)  # noiseless and smooth: a small bandwidth, a tiny ridge
    model = krr.fit(classical.gaussian, X, Y, params={"bandwidth": [0.01, 0.3, 30.0]})
    assert model.params == {"bandwidth": 0.3}
    assert model.ridge <= 1e-4
    Yn = Y + 0.5 * rng.standard_normal(Y.shape)  # very noisy: a large ridge
    noisy = krr.fit(classical.gaussian, X, Yn, params={"bandwidth": [0.3]})
    assert noisy.ridge >= 1e-2
    # refitted on all N samples (the dual vector covers every training sample)
    assert model.alpha.shape == (150, 1) and model.X.shape == (150, 1)
    assert len(model.selection) == 3 * len(krr.RIDGES)


def test_fit_features_primal_dual_and_least_squares(rng):
    n = 40
    for p in (10, 90):  # primal (p <= n) and dual (p > n) paths
        F = rng.standard_normal((n, p))
        Y = rng.standard_normal((n, 2))
        r = 1e-2
        coef = krr.ridge_coef(F, Y, r)
        lam = r * np.einsum("ij,ij->", F, F) / n
        ref = np.linalg.solve(F.T @ F + lam * np.eye(p), F.T @ Y)
        # primal against dual normal equations, ridge 1e-2 of the mean squared norm: cond of
        # F^T F + lam I at most ~1e4 (p = 90 > n: lam bounds the smallest eigenvalue)
        assert_close(coef, ref, 1e-8)
    F = rng.standard_normal((n, 5))
    w = rng.standard_normal(5)
    model = krr.fit_features(F, F @ w)  # noiseless: least squares is exact
    # least squares on a well-conditioned 40 x 5 Gaussian matrix (cond ~ 3): rounding only,
    # but the fitted default ridge may be a tiny nonzero value: 1e-6 of the scale
    assert_close(model.predict(F[:3]), F[:3] @ w, 1e-6)


@pytest.mark.parametrize("multilinear", [False, True])
def test_monomial_least_squares_recovers_a_polynomial(rng, multilinear):
    X = rng.choice([-1.0, 1.0], size=(300, 6)) if multilinear else rng.standard_normal((300, 4))
    Y = 1.0 + X[:, 0] * X[:, 1] - 2.0 * X[:, 2] * X[:, 3] * X[:, 1] + 0.5 * X[:, 3]
    if not multilinear:
        Y = Y + X[:, 0] ** 3
    model = classical.fit_monomial(X, Y, 3, multilinear=multilinear)
    Xt = rng.choice([-1.0, 1.0], size=(20, 6)) if multilinear else rng.standard_normal((20, 4))
    Yt = 1.0 + Xt[:, 0] * Xt[:, 1] - 2.0 * Xt[:, 2] * Xt[:, 3] * Xt[:, 1] + 0.5 * Xt[:, 3]
    if not multilinear:
        Yt = Yt + Xt[:, 0] ** 3
    # the target is in the span of the degree-3 monomials and there is no noise: least squares
    # recovers it up to cond(F) * eps, F 300 x <= 42 with cond ~1e2 (1e-8 of the labels' scale)
    assert_close(model.predict(Xt), Yt, 1e-8)
    assert model.ridge == 0.0
    validated = classical.fit_monomial(X, Y, 2, multilinear=multilinear, ridges=(0.0, 1e-3))
    assert validated.ridge in (0.0, 1e-3)


def test_one_selection_rule_for_every_kernel_learner():
    """krr.choose is the rule krr.fit, fit_gram, fit_features and random_features use:
    the smallest validation score wins, ties go to the larger ridge, a candidate that cannot
    be fitted scores inf, and no fittable candidate is an error."""
    from numpy.linalg import LinAlgError

    from pacsim.kernels import krr

    scores = [2.0, 1.0, 1.0, float("nan")]
    cands = [({"b": 1}, 0.0), ({"b": 1}, 1e-3), ({"b": 2}, 1e-2), ({"b": 3}, 1.0)]
    i, records = krr.choose(cands, lambda i: scores[i])
    assert i == 2 and [r.val_mse for r in records] == [2.0, 1.0, 1.0, float("inf")]

    def fails(i):
        raise LinAlgError("singular")

    with pytest.raises(LinAlgError, match="no \\(parameters, ridge\\)"):
        krr.choose(cands, fails)
