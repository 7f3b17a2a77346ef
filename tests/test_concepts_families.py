"""Every concept family: shapes, determinism, nestedness, save/load, info; then the PG21,
regular-language, AZL-ResNet and AZLL families one by one (formulas, label scales, membership
against independent automata, balanced sampling).

Tolerances: unit norms and exact constructions (a few roundings) use NumPy's default rtol 1e-7;
label formulas written out are compared at 1e-12 of the largest label (sums that can cancel,
tests/tolerance.py); Monte Carlo moments over 4000-20000 samples (standard errors of 1-3%) at
5-10%, with fixed seeds; exact equalities only for the same draws or the same code."""

import itertools
import math
import re

import numpy as np
import numpy.testing as npt
import pytest
from pydantic import ValidationError
from tolerance import assert_close

from pacsim import concepts
from pacsim.concepts import (
    FAMILIES,
    Concept,
    azll2,
    azll3,
    azll_exp,
    complexity,
    pg21,
    regular,
    resnet,
    resnet_hard,
    resnet_parity,
)

#: A small config per family (and per interesting variant).
SMALL = {
    "azl": {"L": 6, "d_x": 4, "d": 2, "noise": 0.1},
    "azl-lag": {"family": "azl", "variant": "lag-k", "k": 2, "L": 6, "d_x": 4},
    "pg21": {"L": 6, "d_x": 4, "d": 2, "p": 3, "links": ["sin", "z2", "expm1"], "noise": 0.1},
    "regular": {"language": "tomita3", "L": 9},
    "regular-uniform": {"family": "regular", "language": "contains", "pattern": "0110", "L": 8,
                        "sampling": "uniform", "d_x": 5},
    "resnet": {"d_in": 6, "d": 3, "p_F": 2, "p_G": 3, "links_G": ["z2", "sin", "tanh"],
               "noise": 0.1},
    "resnet-hard": {"d_in": 10, "d1": 8, "d": 3, "noise": 0.1},
    "resnet-parity": {"version": "final", "noise": 0.1},
    "azll2": {"d_in": 5, "d": 2, "p": 3, "noise": 0.1},
    "azll3": {"d_in": 5, "d": 2, "p1": 2, "p2": 3, "links_outer": ["z2", "sin"], "noise": 0.1},
    "azll-exp": {"target": "tanh", "noise": 0.1},
}


def _cfg(key, **kw):
    raw = {"family": key} | SMALL[key] | kw
    return FAMILIES[raw["family"]].Config.model_validate(raw)


def _make(key, seed=0, **kw):
    return concepts.make(_cfg(key, **kw), np.random.default_rng(seed))


def test_every_family_is_registered_with_its_contract():
    for name, mod in FAMILIES.items():
        assert mod.KIND in ("sequence", "vector"), name
        assert mod.Config.model_fields["family"].default == name
        assert mod.CONCEPT.family == name and mod.CONCEPT.kind == mod.KIND
        for attr in ("SUMMARY", "FORMULA", "SOURCE", "LABEL_SCALE"):
            assert getattr(mod, attr), (name, attr)
    assert {key if key in FAMILIES else SMALL[key]["family"] for key in SMALL} == set(FAMILIES)


@pytest.mark.parametrize("key", SMALL)
def test_shapes_and_contract(key, rng):
    c = _make(key)
    assert isinstance(c, Concept)
    X, Y = c.sample(40, rng)
    if c.kind == "sequence":
        assert X.shape == (40, c.L, c.d_x) and Y.shape == (40, c.L, c.d)
        npt.assert_array_equal(X[:, 0], 0.0)  # the start position carries no token
        unscored = np.setdiff1d(np.arange(c.L), c.positions)
        npt.assert_array_equal(Y[:, unscored], 0.0)
        norms = np.linalg.norm(X[:, 1:], axis=-1)
        npt.assert_allclose(norms[norms > 0], 1.0)  # tokens: unit vectors, last coordinate 1/2
        npt.assert_array_equal(X[:, 1:, -1][norms > 0], 0.5)
    else:
        assert c.positions is None
        assert X.shape == (40, c.d_in) and Y.shape == (40, c.d)
    assert concepts.scored(c, Y).shape == (40, concepts.n_scored(c), c.d)
    assert np.all(np.isfinite(Y)) and np.all(concepts.scored(c, Y).std(axis=0) > 0)


@pytest.mark.parametrize("key", SMALL)
def test_deterministic_by_seed(key):
    a = _make(key, seed=3).sample(30, np.random.default_rng(1))
    b = _make(key, seed=3).sample(30, np.random.default_rng(1))
    npt.assert_array_equal(a[0], b[0])
    npt.assert_array_equal(a[1], b[1])
    c = _make(key, seed=3).sample(30, np.random.default_rng(2))
    assert not np.array_equal(a[1], c[1])  # other data stream, other samples
    if key not in ("regular", "regular-uniform", "resnet-parity", "azll-exp"):  # random targets
        d = _make(key, seed=4).sample(30, np.random.default_rng(1))
        assert not np.allclose(a[1], d[1])


@pytest.mark.parametrize("key", SMALL)
def test_sample_is_nested(key):
    """Drawing 7 then 5 samples gives exactly the first 12 samples of one draw."""
    c = _make(key)
    r1, r2 = np.random.default_rng(9), np.random.default_rng(9)
    x1, y1 = c.sample(7, r1)
    x2, y2 = c.sample(5, r1)
    x, y = c.sample(12, r2)
    npt.assert_array_equal(np.concatenate([x1, x2]), x)
    npt.assert_array_equal(np.concatenate([y1, y2]), y)


@pytest.mark.parametrize("key", SMALL)
def test_labels_are_the_noise_free_part(key, rng):
    c = _make(key, noise=0.0) if "noise" in type(_cfg(key)).model_fields else _make(key)
    X, Y = c.sample(25, rng)
    npt.assert_array_equal(c.labels(X), Y)


@pytest.mark.parametrize("key", SMALL)
def test_save_load_round_trip(key, tmp_path, rng):
    c = _make(key, seed=5)
    path = concepts.save(c, tmp_path / "target")
    assert path.name == "target.npz"
    back = concepts.load(path)
    assert type(back) is type(c) and back.cfg == c.cfg
    assert concepts.fingerprint(back) == concepts.fingerprint(c)
    X, _ = c.sample(20, rng)
    npt.assert_array_equal(back.labels(X), c.labels(X))
    assert back.info() == c.info()
    # and the run's seed regenerates the same target
    again = concepts.regenerate(c.cfg, 11)
    assert concepts.fingerprint(again) == concepts.fingerprint(concepts.regenerate(c.cfg, 11))


def test_fingerprint_tells_targets_apart():
    assert concepts.fingerprint(_make("azl", 0)) != concepts.fingerprint(_make("azl", 1))
    assert concepts.fingerprint(_make("regular")) != concepts.fingerprint(
        _make("regular", language="tomita4"))


@pytest.mark.parametrize("key", SMALL)
def test_info_is_scalars(key):
    info = _make(key).info()
    assert info and all(isinstance(v, float | int | str) for v in info.values()), info
    assert len(info["fingerprint"]) == 16


# PG21


def test_pg21_formula_layout_and_scale(rng):
    c = _make("pg21")
    X, Y = c.sample(6, rng)
    npt.assert_array_equal(c.positions, [c.L - 1])
    npt.assert_array_equal(X[:, -1], 0.0)  # end position: no token
    fns = {"sin": np.sin, "z2": np.square, "expm1": np.expm1}
    flat_w = c.w.reshape(c.w.shape[0], c.d, -1)
    npt.assert_allclose(np.linalg.norm(flat_w, axis=-1), 1.0)  # unit over the concatenation
    labels = c.labels(X)
    for n, s in itertools.product(range(6), range(c.d)):
        z = X[n, 1:-1].ravel()  # the concatenated tokens
        ref = sum(c.b[r, s] * fns[c.links[r]](flat_w[r, s] @ z) for r in range(3)) / math.sqrt(3)
        # three O(1) terms summed (vectorised against a loop); labels can cancel: relative to
        # the largest label
        assert_close(labels[n, -1, s], ref, 1e-12, scale=np.abs(labels).max())
    assert np.std(Y[:, -1] - labels[:, -1]) > 0  # noise = 0.1 on the scored output only


def test_pg21_every_token_matters(rng):
    c = _make("pg21", noise=0.0)
    X, _ = c.sample(3, rng)
    other, _ = c.sample(3, rng)
    base = c.labels(X)[:, -1]
    for i in range(1, c.L - 1):
        changed = X.copy()
        changed[:, i] = other[:, i]
        assert np.all(np.abs(c.labels(changed)[:, -1] - base).max(axis=1) > 1e-8)


def test_pg21_label_scale_does_not_drift_with_L():
    v = []
    for L in (4, 16, 64):
        var = [pg21.make(pg21.Config(L=L, d_x=4), np.random.default_rng(s)).sample(
            2000, np.random.default_rng(50 + s))[1][:, -1].var() for s in range(8)]
        v.append(np.mean(var))
    assert max(v) / min(v) < 2.0, v


# Regular languages

#: Independent definitions (regular expressions and counts), not the DFAs of the module.
_NOT_T3 = re.compile("((0|1)*0)*1(11)*(0(0|1)*1)*0(00)*(1(0|1)*)*$")  # Weiss et al.'s regex
REFERENCE = {
    "exactly-one": lambda z: z.count("1") == 1,
    "contains": lambda z: "0110" in z,
    "parity": lambda z: z.count("1") % 2 == 1,
    "tomita1": lambda z: re.fullmatch("1*", z) is not None,
    "tomita2": lambda z: re.fullmatch("(10)*", z) is not None,
    "tomita3": lambda z: _NOT_T3.match(z) is None,
    "tomita4": lambda z: "000" not in z,
    "tomita5": lambda z: z.count("0") % 2 == 0 and z.count("1") % 2 == 0,
    "tomita6": lambda z: (z.count("0") - z.count("1")) % 3 == 0,
    "tomita7": lambda z: re.fullmatch("0*1*0*1*", z) is not None,
}


@pytest.mark.parametrize("language", regular.LANGUAGES)
def test_membership_matches_an_independent_definition(language):
    """Every string of length 1..12: the concept's DFA agrees with a regex / counting rule."""
    for ell in range(1, 13):
        c = regular.make(regular.Config(language=language, pattern="0110", L=ell + 2,
                                        sampling="uniform"), None)
        Z = np.array(list(itertools.product((0, 1), repeat=ell)))
        got = c.member(Z)
        want = np.array([REFERENCE[language]("".join(map(str, z))) for z in Z])
        npt.assert_array_equal(got, want, err_msg=f"{language}, length {ell}")
        assert regular.class_sizes(language, ell, "0110") == (want.sum(), (~want).sum())
        # the labels of embedded strings are +-1 at the end position, via the tokens
        Y = c.labels(c.embed(Z))
        npt.assert_array_equal(Y[:, -1, 0], np.where(want, 1.0, -1.0))


def test_tomita3_reads_later_blocks():
    member = regular.dfa("tomita3").accepts
    assert member("1001") and member("11011") and member("0100")
    assert not member("10") and not member("1001101") and not member("1100010")


@pytest.mark.parametrize("language, L", [("tomita3", 6), ("tomita1", 9), ("exactly-one", 12),
                                         ("tomita2", 10), ("parity", 40), ("tomita6", 7)])
def test_balanced_sampling_balances_classes_and_is_uniform_within(language, L):
    c = regular.make(regular.Config(language=language, L=L), None)
    n = 6000
    X, Y = c.sample(n, np.random.default_rng(0))
    y = Y[:, -1, 0]
    assert set(np.unique(y)) == {-1.0, 1.0}
    assert abs(y.mean()) < 4 / math.sqrt(n)  # balanced (4 sigma)
    Z = c.strings(X)
    npt.assert_array_equal(c.member(Z), y > 0)
    members, non = regular.class_sizes(language, L - 2)
    for cls, size in ((True, members), (False, non)):
        if size > 64:
            continue
        codes = Z[(y > 0) == cls] @ (1 << np.arange(L - 2))
        counts = np.bincount(codes, minlength=2 ** (L - 2))[np.unique(codes)]
        assert len(counts) == size  # every string of the class occurs ...
        expected = (n / 2) / size  # ... about equally often
        assert np.all(np.abs(counts - expected) < 5 * math.sqrt(expected) + 2), (cls, counts)


def test_uniform_sampling_follows_the_natural_proportion():
    c = regular.make(regular.Config(language="tomita4", L=12, sampling="uniform"), None)
    _, Y = c.sample(8000, np.random.default_rng(1))
    frac = c.info()["member_fraction_uniform"]
    assert frac == regular.class_sizes("tomita4", 10)[0] / 2**10
    assert abs((Y[:, -1, 0] > 0).mean() - frac) < 4 * math.sqrt(frac * (1 - frac) / 8000)


@pytest.mark.parametrize("language, L, empty", [
    ("tomita2", 5, "members"), ("tomita7", 5, "non-members"),
    ("tomita6", 3, "members"), ("contains", 4, "members"),
])
def test_balanced_sampling_refuses_lengths_with_an_empty_class(language, L, empty):
    with pytest.raises(ValidationError, match=f"has no {empty} of length {L - 2}"):
        regular.Config(language=language, L=L, pattern="0110")
    regular.Config(language=language, L=L, pattern="0110", sampling="uniform")  # allowed


def test_regular_embedding_and_pattern_validation():
    c = _make("regular-uniform")
    X = c.embed(np.array([[0, 1, 1, 0, 1, 0]]))
    npt.assert_allclose(X[0, 1, :2], [math.sqrt(3) / 2, 0.0])
    npt.assert_allclose(X[0, 2, :2], [0.0, math.sqrt(3) / 2])
    npt.assert_array_equal(X[0, 1:-1, 2:-1], 0.0)
    assert c.labels(X)[0, -1, 0] == 1.0  # contains 0110
    with pytest.raises(ValidationError, match="pattern"):
        regular.Config(language="contains", pattern="012")


# AZL-ResNet


def test_resnet_concept_normalisation_and_formula(rng):
    c = _make("resnet", noise=0.0)
    npt.assert_allclose(np.linalg.norm(c.w, axis=-1), 1 / math.sqrt(2))
    npt.assert_allclose(np.linalg.norm(c.v, axis=-1), 1 / math.sqrt(2))
    X, Y = c.sample(20000, rng)
    npt.assert_allclose(np.linalg.norm(X, axis=1), 1.0)
    F = c.F(X)
    assert np.mean(np.sum(F**2, axis=1)) == pytest.approx(1.0, rel=0.1)  # E||F||^2 = 1
    assert_close(Y, c.beta * F + c.alpha * c.G(F), 1e-12)  # sums of O(1) terms: to the scale
    fns = {"z2": np.square, "sin": np.sin, "tanh": np.tanh}
    x, f = X[0], F[0]
    for r in range(c.d):
        ref_F = c.c_F * sum(c.a_F[r, i] * np.sin(c.w[r, i] @ x) for i in range(2))
        ref_G = sum(c.a_G[r, i] * fns[c.links_G[i]](c.v[r, i] @ f) for i in range(3))
        assert_close(Y[0, r], ref_F + 0.3 * ref_G, 1e-12, scale=np.abs(Y).max())
    info = c.info()
    assert info["G_log10_C_eps"] == math.inf and "tanh" in info["G_complexity_note"]
    assert info["F_log10_C_s"] == pytest.approx(complexity.log10_C_s("sin", 1, variant="resnet"))


def test_resnet_hard_instance(rng):
    c = _make("resnet-hard", noise=0.0)
    assert len(set(c.idx)) == 3 and np.all(c.idx < 8)
    X, Y = c.sample(4000, rng)
    npt.assert_allclose(np.abs(X), 1 / math.sqrt(10))
    # +-1 +- 0.3 up to rounding (~1e-16), rounded to 12 digits before counting the values
    npt.assert_allclose(np.sort(np.unique(np.round(Y, 12))), [-1.3, -0.7, 0.7, 1.3])
    assert np.mean(Y**2) == pytest.approx(1.0**2 + 0.3**2, rel=0.05)  # exact up to the mix
    # only the chosen coordinates matter
    for i in range(10):
        flipped = X.copy()
        flipped[:, i] *= -1
        moved = np.abs(c.labels(flipped) - Y).max()
        assert (moved > 0) == (i in c.idx), i
    info = c.info()
    assert info["kernel_n_bound"] == math.comb(8, 3) / 1000
    assert info["kernel_error_floor"] == pytest.approx(0.09 / 16)
    with pytest.raises(ValidationError, match="need d <= d1 <= d_in"):
        resnet_hard.Config(d_in=10, d1=12)


@pytest.mark.parametrize("version, k, g", [("v2", 8, None), ("final", 15, None),
                                           ("v2", 8, "shared"), ("final", 15, "cyclic")])
def test_resnet_parity_experiment(version, k, g, rng):
    c = resnet_parity.make(resnet_parity.Config(version=version, g=g), None)
    X, Y = c.sample(4000, rng)
    assert X.shape == (4000, 30) and Y.shape == (4000, k) and set(np.unique(X)) == {-1.0, 1.0}
    F = X[:, 0 : 2 * k : 2] * X[:, 1 : 2 * k : 2]
    npt.assert_array_equal(c.F(X), F)
    cyclic = (g or {"v2": "cyclic", "final": "shared"}[version]) == "cyclic"
    assert c.info()["g"] == ("cyclic" if cyclic else "shared")
    if cyclic:  # v2, pacsim's documented choice: y_r y_{r+1} y_{r+2} y_{r+3}, mod k
        G0 = F[:, 0] * F[:, 1] * F[:, 2] * F[:, 3]
        Glast = F[:, k - 1] * F[:, 0] * F[:, 1] * F[:, 2]
        npt.assert_array_equal(c.G(F)[:, 0], G0)
        npt.assert_array_equal(c.G(F)[:, k - 1], Glast)
    else:  # final: G_i = (-1)^i y1 y2 y3 y4, i = 1..k
        npt.assert_array_equal(c.G(F)[:, 0], -F[:, 0] * F[:, 1] * F[:, 2] * F[:, 3])
        npt.assert_array_equal(c.G(F)[:, 1], F[:, 0] * F[:, 1] * F[:, 2] * F[:, 3])
        npt.assert_array_equal(c.G(F)[:, k - 1], (-1) ** k * F[:, 0] * F[:, 1] * F[:, 2] * F[:, 3])
    # the "G not learned" floor: predicting beta F leaves exactly k alpha^2
    npt.assert_allclose(np.sum((Y - F) ** 2, axis=1), k * 0.09)
    assert c.info()["floor_G_not_learned"] == pytest.approx(k * 0.09)
    assert np.mean(np.sum(Y**2, axis=1)) == pytest.approx(k * 1.09, rel=0.02)


# AZLL


def test_azll2_formula_scale_and_forms(rng):
    c = _make("azll2", noise=0.0)
    X, Y = c.sample(20000, rng)
    npt.assert_allclose(np.linalg.norm(X, axis=1), 1.0)
    npt.assert_array_equal(X[:, -1], 0.5)
    assert np.mean(Y**2) == pytest.approx(1.0, rel=0.1)  # normalize = "unit"
    ref = c.c * sum(c.a[:, i] * np.sin(X[:5] @ c.w1[i])[:, None] * (X[:5] @ c.w2[i])[:, None]
                    for i in range(3))
    assert_close(Y[:5], ref, 1e-12)  # sums of products of O(1) terms: to the scale
    std = azll2.make(azll2.Config(form="standard", normalize="none"), np.random.default_rng(0))
    npt.assert_array_equal(std.w2[:, -1], 1.0)
    x, y = std.sample(5, rng)
    assert_close(y[:, 0], 0.5 * np.sin(x @ std.w1.T) @ std.a[0], 1e-12)
    assert c.info()["log10_C_s"] == pytest.approx(complexity.log10_C_s("sin", 1.0))


def test_azll3_formula_scale_and_complexity(rng):
    c = _make("azll3", noise=0.0)
    X, Y = c.sample(20000, rng)
    assert np.mean(Y**2) == pytest.approx(1.0, rel=0.1)
    x = X[:3]
    u = np.sin(x @ c.w1.T) @ c.v1.T
    g = np.sin(x @ c.w2.T) @ c.v2.T
    outer = np.stack([u[:, 0] ** 2, np.sin(u[:, 1])], axis=1)
    assert_close(Y[:3], c.c * (outer * g) @ c.a.T, 1e-12)  # sums that can cancel: to the scale
    npt.assert_allclose(np.linalg.norm(c.v1, axis=1), 1.0)
    info = c.info()
    # outer sin at radius sqrt(3) C_eps(sin, 1) ~ 10^4343: astronomically large -> inf, noted
    assert info["outer_log10_C_eps"] == math.inf and info["outer_complexity_note"]
    poly = azll3.make(azll3.Config(p2=3), np.random.default_rng(0)).info()
    inner = complexity.log10_C_eps("sin", 1.0, C_star=1.0)
    R_shape = math.sqrt(3) * 10**inner
    assert poly["outer_log10_C_eps_shape"] == pytest.approx(
        complexity.log10_C_eps("z2", R_shape, C_star=1.0), rel=1e-10)
    assert math.isfinite(poly["outer_log10_C_eps"]) and poly["outer_complexity_note"] == ""
    with pytest.raises(ValidationError, match="links_outer has 3 entries"):
        azll3.Config(p1=2, links_outer=["z2", "z2", "z2"])


@pytest.mark.parametrize("target, mean_sq", [("sincos", 31.0), ("tanh", 76.7)])
def test_azll_experiment_targets(target, mean_sq, rng):
    c = azll_exp.make(azll_exp.Config(target=target), None)
    X, Y = c.sample(20000, rng)
    npt.assert_allclose(np.linalg.norm(X, axis=1), 1.0)
    # E y^2 of AZLL's experiment targets (arXiv 1811.04918, Figs. 1-2), computed independently
    # (31.2 and 76.8); a Monte Carlo mean of 20000 heavy-tailed y^2: standard error ~1-2%
    assert np.mean(Y**2) == pytest.approx(mean_sq, rel=0.05)
    x = np.array([[0.5, -0.5, 0.5, 0.5]])
    f = (np.sin, np.cos, 3, 7) if target == "sincos" else (np.tanh, np.tanh, 8, 8)
    want = (f[0](f[2] * 0.5) - f[0](f[2] * 0.5) + f[0](f[2] * 0.5) - 2) ** 2 * f[1](f[3] * 0.5)
    assert c.labels(x)[0, 0] == pytest.approx(want, rel=1e-12)  # no cancellation at this x
    info = c.info()
    if target == "tanh":
        assert info["phi1_log10_C_s"] == math.inf
        assert "finite Taylor radius" in info["phi1_complexity_note"]
    else:
        assert info["phi2_log10_C_s"] == pytest.approx(complexity.log10_C_s(("cos", 7.0), 1.0))
        assert math.isfinite(info["outer_log10_C_eps"])


def test_feed_forward_families_accept_finite_radius_links_but_rnn_families_do_not():
    resnet.Config(links_F=["tanh"])
    azll2.Config(links=["sigmoid"])
    with pytest.raises(ValidationError, match="Input should be 'z2'"):
        pg21.Config(links=["tanh"])
