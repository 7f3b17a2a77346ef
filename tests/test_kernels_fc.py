"""Fully connected and residual kernels (:mod:`pacsim.kernels.relu`, ``residual``, ``entk``,
``classical``).

* the vectorisable arccos against ``np.arccos``;
* hand-computed values of the depth-1 ReLU / LeakyReLU NTK and NNGP;
* the jitted FC kernels against the plain NumPy twin (all options, symmetric or not);
* closed forms against Monte Carlo of finite networks (FC and residual, ReLU and LeakyReLU):
  the seed-averaged empirical kernel approaches the limit as the width grows;
* the Jacobian-free eNTKs against explicit finite-difference Jacobians;
* classical kernels and monomial features.

Monte Carlo tolerance. The eNTK/NNGP of a width-m net fluctuates around its limit with a
relative (Frobenius) standard deviation ``c / sqrt(m)`` per draw (measured c <= 3 for these
architectures, depth <= 2, at m = 16 ... 4096), plus an O(1/m) bias, so the mean over S seeds
is within ``3 c / sqrt(m S) + c_b / m`` of the limit with overwhelming probability: the tests
use ``TOL(m, S) = 9 / sqrt(m S) + 2 / m`` for the seed mean at the wide width. "The error
shrinks" is asserted on the root-mean-square per-draw error (variance plus bias squared),
which falls like ``1/sqrt(m)`` (8x from m = 16 to 1024) and, unlike the error of a mean over a
few seeds, is not small by luck at the narrow width. The seeds are fixed, so the tests are
deterministic.
"""

from __future__ import annotations

import numpy as np
import numpy.testing as npt
import pytest
from tolerance import assert_close

from pacsim._numba import jit
from pacsim.kernels import _reference, classical, entk, relu, residual
from pacsim.kernels._math import acos


def TOL(m, S):  # noqa: N802
    return 9.0 / np.sqrt(m * S) + 2.0 / m


NARROW, WIDE, SEEDS = 16, 1024, 8


def check_convergence(label, draw, limits):
    """``draw(m, s) -> tuple of kernels``; compare with ``limits`` at NARROW and WIDE widths."""
    report = {}
    for m in (NARROW, WIDE):
        runs = [draw(m, s) for s in range(SEEDS)]
        report[m] = [
            (
                relerr(np.mean([r[k] for r in runs], 0), lim),  # error of the seed mean
                float(np.sqrt(np.mean([relerr(r[k], lim) ** 2 for r in runs]))),  # rms per draw
            )
            for k, lim in enumerate(limits)
        ]
    print(f"{label}: (error of the {SEEDS}-seed mean, rms per-draw error) by width: {report}")
    for k in range(len(limits)):
        assert report[WIDE][k][1] < report[NARROW][k][1] / 3
        assert report[WIDE][k][0] < TOL(WIDE, SEEDS)


def relerr(A, B):
    return float(np.linalg.norm(A - B) / np.linalg.norm(B))


def unit_rows(rng, n, d):
    X = rng.standard_normal((n, d))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


@jit
def _acos_array(x, out):
    for i in range(x.shape[0]):
        out[i] = acos(x[i])


# arccos


def test_acos_matches_numpy_to_one_ulp(rng):
    x = np.concatenate(
        [
            np.linspace(-1, 1, 200_001),
            rng.uniform(-1, 1, 200_000),
            1 - np.logspace(-17, 0, 2000),
            -1 + np.logspace(-17, 0, 2000),
            np.nextafter(0.5, [0.0, 1.0]),
            -np.nextafter(0.5, [0.0, 1.0]),
            [-1.0, 0.0, 1.0, 1.5, -1.5],
        ]
    )
    out = np.empty_like(x)
    _acos_array(x, out)
    # Reference in extended precision (libm's acosl, not NumPy's SIMD arccos, whose accuracy
    # varies with the CPU); fdlibm's approximation is within 1 ulp and fast-math's contraction
    # and reciprocal add about as much: 4 ulp of pi (1.8e-15, absolute) on every CPU.
    ref = np.arccos(np.clip(x, -1, 1).astype(np.longdouble)).astype(float)
    assert np.max(np.abs(out - ref)) <= 4 * np.spacing(np.pi)
    assert out[-3] == 0.0 and out[-5] == np.pi  # exact: every term is 0 at |x| = 1 (clipped)


# Known values


@pytest.mark.parametrize("leak", [None, 0.2])
def test_depth1_values_by_hand(leak):
    a = 0.0 if leak is None else leak
    E = np.eye(3)[:2]  # two orthogonal unit vectors
    T = relu.ntk(E, depth=1, leak=leak)
    S = relu.nngp(E, depth=1, leak=leak)
    # Tolerance: about ten roundings of O(1) terms and one acos (< 4 ulp): 1e-13 of the value.
    # identical unit vectors: Sigma^(0) = 1, Sigmadot^(1) = 1, Sigma^(1) = 1 -> NTK = 2
    assert_close(np.diag(T), 2.0, 1e-13)
    assert_close(np.diag(S), 1.0, 1e-13)
    # orthogonal: Sigma^(0) = 0, theta = pi/2, Sigma^(1) = c (1-a)^2 / (2 pi)
    c = 2 / (1 + a * a)
    assert_close(T[0, 1], c * (1 - a) ** 2 / (2 * np.pi), 1e-13)
    assert_close(S[0, 1], c * (1 - a) ** 2 / (2 * np.pi), 1e-13)
    if leak is None:
        assert_close(T[0, 1], 1 / np.pi, 1e-13)


def test_depth1_with_bias_by_hand():
    E = np.eye(3)[:2]
    T = relu.ntk(E, depth=1, bias=True)
    S = relu.nngp(E, depth=1, bias=True)
    # Sigma~^(0) = 0 + 1, diagonal 2: rho = 1/2, theta = pi/3
    sigma1 = 2 * 2 * (np.sqrt(3) / 2 + (2 * np.pi / 3) * 0.5) / (2 * np.pi)
    sdot1 = 2 * (np.pi - np.pi / 3) / (2 * np.pi)
    # about ten roundings of O(1) terms and one acos (< 4 ulp): 1e-13 of the value
    assert_close(S[0, 1], sigma1 + 1, 1e-13)
    assert_close(T[0, 1], 1 * sdot1 + sigma1 + 1, 1e-13)
    # identical: Sigma~^(0) = 2, Sigmadot = 1, Sigma^(1) = 2 -> NTK = 2 + 2 + 1
    assert_close(np.diag(T), 5.0, 1e-13)


def test_diagonal_is_depth_plus_one_times_norm(rng):
    X = rng.standard_normal((9, 4))
    for leak in (None, 0.3):
        T = relu.ntk(X, depth=3, leak=leak)
        # sums of 4 positive squares, three layers of a few roundings each (the diagonal takes
        # the exact rho = 1 branch): 1e-13 of the value
        assert_close(np.diag(T), 4 * (X * X).sum(1), 1e-13, scale=0.0)


def test_zero_input_is_handled(rng):
    X = rng.standard_normal((4, 3))
    X[1] = 0.0
    T = relu.ntk(X, depth=2)
    assert np.all(np.isfinite(T)) and np.all(T[1] == 0.0)  # exact: the degenerate branch
    T = relu.ntk(X, X.copy(), depth=2, leak=0.2, bias=0.5)
    Tr, _ = _reference.fc_ntk_nngp(X, X, 2, 0.5, 0.2)
    off = ~np.eye(4, dtype=bool)
    # jitted (fast-math, vectorised) against plain NumPy: sums of 3 products and three layers
    # of acos moments, rounding ~1e-15 of the matrix's scale; entries may cancel, so relative
    # to max |T| (tests/tolerance.py)
    assert_close(T[off], Tr[off], 1e-12)


# Against the NumPy twin


@pytest.mark.parametrize("depth", [0, 1, 3])
@pytest.mark.parametrize("bias", [0.0, 0.7])
@pytest.mark.parametrize("leak", [0.0, 0.2])
def test_fc_matches_numpy_reference(rng, depth, bias, leak):
    X = rng.standard_normal((13, 5))
    Y = rng.standard_normal((70, 5))  # more than one vector width, odd sizes
    T, S = relu.ntk_and_nngp(X, Y, depth, bias=bias, leak=leak)
    Tr, Sr = _reference.fc_ntk_nngp(X, Y, depth, bias, leak)
    # jitted (fast-math, vectorised) against plain NumPy: dot products of 5 terms and up to
    # three layers of acos moments, rounding ~1e-15 of the matrix's scale; entries can cancel
    # (e.g. 6e-4 of the scale), so the error is relative to max |entry| (tests/tolerance.py)
    assert_close(T, Tr, 1e-12)
    assert_close(S, Sr, 1e-12)
    # bit-exact: the same jitted function on the same input, only the requested outputs differ
    npt.assert_array_equal(relu.ntk(X, Y, depth, bias=bias, leak=leak), T)
    npt.assert_array_equal(relu.nngp(X, Y, depth, bias=bias, leak=leak), S)
    # symmetric path: exactly symmetric (the upper triangle is mirrored), equal to the general
    # path off the diagonal up to rounding (other loops, another vectorisation): relative to
    # max |entry|, as above
    Ts, Ss = relu.ntk_and_nngp(X, None, depth, bias=bias, leak=leak)
    Tg, Sg = relu.ntk_and_nngp(X, X.copy(), depth, bias=bias, leak=leak)
    npt.assert_array_equal(Ts, Ts.T)
    off = ~np.eye(13, dtype=bool)
    assert_close(Ts[off], Tg[off], 1e-12)
    assert_close(Ss, Sg, 1e-12)


def test_train_masks(rng):
    X = rng.standard_normal((6, 4))
    depth, beta = 2, 0.5
    full = relu.ntk(X, depth=depth, bias=beta)
    parts = [relu.ntk(X, depth=depth, bias=beta, train=[h]) for h in (1, 2, 3)]
    # per-layer parts summed in another order than the full kernel's; parts can have either
    # sign, so relative to the matrix's scale
    assert_close(sum(parts), full, 1e-12)
    assert_close(relu.ntk(X, depth=depth, bias=beta, train="hidden"), parts[0] + parts[1], 1e-12)
    nob = relu.ntk(X, depth=depth, bias=beta, train_bias=False)
    w = np.array([1.0, 1.0, 1.0])
    Tr, _ = _reference.fc_ntk_nngp(X, X, depth, beta, 0.0, train=w)
    # dropping the bias terms lowers every entry (by at least beta^2 = 0.25 of O(1) entries);
    # the margin covers rounding, 1e-12 of the scale
    assert np.all(nob < Tr + 1e-12 * np.abs(Tr).max())
    with pytest.raises(ValueError):
        relu.ntk(X, depth=1, train=[3])
    with pytest.raises(ValueError):
        relu.ntk(X, depth=1, leak=1.0)


# Monte Carlo: fully connected


def _fc_empirical(X, m, depth, beta, leak, seed):
    """eNTK and NNGP of a width-m net in the Arora parameterisation (per-group scales)."""
    r = np.random.default_rng(seed)
    c = relu.c_sigma(leak)
    d = X.shape[1]
    Ws = [r.standard_normal((m, d))] + [np.sqrt(c / m) * r.standard_normal((m, m))
                                         for _ in range(depth - 1)]  # fmt: skip
    A = np.sqrt(c / m) * r.standard_normal((1, m))
    kw = dict(weights=Ws, readout=A, leak=leak)
    groups = [f"W{l + 1}" for l in range(depth)] + ["A"]
    scales = {"W1": 1.0, **{f"W{l + 1}": c / m for l in range(1, depth)}, "A": c / m}
    if beta:
        kw.update(biases=[beta * r.standard_normal(m) for _ in range(depth)],
                  readout_bias=beta * r.standard_normal(1))  # fmt: skip
        groups += [f"b{l + 1}" for l in range(depth)] + ["c"]
        scales.update({g: beta**2 for g in groups if g[0] in "bc"})
    parts = entk.mlp(X, train=groups, scales=scales, parts=True, **kw)
    return sum(parts.values()), sum(v for g, v in parts.items() if g in ("A", "c"))


@pytest.mark.parametrize(
    "depth, beta, leak", [(1, 0.0, None), (2, 0.0, None), (2, 0.5, None), (2, 0.0, 0.2)]
)
def test_fc_closed_form_matches_wide_networks(rng, depth, beta, leak):
    X = unit_rows(rng, 4, 5)
    limits = relu.ntk_and_nngp(X, None, depth, bias=beta, leak=leak)
    check_convergence(
        f"FC depth={depth} beta={beta} leak={leak} (NTK, NNGP)",
        lambda m, s: _fc_empirical(X, m, depth, beta, leak, 1000 + s),
        limits,
    )


# Monte Carlo: residual


def _preact_empirical(X, m, blocks, alpha, beta, leak, seed):
    r = np.random.default_rng(seed)
    c = relu.c_sigma(leak)
    d = X.shape[1]
    kw = dict(
        W0=r.standard_normal((m, d)),
        blocks=[np.sqrt(c / m) * r.standard_normal((m, m)) for _ in range(blocks)],
        readout=np.sqrt(c / m) * r.standard_normal((1, m)),
        alpha=alpha,
        leak=leak,
    )
    groups = [f"W{l}" for l in range(blocks + 1)] + ["A"]
    if beta:
        kw.update(b0=beta * r.standard_normal(m),
                  biases=[beta * r.standard_normal(m) for _ in range(blocks)],
                  readout_bias=beta * r.standard_normal(1))  # fmt: skip
        groups += [f"b{l}" for l in range(blocks + 1)] + ["c"]
    scales = {g: (1.0 if g == "W0" else beta**2 if g[0] in "bc" else c / m) for g in groups}
    parts = entk.preact_resnet(X, train=groups, scales=scales, parts=True, **kw)
    return sum(parts.values()), sum(v for g, v in parts.items() if g in ("A", "c"))


@pytest.mark.parametrize("beta, leak", [(0.0, None), (0.5, 0.2)])
def test_preact_resnet_closed_form_matches_wide_networks(rng, beta, leak):
    X = unit_rows(rng, 4, 5)
    blocks, alpha = 2, 0.7
    limits = (
        residual.preact_ntk(X, blocks=blocks, alpha=alpha, bias=beta, leak=leak),
        residual.preact_nngp(X, blocks=blocks, alpha=alpha, bias=beta, leak=leak),
    )
    check_convergence(
        f"pre-activation ResNet beta={beta} leak={leak} (NTK, NNGP)",
        lambda m, s: _preact_empirical(X, m, blocks, alpha, beta, leak, 2000 + s),
        limits,
    )


def test_preact_without_blocks_is_the_depth1_fc_kernel(rng):
    X = rng.standard_normal((7, 3))
    for beta, leak in ((0.0, None), (0.4, 0.1)):
        # The residual code is plain NumPy: on the diagonal its rho = 1 - O(eps) gives
        # theta = O(sqrt(eps)) ~ 1.5e-8, and the derivative moment (pi - theta) / (2 pi) is off
        # by theta / (2 pi) relative (the jitted kernel takes the exact rho = 1 branch): 1e-7.
        assert_close(
            residual.preact_ntk(X, blocks=0, bias=beta, leak=leak),
            relu.ntk(X, depth=1, bias=beta, leak=leak),
            1e-7,
        )
        # The NNGP's moment is flat in theta at rho = 1 (d/dtheta = -(pi - t) sin t): rounding
        # only, ~1e-15 of the scale
        assert_close(
            residual.preact_nngp(X, blocks=0, bias=beta, leak=leak),
            relu.nngp(X, depth=1, bias=beta, leak=leak),
            1e-12,
        )


def _azl_empirical(X, m, sw, su, sb1, sb2, skip, seed):
    """Standard-parameterisation AZL-ResNet; NTK-parameterisation scales (residual docstring)."""
    r = np.random.default_rng(seed)
    d = X.shape[1]
    kw = dict(
        W=sw / np.sqrt(d) * r.standard_normal((m, d)),
        U=su / np.sqrt(m) * r.standard_normal((m, m)),
        A=r.standard_normal((3, m)) / np.sqrt(m),
        b1=sb1 * r.standard_normal(m) if sb1 else None,
        b2=sb2 * r.standard_normal(m) if sb2 else None,
        skip=skip,
    )
    groups = ["W", "U"] + (["b1"] if sb1 else []) + (["b2"] if sb2 else [])
    sc = {"W": sw**2 / d, "U": su**2 / m, "b1": sb1**2, "b2": sb2**2}
    sc["A"] = 1.0 / m  # a / sqrt(m): the readout part is the NNGP of the finite net
    parts = entk.azl_resnet(X, train=groups + ["A"], scales={g: sc[g] for g in groups + ["A"]},
                            parts=True, **kw)  # fmt: skip
    return sum(v for g, v in parts.items() if g != "A"), parts["A"]


@pytest.mark.parametrize(
    "sw, su, sb1, sb2, skip",
    [(1.3, 1.1, 0.0, 0.0, True), (1.0, 1.2, 0.5, 0.3, True), (1.0, 1.2, 0.5, 0.3, False)],
)
def test_azl_resnet_closed_form_matches_wide_networks(rng, sw, su, sb1, sb2, skip):
    X = unit_rows(rng, 4, 5)
    groups = ["W", "U"] + (["b1"] if sb1 else []) + (["b2"] if sb2 else [])
    limits = (
        residual.azl_ntk(X, sw=sw, su=su, sb1=sb1, sb2=sb2, skip=skip, train=groups),
        residual.azl_nngp(X, sw=sw, su=su, sb1=sb1, sb2=sb2, skip=skip),
    )
    check_convergence(
        f"AZL-ResNet skip={skip} biases={bool(sb1)} (NTK, NNGP)",
        lambda m, s: _azl_empirical(X, m, sw, su, sb1, sb2, skip, 3000 + s),
        limits,
    )


def test_azl_resnet_parts_and_weights(rng):
    X = rng.standard_normal((5, 3))
    parts = residual.azl_ntk(X, sb1=0.3, sb2=0.2, train=("W", "b1", "U", "b2"), parts=True)
    total = residual.azl_ntk(X, sb1=0.3, sb2=0.2, train=("W", "b1", "U", "b2"))
    # the same terms summed in another order (parts can have either sign): rounding relative to
    # the scale
    assert_close(sum(parts.values()), total, 1e-12)
    w = residual.azl_ntk(X, group_weights={"W": 2.0, "U": 0.5})
    p = residual.azl_ntk(X, parts=True)
    assert_close(w, 2 * p["W"] + 0.5 * p["U"], 1e-12)


def test_azl_bottleneck_conditional_limit(rng):
    """Given its own out1, the finite bottleneck eNTK approaches the conditional limit."""
    X = unit_rows(rng, 4, 5)
    k, d = 3, 5
    errs = {}
    for m in (NARROW, 4096):
        e = []
        for s in range(4):
            r = np.random.default_rng(4000 + s)
            A = r.standard_normal((k, m)) / np.sqrt(m)
            W = r.standard_normal((m, d + 1)) / np.sqrt(d)
            V = r.standard_normal((m, k + 1)) / np.sqrt(m)
            T = entk.azl_bottleneck(X, W=W, V=V, A=A)
            _, out1 = entk.azl_bottleneck_forward(X, W, V, A, return_out1=True)
            e.append(relerr(T, residual.azl_bottleneck_ntk(X, out1)))
        errs[m] = float(np.mean(e))
    print(f"AZL bottleneck, conditional on out1: mean rel. error {errs}")
    assert errs[4096] < errs[16]
    assert errs[4096] < 3 * TOL(4096, 1)


def test_bottleneck_out1_covariance(rng):
    X = unit_rows(rng, 3, 4)
    m, k, sw = 4000, 25, 0.8
    r = np.random.default_rng(5)
    A = r.standard_normal((k, m)) / np.sqrt(m)
    W = sw * r.standard_normal((m, 5))
    _, out1 = entk.azl_bottleneck_forward(X, W, np.zeros((m, k + 1)), A, return_out1=True)
    C = out1 @ out1.T / k  # k i.i.d. coordinates
    C_inf = residual.bottleneck_out1_cov(X, sw=sw)
    # Monte Carlo over k = 25 i.i.d. coordinates: entrywise relative sd about sqrt(2 / k) (the
    # finite width m = 4000 adds ~1/sqrt(m)); fixed seed
    assert relerr(C, C_inf) < 4 / np.sqrt(k)


# eNTK without a Jacobian = explicit Jacobian


def _fd_gram(forward, params, groups, X, scales=None, h=1e-6):
    """Explicit (n, k, n_params) Jacobian by central differences, then its Gram (n, n, k, k).

    Accuracy (CPU-independent): truncation h^2 times a third derivative (~1e-12) and rounding
    eps |f| / h (~2e-10 |f|) per Jacobian entry, so the Gram is within ~1e-9 of its scale; the
    tests compare at 1e-6 of max |entry| (a wrong term in an eNTK is off by O(1) of it)."""
    blocks = []
    for g in groups:
        P = params[g]
        J = np.zeros(forward(params, X).shape + (P.size,))
        for idx in range(P.size):
            old = P.flat[idx]
            P.flat[idx] = old + h
            fp = forward(params, X)
            P.flat[idx] = old - h
            fm = forward(params, X)
            P.flat[idx] = old
            J[..., idx] = (fp - fm) / (2 * h)
        s = 1.0 if scales is None else scales[g]
        blocks.append(np.sqrt(s) * J)
    J = np.concatenate(blocks, axis=-1)
    return np.einsum("irp,jsp->ijrs", J, J)


def test_mlp_entk_equals_explicit_jacobian(rng):
    d, m1, m2, k = 3, 4, 5, 2
    p = {
        "W1": rng.standard_normal((m1, d)), "b1": rng.standard_normal(m1),
        "W2": rng.standard_normal((m2, m1)), "b2": rng.standard_normal(m2),
        "A": rng.standard_normal((k, m2)), "c": rng.standard_normal(k),
    }  # fmt: skip
    X = rng.standard_normal((4, d))
    for leak in (None, 0.2):

        def fwd(q, X, leak=leak):
            return entk.mlp_forward(X, [q["W1"], q["W2"]], q["A"], [q["b1"], q["b2"]], q["c"], leak)

        groups = ["W1", "b1", "W2", "b2", "A", "c"]
        scales = {g: 0.5 + i for i, g in enumerate(groups)}
        net = dict(weights=[p["W1"], p["W2"]], biases=[p["b1"], p["b2"]], readout=p["A"],
                   readout_bias=p["c"], leak=leak)  # fmt: skip
        K = entk.mlp(X, train=groups, scales=scales, output="full", **net)
        assert_close(K, _fd_gram(fwd, p, groups, X, scales), 1e-6)
        Km = entk.mlp(X, **net)  # default: the hidden layers
        Kf = _fd_gram(fwd, p, ["W1", "b1", "W2", "b2"], X)
        assert_close(Km, np.einsum("ijrr->ij", Kf) / k, 1e-6)


def test_resnet_entks_equal_explicit_jacobian(rng):
    d, m, k = 3, 5, 2
    X = rng.standard_normal((4, d))
    # pre-activation ResNet
    p = {"W0": rng.standard_normal((m, d)), "b0": rng.standard_normal(m),
         "W1": rng.standard_normal((m, m)), "b1": rng.standard_normal(m),
         "A": rng.standard_normal((k, m)), "c": rng.standard_normal(k)}  # fmt: skip

    def fwd(q, X):
        return entk.preact_resnet_forward(X, q["W0"], [q["W1"]], q["A"], 0.7, q["b0"], [q["b1"]],
                                          q["c"], 0.1)  # fmt: skip

    groups = list(p)
    K = entk.preact_resnet(X, W0=p["W0"], blocks=[p["W1"]], readout=p["A"], alpha=0.7,
                           b0=p["b0"], biases=[p["b1"]], readout_bias=p["c"], leak=0.1,
                           output="full")  # fmt: skip
    assert_close(K, _fd_gram(fwd, p, groups, X), 1e-6)
    # AZL-ResNet, full U, with and without the skip
    q = {"W": rng.standard_normal((m, d)), "b1": rng.standard_normal(m),
         "U": rng.standard_normal((m, m)), "b2": rng.standard_normal(m),
         "A": rng.standard_normal((k, m))}  # fmt: skip
    for skip in (True, False):

        def fwd2(q, X, skip=skip):
            return entk.azl_resnet_forward(X, q["W"], q["U"], q["A"], q["b1"], q["b2"], skip)

        K = entk.azl_resnet(X, W=q["W"], U=q["U"], A=q["A"], b1=q["b1"], b2=q["b2"], skip=skip,
                            train=("W", "b1", "U", "b2", "A"), output="full")  # fmt: skip
        assert_close(K, _fd_gram(fwd2, q, ["W", "b1", "U", "b2", "A"], X),
                     1e-6)  # fmt: skip
    # AZL bottleneck
    b = {"W": rng.standard_normal((m, d + 1)), "V": rng.standard_normal((m, k + 1)),
         "A": rng.standard_normal((k, m))}  # fmt: skip

    def fwd3(q, X):
        return entk.azl_bottleneck_forward(X, q["W"], q["V"], q["A"])

    K = entk.azl_bottleneck(X, W=b["W"], V=b["V"], A=b["A"], output="full")
    assert_close(K, _fd_gram(fwd3, b, ["W", "V"], X), 1e-6)
    K1 = entk.azl_bottleneck(X, W=b["W"], V=b["V"], A=b["A"], output=1)
    assert_close(K1, K[:, :, 1, 1], 1e-12)  # another output selection of the same sums


# Classical kernels and features


def test_classical_kernels(rng):
    X = rng.standard_normal((6, 4))
    Y = rng.standard_normal((3, 4))
    # Closed forms against the formula written out: dot products of 4 terms (BLAS against
    # einsum/loops), a cube or an exp: rounding ~1e-15 of the scale (max |entry|; the Gaussian's
    # |x|^2 + |y|^2 - 2 x.y cancels, so not of each entry): 1e-12.
    assert_close(classical.polynomial(X, Y, 3, 0.5, 2.0), (2 * X @ Y.T + 0.5) ** 3, 1e-12)
    D2 = ((X[:, None] - Y[None]) ** 2).sum(-1)
    assert_close(classical.gaussian(X, Y, 1.7), np.exp(-D2 / (2 * 1.7**2)), 1e-12)
    # arc-cosine k_1/2 and k_0/2 are the ReLU moments; k_0 of orthogonal vectors is 1/2
    e1, e0 = relu.layer_moments(X @ Y.T, (X * X).sum(1)[:, None], (Y * Y).sum(1)[None, :])
    assert_close(classical.arccos(X, Y, 1) / 2, e1, 1e-12)
    assert_close(classical.arccos(X, Y, 0) / 2, e0, 1e-12)
    assert_close(classical.arccos(np.eye(2), order=0)[0, 1], 0.5, 1e-13)  # one acos(0)
    # order 2 against a Monte Carlo of E[relu(w.x)^2 relu(w.y)^2] * 2 (Cho & Saul normalisation)
    W = np.random.default_rng(1).standard_normal((400_000, 4))
    Z1, Z2 = np.maximum(W @ X[:2].T, 0), np.maximum(W @ Y[:1].T, 0)
    mc = 2 * ((Z1**2)[:, :, None] * (Z2**2)[:, None, :]).mean(0)
    # Monte Carlo, 4e5 draws of a product of two squared ReLUs (relative sd of one draw ~ 5):
    # standard error ~ 0.8%, so 5% is about 6 sd; fixed seed
    npt.assert_allclose(classical.arccos(X[:2], Y[:1], 2), mc, rtol=0.05)
    # asin of rho = x.x / |x|^2 = 1 - O(eps): asin is not Lipschitz at 1, an error of one ulp in
    # rho moves asin by sqrt(2 eps) = 2.1e-8 (1.3e-8 relative): 1e-7
    assert_close(np.diag(classical.arcsin(X)), np.pi / 2, 1e-7)
    U = unit_rows(rng, 5, 3)
    assert_close(classical.inverse_polynomial(U), 1 / (2 - U @ U.T), 1e-12)  # as above
    # PSD: eigenvalues of a symmetric 6 x 6 matrix are exact to ~n eps ||K||; 1e-10 of the norm
    for K in (classical.gaussian(X), classical.arccos(X, order=2), classical.polynomial(X)):
        assert np.linalg.eigvalsh(K).min() > -1e-10 * np.abs(K).max()


@pytest.mark.parametrize("multilinear", [False, True])
def test_monomial_features(rng, multilinear):
    d, p = 5, 3
    X = rng.standard_normal((7, d))
    F = classical.monomial_features(X, p, multilinear)
    count = sum(__import__("math").comb(d, j) for j in range(p + 1)) if multilinear else 56
    assert F.shape == (7, count) == (7, classical.feature_count(d, p, multilinear))
    # every column is a distinct monomial: evaluating at a generic point gives distinct values
    z = classical.monomial_features(np.array([[2.0, 3.0, 5.0, 7.0, 11.0]]), p, multilinear)
    assert np.unique(z).size == count  # exact: products of small integers in float64
    if not multilinear:
        assert_close(F[:, 1:1 + d], X, 1e-15)  # degree-1 block: products with ones  # fmt: skip
