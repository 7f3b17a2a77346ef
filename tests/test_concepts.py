"""The AZL concept: shapes, tokens, determinism, dependency structure, label scale."""

import numpy as np
import numpy.testing as npt
import pytest

from pacsim.concepts import azl


def _concept(seed=0, **kw):
    args = {"L": 6, "d_x": 5, "d": 2, "p": 3, "links": ("sin", "z2", "expm1")} | kw
    return azl.sample(np.random.default_rng(seed), **args)


def test_sample_shapes_and_tokens(rng):
    c = _concept()
    tokens, Y = c.sample(50, rng)
    assert tokens.shape == (50, 6, 5) and Y.shape == (50, 6, 2)
    npt.assert_array_equal(tokens[:, 0], 0.0)  # the start position carries no token
    npt.assert_allclose(np.linalg.norm(tokens[:, 1:], axis=-1), 1.0, rtol=1e-12)
    npt.assert_array_equal(tokens[:, 1:, -1], 0.5)
    npt.assert_array_equal(Y[:, :2], 0.0)  # outputs 0 and 1 are not scored
    assert np.all(np.abs(Y[:, 2:]).std(axis=0) > 0)
    npt.assert_array_equal(c.positions, np.arange(2, 6))


def test_sample_deterministic_by_seed():
    a = _concept(seed=3).sample(20, np.random.default_rng(1))
    b = _concept(seed=3).sample(20, np.random.default_rng(1))
    c = _concept(seed=4).sample(20, np.random.default_rng(1))
    npt.assert_array_equal(a[1], b[1])
    assert not np.allclose(a[1], c[1])


def test_sample_is_nested_and_chunk_invariant():
    """Drawing 7 then 5 samples gives exactly the first 12 samples of one draw."""
    c = _concept(noise=0.3)
    r1, r2 = np.random.default_rng(9), np.random.default_rng(9)
    t1, y1 = c.sample(7, r1)
    t2, y2 = c.sample(5, r1)
    t, y = c.sample(12, r2)
    npt.assert_array_equal(np.concatenate([t1, t2]), t)
    npt.assert_array_equal(np.concatenate([y1, y2]), y)


def test_labels_depend_only_on_earlier_tokens(rng):
    """all-past: y_j moves when any token i < j moves, and never when a token i >= j moves."""
    c = _concept(L=7)
    tokens, _ = c.sample(4, rng)
    base = c.labels(tokens)
    other, _ = c.sample(4, rng)
    for i in range(1, c.L):
        changed = tokens.copy()
        changed[:, i] = other[:, i]
        moved = np.abs(c.labels(changed) - base).max(axis=(0, 2))  # per output position
        npt.assert_array_equal(moved[: i + 1], 0.0)  # outputs j <= i ignore token i
        assert np.all(moved[i + 1 :] > 1e-8)  # outputs j > i use token i


def test_labels_match_the_formula(rng):
    """y_{j,s} = c_j sum_{i<j} sum_r b Phi_r(<w, x*_i>), written as plain loops."""
    c = _concept(L=5)
    tokens, Y = c.sample(3, rng)
    phis = {"sin": np.sin, "z2": np.square, "expm1": np.expm1}
    for n in range(3):
        for j in range(2, 5):
            for s in range(2):
                ref = sum(
                    c.b[j, i, r, s] * phis[c.links[r]](c.w[j, i, r, s] @ tokens[n, i])
                    for i in range(1, j)
                    for r in range(3)
                )
                npt.assert_allclose(Y[n, j, s], c.c[j] * ref, rtol=1e-12)
    npt.assert_allclose(np.linalg.norm(c.w[2:, 1:2], axis=-1), 1.0)  # w on the unit sphere
    assert np.all(np.abs(c.b) <= 1.0)


def _mean_label_var(L, normalization, n_concepts=6):
    out = []
    for seed in range(n_concepts):
        c = azl.sample(np.random.default_rng(seed), L=L, d_x=4, links=("sin",), normalization=normalization)
        _, Y = c.sample(2000, np.random.default_rng(100 + seed))
        out.append(Y[:, 2:].var(axis=0).mean())
    return float(np.mean(out))


def test_label_variance_is_bounded_in_L():
    """With the default c_j = 1/sqrt((j-1) p) the label scale does not drift with L."""
    v = [_mean_label_var(L, "sqrt") for L in (4, 16, 64)]
    assert max(v) / min(v) < 2.0, v
    grow = [_mean_label_var(L, "none") for L in (4, 64)]  # the unnormalised class does drift
    assert grow[1] / grow[0] > 5.0, grow


def test_label_noise_adds_its_variance():
    c0 = azl.sample(np.random.default_rng(0), L=4, d_x=4)
    c1 = azl.sample(np.random.default_rng(0), L=4, d_x=4, noise=0.5)
    t0, y0 = c0.sample(20000, np.random.default_rng(1))
    t1, y1 = c1.sample(20000, np.random.default_rng(1))
    npt.assert_array_equal(t0, t1)  # noise does not change the tokens
    npt.assert_allclose((y1 - y0)[:, 2:].var(), 0.25, rtol=0.05)
    npt.assert_array_equal(y1[:, :2], 0.0)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"L": 2}, "L >= 3"),
        ({"d_x": 1}, "d_x >= 2"),
        ({"links": ("tanh",)}, "unknown link"),
        ({"p": 2, "links": ("sin", "z2", "z3")}, "length 1 or p"),
        ({"b": "gauss"}, "uniform"),
        ({"normalization": "max"}, "sqrt"),
    ],
)
def test_sample_rejects_bad_parameters(kw, match):
    args = {"L": 4, "d_x": 3} | kw
    with pytest.raises(ValueError, match=match):
        azl.sample(np.random.default_rng(0), **args)
