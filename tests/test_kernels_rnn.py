"""Recurrent kernels (:mod:`pacsim.kernels.rntk`) and the RNN's empirical NTK (``entk.rnn``).

* the jitted recurrent NTK/NNGP against the plain NumPy twin (every block layout, symmetric or
  not, AZL and PG21 training);
* on identical AZL inputs the kernel reproduces :func:`pacsim.models.rnn.ntk_trace`;
* ``entk.rnn`` (no Jacobian) against explicit per-output gradients from
  :func:`pacsim.models.rnn.loss_and_grad` (unit-residual trick) and finite differences for A;
* the seed-averaged ``entk.rnn(per_width=True)`` of pacsim's own RNN at m = 256, 1024, 4096
  approaches ``rntk`` (and the hidden-state Gram approaches ``rnngp``).

Monte Carlo tolerance: per draw, the relative (Frobenius) deviation of eNTK/m from the limit has
standard deviation about ``c / sqrt(m)`` with c ~ 6 (measured at m = 256 ... 4096, L = 4 ... 6,
eps_x = 0.5 and unit-scale tokens), plus a bias of about ``40 / m`` (the seed means sit above
the limit by that much at m = 1024); the mean over S draws is asserted within
``3 * 6 / sqrt(m S) + 50 / m``.
"""

from __future__ import annotations

import numpy as np
import numpy.testing as npt
import pytest
from tolerance import assert_close

from pacsim.kernels import _reference, entk, rntk
from pacsim.models import rnn

LAM = 0.7

# Tolerances. The jitted kernels (fast-math: reassociated, vectorised sums) against the NumPy
# twin or another path of themselves: L <= 7 layers of a recursion whose every step is a sum of
# a few O(1) terms and an acos moment, rounding ~1e-15 of the matrix's scale; entries may cancel,
# so errors are measured relative to max |entry| (tests/tolerance.py) at REL = 1e-12.
REL = 1e-12


def relerr(A, B):
    return float(np.linalg.norm(A - B) / np.linalg.norm(B))


def azl(rng, n, L, d_x, eps_x=0.5):
    tok = rng.standard_normal((n, L, d_x))
    tok /= np.linalg.norm(tok, axis=2, keepdims=True)
    return rnn.azl_inputs(tok, eps_x)


@pytest.fixture(params=["azl", "plain"])
def inputs(request, rng):
    n1, n2, L, d_x = 5, 4, 6, 3
    if request.param == "azl":
        return azl(rng, n1, L, d_x), azl(rng, n2, L, d_x)
    return rng.standard_normal((n1, L, d_x + 1)), rng.standard_normal((n2, L, d_x + 1))


# Against the NumPy twin


@pytest.mark.parametrize("train", [("W",), ("W", "A"), ("A",)])
def test_rntk_matches_numpy_reference(inputs, train):
    X1, X2 = inputs
    pos = [1, 2, 5]
    cW, cA = float("W" in train), float("A" in train)
    ref = _reference.rntk(X1, X2, pos, LAM, 3, cW, cA)
    K = rntk.rntk(X1, X2, pos, lam=LAM, d=3, train=train)
    assert_close(K, ref, REL)
    Kd = rntk.rntk(X1, X2, pos, lam=LAM, d=3, train=train, blocks="diag")
    assert_close(Kd, _reference.rntk_diag(X1, X2, pos, LAM, 3, cW, cA), REL)
    assert_close(Kd, np.einsum("ijaa->ija", K), REL)  # another block layout: other loops
    Ks = rntk.rntk(X1, X2, pos, lam=LAM, d=3, train=train, blocks="sum")
    assert_close(Ks, K.sum((2, 3)), REL)  # the same terms summed in another order
    # symmetric path: the Gram of X1 (only j >= i computed, then mirrored)
    Kx = rntk.rntk(X1, None, pos, lam=LAM, d=3, train=train)
    refx = _reference.rntk(X1, X1, pos, LAM, 3, cW, cA)
    # the twin rounds cos T = 1 - O(eps) on the diagonal, so T = O(sqrt(eps)) ~ 1.5e-8 and the
    # derivative moment (pi - T) / (2 pi) is off by ~T / (2 pi) relative (the kernel takes the
    # exact branch): 1e-7
    assert_close(Kx, refx, 1e-7)
    npt.assert_array_equal(Kx, Kx.transpose(1, 0, 3, 2))  # exact: mirrored
    Kg = rntk.rntk(X1, X1.copy(), pos, lam=LAM, d=3, train=train)
    assert_close(Kx, Kg, REL)


def test_rntk_variances_match_numpy_reference(inputs):
    """Non-default initial variances (pg21's b_var = 2, other gains) against the twin."""
    X1, X2 = inputs
    pos = [2, 5]
    kw = dict(w_var=1.7, a_var=0.6, b_var=2.0)
    ref = _reference.rntk(X1, X2, pos, LAM, 2, 1.0, 1.0, **kw)
    assert_close(rntk.rntk(X1, X2, pos, lam=LAM, d=2, train=("W", "A"), **kw), ref, REL)
    refq = _reference.rntk(X1, X2, pos, LAM, 2, nngp=True, **kw)
    assert_close(rntk.rnngp(X1, X2, pos, lam=LAM, d=2, **kw), refq, REL)
    with pytest.raises(ValueError):
        rntk.rntk(X1, X2, pos, w_var=0.0)


def test_rnngp_matches_numpy_reference(inputs):
    X1, X2 = inputs
    pos = [0, 3, 4]
    Q = rntk.rnngp(X1, X2, pos, lam=LAM, d=2)
    assert_close(Q, _reference.rntk(X1, X2, pos, LAM, 2, nngp=True), REL)
    assert_close(rntk.rnngp(X1, X2, pos, blocks="sum"), Q.sum((2, 3)) * 2 / LAM**2, REL)


def test_more_samples_than_a_row_block(rng):
    """The symmetric path copies column blocks of 128 rows: cross a block boundary."""
    X = azl(rng, 300, 4, 2)
    pos = [2, 3]
    K = rntk.rntk(X, None, pos, blocks="diag")
    Kg = rntk.rntk(X, X.copy(), pos, blocks="diag")
    assert_close(K, Kg, REL)
    assert_close(K[250:, 100:140], _reference.rntk_diag(X[250:], X[100:140], pos), REL)


def test_identical_inputs_reproduce_ntk_trace(rng):
    """d * m * sum_j rntk[x, x, j, j] is rnn.ntk_trace, the expected per-sample trace."""
    L, eps_x, d, m = 7, 0.3, 3, 1000
    X = azl(rng, 2, L, 4, eps_x)
    pos = list(range(2, L))
    Kd = rntk.rntk(X, None, pos, lam=LAM, d=d, blocks="diag")
    for i in range(2):
        # a sum of positive terms (no cancellation) against the closed form: 1e-12 of the value
        assert_close(d * m * Kd[i, i].sum(), rnn.ntk_trace(m, L, eps_x, pos, lam=LAM), REL,
                     scale=0.0)


def test_argument_checks(rng):
    X = azl(rng, 2, 4, 2)
    with pytest.raises(ValueError):
        rntk.rntk(X, positions=[4])
    with pytest.raises(ValueError):
        rntk.rntk(X, train=("B",))
    with pytest.raises(ValueError):
        rntk.rntk(X, blocks="all")
    with pytest.raises(ValueError):
        rntk.rntk(X, X[:, :3])


# The empirical NTK without a Jacobian


def _jacobian_W(p, X, pos, lam):
    """Per-output W-gradients (n, P, d, m*m) from pacsim's own BPTT (unit residual)."""
    n, d = X.shape[0], p.d
    Yhat = rnn.forward(p, X, lam)
    J = np.zeros((n, len(pos), d, p.m * p.m))
    for i in range(n):
        for a, j in enumerate(pos):
            for s in range(d):
                Y = Yhat[i : i + 1].copy()
                Y[0, j, s] -= 1.0  # residual 1 at (j, s), 0 elsewhere
                _, g = rnn.loss_and_grad(p, X[i : i + 1], Y, lam, positions=[j])
                J[i, a, s] = g.W.ravel()
    return J


def _jacobian_fd(p, M, X, pos, lam, h=1e-6):
    """Per-output gradients w.r.t. the matrix ``M`` (``p.A`` or ``p.B``) by central differences."""
    n, d = X.shape[0], p.d
    J = np.zeros((n, len(pos), d, M.size))
    for idx in range(M.size):
        old = M.flat[idx]
        M.flat[idx] = old + h
        fp = rnn.forward(p, X, lam)[:, pos]
        M.flat[idx] = old - h
        fm = rnn.forward(p, X, lam)[:, pos]
        M.flat[idx] = old
        J[..., idx] = (fp - fm) / (2 * h)
    return J


def test_rnn_entk_equals_explicit_jacobian(rng):
    n, L, d_x, d, m = 3, 5, 3, 2, 6
    X = azl(rng, n, L, d_x)
    X2 = rng.standard_normal((2, L, d_x + 1))
    p = rnn.init_params(m, d_x + 1, d, rng)
    pos = [1, 3, 4]
    JW = _jacobian_W(p, X, pos, LAM)
    JW2 = _jacobian_W(p, X2, pos, LAM)
    KW = np.einsum("iasq,jbtq->ijabst", JW, JW2)
    full = entk.rnn(p, X, X2, pos, lam=LAM, output="full")
    # the Jacobians of W come from BPTT (rounding only, no differences): REL of the scale
    assert_close(full, KW, REL)
    assert_close(entk.rnn(p, X, X2, pos, lam=LAM), np.einsum("ijabss->ijab", KW) / d, REL)
    assert_close(entk.rnn(p, X, X2, pos, lam=LAM, output=1), KW[..., 1, 1], REL)
    assert_close(
        entk.rnn(p, X, X2, pos, lam=LAM, blocks="diag", output=0),
        np.einsum("ijaa->ija", KW[..., 0, 0]),
        REL,
    )
    assert_close(
        entk.rnn(p, X, X2, pos, lam=LAM, blocks="sum", output="full"), KW.sum((2, 3)), REL
    )
    assert_close(entk.rnn(p, X, X2, pos, lam=LAM, per_width=True) * m,
                 entk.rnn(p, X, X2, pos, lam=LAM), REL)  # fmt: skip
    # A (PG21 mode) and B trained too (finite differences), with per-group scales
    JA = _jacobian_fd(p, p.A, X, pos, LAM)
    JB = _jacobian_fd(p, p.B, X, pos, LAM)
    KA = np.einsum("iasq,jbtq->ijabst", JA, JA)
    KB = np.einsum("iasq,jbtq->ijabst", JB, JB)
    KWAB = entk.rnn(p, X, None, pos, lam=LAM, train=("W", "A", "B"), scales={"A": 2.5, "B": 0.3},
                    output="full")  # fmt: skip
    # central differences (h = 1e-6): truncation ~h^2 and rounding ~eps/h = 2e-10 of the outputs'
    # scale per Jacobian entry; 1e-6 of the Gram's scale (a missing term is O(1) of it)
    assert_close(KWAB, np.einsum("iasq,jbtq->ijabst", JW, JW) + 2.5 * KA + 0.3 * KB, 1e-6)
    KBs = entk.rnn(p, X, None, pos, lam=LAM, train=("B",), blocks="sum")
    assert_close(KBs, np.einsum("ijabss->ij", KB) / d, 1e-6)


# Finite width -> infinite width


def test_rnn_entk_approaches_rntk(rng):
    """pacsim's RNN at m = 256, 1024, 4096 (seed means) against the analytic RNTK."""
    n, L, d_x = 3, 4, 3
    X = azl(rng, n, L, d_x, eps_x=0.5)
    pos = [2, 3]  # AZL's scored positions for L = 4
    K_inf = rntk.rntk(X, None, pos, lam=LAM)
    Q_inf = rntk.rnngp(X, None, pos)  # lim <h_j, h_j'>
    S = 4
    report = {}
    for m in (256, 1024, 4096):
        Ks, Qs = [], []
        for s in range(S):
            p = rnn.init_params(m, d_x + 1, 1, np.random.default_rng(7000 + s))
            Ks.append(entk.rnn(p, X, None, pos, lam=LAM, per_width=True))
            H = entk.rnn_forward(p.W, p.A, X)[:, 1:][:, pos]  # h_j, (n, P, m)
            Qs.append(np.einsum("iak,jbk->ijab", H, H))
        report[m] = {
            "rntk_mean": relerr(np.mean(Ks, 0), K_inf),
            "rntk_rms": float(np.sqrt(np.mean([relerr(K, K_inf) ** 2 for K in Ks]))),
            "rnngp_mean": relerr(np.mean(Qs, 0), Q_inf),
        }
    print("eNTK/m of pacsim's RNN vs rntk (relative Frobenius error):")
    for m, r in report.items():
        print(f"  m = {m:5d}: {r}")
    assert report[4096]["rntk_rms"] < report[256]["rntk_rms"] / 2
    assert report[4096]["rntk_mean"] < report[256]["rntk_mean"]
    for m in (1024, 4096):
        assert report[m]["rntk_mean"] < 18 / np.sqrt(m * S) + 50 / m
        assert report[m]["rnngp_mean"] < 18 / np.sqrt(m * S) + 50 / m


def test_pg21_entk_approaches_rntk(rng):
    """PG21 mode: W and A trained, B ~ N(0, 2/d), start and end tokens, last output only."""
    n, L, d_x = 3, 5, 3
    X = azl(rng, n, L, d_x, eps_x=0.5)
    X[:, -1] = 0.0
    X[:, -1, -1] = 1.0  # end token
    pos = [L - 1]
    K_inf = rntk.rntk(X, None, pos, lam=LAM, train=("W", "A"), b_var=2.0)
    S = 4
    report = {}
    for m in (256, 2048):
        Ks = []
        for s in range(S):
            r = np.random.default_rng(8000 + s)
            W = r.standard_normal((m, m)) * np.sqrt(2 / m)
            A = r.standard_normal((m, d_x + 1)) * np.sqrt(2 / m)
            B = r.standard_normal((1, m)) * np.sqrt(2.0)
            p = rnn.RNNParams(W, A, B)
            Ks.append(entk.rnn(p, X, None, pos, lam=LAM, train=("W", "A"), per_width=True))
        report[m] = (
            relerr(np.mean(Ks, 0), K_inf),
            float(np.sqrt(np.mean([relerr(K, K_inf) ** 2 for K in Ks]))),
        )
    print(f"PG21 mode, eNTK/m vs rntk: (error of the mean, rms per draw) by width {report}")
    assert report[2048][1] < report[256][1] / 1.5
    assert report[2048][0] < 18 / np.sqrt(2048 * S) + 50 / 2048
