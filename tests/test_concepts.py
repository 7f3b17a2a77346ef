"""The AZL concept: shapes, tokens, determinism, dependency structure of every variant, label
scale, the numbers of pacsim 0.1, and config errors."""

import numpy as np
import numpy.testing as npt
import pytest
from pydantic import ValidationError
from tolerance import assert_close

from pacsim.concepts import azl, complexity


def _concept(seed=0, **kw):
    args = {"L": 6, "d_x": 5, "d": 2, "p": 3, "links": ("sin", "z2", "expm1")} | kw
    return azl.sample(np.random.default_rng(seed), **args)


VARIANTS = [
    {"variant": "all-past"},
    {"variant": "all-past", "link_sharing": "independent"},
    {"variant": "lag-k", "k": 1},
    {"variant": "lag-k", "k": 3},
    {"variant": "first-token"},
    {"variant": "window-k", "k": 2},
]


def _reads(variant, k, L):
    """The claimed dependency structure: reads[j, i] = output j reads token i."""
    reads = np.zeros((L, L), dtype=bool)
    for j in range(L):
        for i in range(1, L):
            if variant == "all-past":
                reads[j, i] = 2 <= j and i < j
            elif variant == "lag-k":
                reads[j, i] = i == j - k
            elif variant == "first-token":
                reads[j, i] = j >= 2 and i == 1
            elif variant == "window-k":
                reads[j, i] = j >= 2 and max(1, j - k) <= i < j
    return reads


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
    assert (c.L, c.d_x, c.d, c.p) == (6, 5, 2, 3)


@pytest.mark.parametrize("kw", VARIANTS, ids=lambda kw: "-".join(map(str, kw.values())))
def test_variant_positions_and_unscored_zeros(kw, rng):
    c = _concept(L=7, **kw)
    _, Y = c.sample(20, rng)
    expected = np.flatnonzero(_reads(c.variant, c.k, 7).any(axis=1))
    npt.assert_array_equal(c.positions, expected)
    unscored = np.setdiff1d(np.arange(7), expected)
    npt.assert_array_equal(Y[:, unscored], 0.0)
    assert np.all(Y[:, expected].std(axis=0) > 0)


def test_sample_deterministic_by_seed():
    for kw in VARIANTS:
        a = _concept(seed=3, **kw).sample(20, np.random.default_rng(1))
        b = _concept(seed=3, **kw).sample(20, np.random.default_rng(1))
        c = _concept(seed=4, **kw).sample(20, np.random.default_rng(1))
        npt.assert_array_equal(a[1], b[1])
        assert not np.allclose(a[1], c[1])


@pytest.mark.parametrize("kw", VARIANTS, ids=lambda kw: "-".join(map(str, kw.values())))
def test_sample_is_nested_and_chunk_invariant(kw):
    """Drawing 7 then 5 samples gives exactly the first 12 samples of one draw."""
    c = _concept(noise=0.3, **kw)
    r1, r2 = np.random.default_rng(9), np.random.default_rng(9)
    t1, y1 = c.sample(7, r1)
    t2, y2 = c.sample(5, r1)
    t, y = c.sample(12, r2)
    npt.assert_array_equal(np.concatenate([t1, t2]), t)
    npt.assert_array_equal(np.concatenate([y1, y2]), y)


@pytest.mark.parametrize("kw", VARIANTS, ids=lambda kw: "-".join(map(str, kw.values())))
def test_dependency_structure_is_exactly_the_claimed_one(kw, rng):
    """Perturb token i: output j moves if and only if the variant says j reads i."""
    L = 8
    c = _concept(L=L, **kw)
    tokens, _ = c.sample(4, rng)
    base = c.labels(tokens)
    other, _ = c.sample(4, rng)
    reads = _reads(c.variant, c.k, L)
    for i in range(1, L):
        changed = tokens.copy()
        changed[:, i] = other[:, i]
        moved = np.abs(c.labels(changed) - base).max(axis=(0, 2))  # per output position
        npt.assert_array_equal(moved[~reads[:, i]], 0.0)  # tokens that must not matter
        assert np.all(moved[reads[:, i]] > 1e-8), (i, moved)  # tokens that must


def test_window_covering_everything_is_all_past():
    npt.assert_array_equal(azl.pairs("window-k", 9, 7), azl.pairs("all-past", 9))
    npt.assert_array_equal(azl.pairs("lag-k", 9, 1)[:, 1], np.arange(1, 8))


def test_labels_match_the_formula(rng):
    """y_{j,s} = c_j sum_{i in I(j)} sum_r b Phi(<w, x*_i>), written as plain loops."""
    phis = {"sin": np.sin, "z2": np.square, "expm1": np.expm1, "cosm1": lambda z: np.cos(z) - 1}
    for kw in ({}, {"variant": "window-k", "k": 2, "link_sharing": "independent",
                    "links": ("sin", "z2", "cosm1", "expm1"), "scale": 1.7}):
        c = _concept(L=5, **kw)
        tokens, Y = c.sample(3, rng)
        a = c.scale
        for n in range(3):
            for j in range(5):
                for s in range(2):
                    ref = sum(
                        c.b[q, r, s]
                        * phis[c.links[c.link_idx[q, r, s]]](a * (c.w[q, r, s] @ tokens[n, i]))
                        for q, (jj, i) in enumerate(c.pairs) if jj == j
                        for r in range(3)
                    )
                    # a sum of up to 12 O(1) terms (vectorised against loops): rounding
                    # ~1e-15 of the terms' size, and labels can cancel: relative to max |Y|
                    assert_close(Y[n, j, s], c.c[j] * ref, 1e-12, scale=np.abs(Y).max())
        npt.assert_allclose(np.linalg.norm(c.w, axis=-1), 1.0)  # w on the unit sphere (1e-7)
        assert np.all(np.abs(c.b) <= 1.0)
    assert len(set(c.link_idx.ravel())) > 1  # independent links: several links are used


def test_dense_and_pair_label_paths_agree(rng):
    c = _concept(L=7)
    assert c.legacy
    tokens, _ = c.sample(5, rng)
    # the same sums in two layouts (labels can cancel): relative to max |Y|
    assert_close(c._labels_pairs(tokens), c._labels_dense(tokens), 1e-12)


def test_all_past_numbers_unchanged_since_pacsim_0_1():
    """Pinned from pacsim 0.1 (dense draws and labels): existing configs keep their numbers.

    The pinned values came from one machine; NumPy's sin and the summation order vary with the
    CPU by a few ulp of the summed O(0.1) terms, so they are compared at 1e-12 of the largest
    label (any change of the draws changes them by O(1))."""
    c = azl.make(azl.Config(L=6, d_x=8), np.random.default_rng(0))
    _, Y = c.sample(37, np.random.default_rng(10))
    assert_close(Y[:2, 2:, 0], [
        [0.00956155845373908, -0.09967330742735835, -0.15048392560570792, 0.24412459207865808],
        [-0.03185049922685433, 0.01213128083934112, 0.2198905786570802, 0.06245792481756532],
    ], 1e-12)
    c = _concept(seed=1, noise=0.3)
    _, Y = c.sample(37, np.random.default_rng(11))
    assert_close(Y[0, 2:], [
        [-0.6625124072027585, -0.06683125751466251], [-0.05829372560982571, -0.31414523650888876],
        [-0.45767871665253307, 0.11448628143111388], [0.31555767346740726, 0.10289725874905012],
    ], 1e-12)


def _mean_label_var(L, normalization, n_concepts=6, n=1000, **kw):
    out = []
    for seed in range(n_concepts):
        c = azl.sample(np.random.default_rng(seed), L=L, d_x=4, links=("sin",),
                       normalization=normalization, **kw)
        _, Y = c.sample(n, np.random.default_rng(100 + seed))
        out.append(Y[:, c.positions].var(axis=0).mean())
    return float(np.mean(out))


def test_label_variance_is_bounded_in_L():
    """With the default c_j = 1/sqrt(|I(j)| p) the label scale does not drift with L."""
    v = [_mean_label_var(L, "sqrt") for L in (4, 16, 48)]
    assert max(v) / min(v) < 2.0, v
    grow = [_mean_label_var(L, "none") for L in (4, 48)]  # the unnormalised class does drift
    assert grow[1] / grow[0] > 5.0, grow
    lag = [_mean_label_var(L, "none", variant="lag-k", k=2) for L in (4, 48)]  # one term: flat
    assert max(lag) / min(lag) < 2.0, lag


def test_label_scale_is_the_documented_one():
    """Var_x(y_j) = (1/p) sum_r E[b^2] E_w[Var_x Phi(<w, x*>)] = E_w[Var_x sin(<w, x*>)] / 3
    for b ~ U[-1, 1] (independent of j and L), against an independent Monte Carlo of one term."""
    r = np.random.default_rng(5)
    w = r.standard_normal((500, 4))
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    u = r.standard_normal((4000, 3))
    x = np.concatenate([np.sqrt(3) / 2 * u / np.linalg.norm(u, axis=1, keepdims=True),
                        np.full((4000, 1), 0.5)], axis=1)
    one_term = np.mean(np.var(np.sin(w @ x.T), axis=1)) / 3.0
    # two Monte Carlo estimates (12 concepts; 500 directions x 4000 tokens): the concepts'
    # spread of ~20% per draw gives a standard error ~6%, so 15% is ~2.5 of it; fixed seeds
    npt.assert_allclose(_mean_label_var(12, "sqrt", n_concepts=12), one_term, rtol=0.15)


def test_label_noise_adds_its_variance():
    c0 = azl.sample(np.random.default_rng(0), L=4, d_x=4)
    c1 = azl.sample(np.random.default_rng(0), L=4, d_x=4, noise=0.5)
    t0, y0 = c0.sample(20000, np.random.default_rng(1))
    t1, y1 = c1.sample(20000, np.random.default_rng(1))
    npt.assert_array_equal(t0, t1)  # noise does not change the tokens
    # variance of 20000 x 2 x 2 Gaussian draws: relative standard error sqrt(2 / 8e4) = 0.5%
    npt.assert_allclose((y1 - y0)[:, 2:].var(), 0.25, rtol=0.05)
    npt.assert_array_equal(y1[:, :2], 0.0)


def test_info_records_the_theorem_complexities():
    c = azl.make(azl.Config(L=16, links=["sin", "z3"], p=2), np.random.default_rng(0))
    info = c.info()
    R = 4.0  # the same functions on the same arguments: approx's rel 1e-6 is plenty
    assert info["log10_C_eps"] == pytest.approx(max(
        complexity.log10_C_eps("sin", R), complexity.log10_C_eps("z3", R)))
    assert info["log10_C_s"] == pytest.approx(complexity.log10_C_s("z3", R))
    assert info["log10_C_s_shape"] == pytest.approx(max(
        complexity.log10_C_s("sin", R, C_star=1), complexity.log10_C_s("z3", R, C_star=1)))
    assert info["complexity_note"] == "" and info["complexity_R"] == R
    assert all(isinstance(v, float | int | str) for v in info.values())
    scaled = azl.make(azl.Config(L=16, scale=3.0), np.random.default_rng(0)).info()
    assert scaled["log10_C_s"] == pytest.approx(complexity.log10_C_s("sin", 3 * R))


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"L": 2}, "L >= 3"),
        ({"d_x": 1}, "d_x >= 2"),
        ({"links": ("tanh",)}, "unknown link"),
        ({"p": 2, "links": ("sin", "z2", "z3")}, "length 1 or p"),
        ({"b": "gauss"}, "uniform"),
        ({"normalization": "max"}, "sqrt"),
        ({"variant": "lag-k", "k": 3}, "L >= k \\+ 2"),
        ({"variant": "future"}, "variant must be"),
        ({"link_sharing": "some"}, "link_sharing"),
    ],
)
def test_sample_rejects_bad_parameters(kw, match):
    args = {"L": 4, "d_x": 3} | kw
    with pytest.raises(ValueError, match=match):
        azl.sample(np.random.default_rng(0), **args)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"variant": "lag-k", "k": 7, "L": 8}, 'variant "lag-k" with k = 7 needs L >= k \\+ 2 = 9'),
        ({"links": ["sin", "z2"], "p": 3}, "links has 2 entries"),
        ({"links": ["tanh"]}, "Input should be 'z2'"),
        ({"variant": "lag"}, "Input should be 'all-past'"),
        ({"scale": 0.0}, "greater than 0"),
    ],
)
def test_config_rejects_bad_values_with_clear_messages(kw, match):
    with pytest.raises(ValidationError, match=match):
        azl.Config(**kw)


def test_config_independent_links_accept_any_menu_length():
    cfg = azl.Config(p=2, links=["sin", "z2", "cosm1"], link_sharing="independent")
    assert cfg.links == ("sin", "z2", "cosm1")
