"""decomp.*: the F and G coefficients of what a learner learned of H = beta F + alpha G(F)."""

import math

import numpy as np
import numpy.testing as npt
import pytest

from pacsim import concepts, decomp, train
from pacsim.config import RunSpec

#: Every family of the form beta F + alpha G(F), with settings that cover its variants.
COMPOSITE = [
    ("resnet", {}),
    ("resnet", {"links_G": ["sin"], "beta": 0.5}),
    ("resnet-parity", {}),
    ("resnet-parity", {"g": "shared"}),
    ("resnet-parity", {"version": "final", "alpha": 0.5}),
    ("resnet-hard", {"d": 4, "d_in": 16, "d1": 8}),
]
#: The other families: no additive F + alpha G(F) (the AZLL targets are products and
#: compositions of smooth neurons, the sequence families have no F and G at all).
PLAIN = ["azl", "pg21", "regular", "azll2", "azll3", "azll-exp"]


def test_the_composite_families_are_the_azl_resnet_ones():
    comp = {name for name, mod in concepts.FAMILIES.items()
            if issubclass(mod.CONCEPT, concepts.Composite)}
    assert comp == {f for f, _ in COMPOSITE} and set(PLAIN) == set(concepts.FAMILIES) - comp


def _draw(family, kw, n=2000, seed=0):
    c = concepts.make(concepts.FAMILIES[family].Config(**kw), np.random.default_rng(seed))
    X, _ = c.sample(n, np.random.default_rng(seed + 1))
    return c, X


@pytest.mark.parametrize("family, kw", COMPOSITE, ids=[f"{f}-{i}" for i, (f, _) in
                                                       enumerate(COMPOSITE)])
def test_decomposition_recovers_known_coefficients(family, kw):
    c, X = _draw(family, kw)
    F, aG = c.components(X)
    npt.assert_array_equal(c.beta * F + aG, c.labels(X))
    # The target itself: F_coef = beta, G_coef = 1, nothing outside the span. Least squares on
    # 2000 points in float64: rounding ~1e-13.
    out = decomp.decompose(F, aG, c.labels(X))
    npt.assert_allclose([out["decomp.F_coef"], out["decomp.G_coef"]], [c.beta, 1.0], atol=1e-9)
    assert out["decomp.rest_sse"] < 1e-20
    # f = a_r F_r + b_r alpha G_r + c_r + noise, per output, with known a, b, c.
    rng = np.random.default_rng(1)
    d = F.shape[1]
    a, b, const = rng.uniform(-1, 2, d), rng.uniform(-1, 2, d), rng.uniform(-1, 1, d)
    s = 0.1
    f = a * F + b * aG + const + s * rng.standard_normal(F.shape)
    out = decomp.decompose(F, aG, f)
    # The noise's projection on a signal of std >= alpha * std(G) ~ 0.1 from 2000 points moves
    # its coefficient by ~ s / (0.1 sqrt(2000)) ~ 0.02 at most; averaged over outputs, less.
    npt.assert_allclose(out["decomp.F_coef"], a.mean(), atol=0.02)
    npt.assert_allclose(out["decomp.G_coef"], b.mean(), atol=0.05)
    # What is left is the noise, s^2 per output, less 3 of 2000 degrees of freedom: 1% / sqrt(n).
    npt.assert_allclose(out["decomp.rest_sse"], d * s**2, rtol=0.1)


def test_a_constant_signal_has_no_coefficient_and_a_diverged_learner_none_at_all():
    c, X = _draw("resnet-parity", {"alpha": 0.0})
    F, aG = c.components(X)
    out = decomp.decompose(F, aG, 2 * F + 1)
    assert out["decomp.F_coef"] == pytest.approx(2.0) and math.isnan(out["decomp.G_coef"])
    bad = F.copy()
    bad[0, 0] = np.inf
    assert all(math.isnan(v) for v in decomp.decompose(F, aG, bad).values())
    with pytest.raises(ValueError, match="one shape"):
        decomp.decompose(F, aG, F[:, :2])


@pytest.mark.parametrize("family", PLAIN)
def test_other_families_have_no_components(family):
    c = concepts.make(concepts.FAMILIES[family].Config(), np.random.default_rng(0))
    X, _ = c.sample(4, np.random.default_rng(1))
    assert concepts.components(c, X) is None


def _row(concept, model, n=600, **train_keys):
    raw = {"concept": concept, "model": model,
           "train": {"protocol": "finite", "n_test": 500, **train_keys}}
    res = train.run(RunSpec.model_validate(raw), seed=3, lr=0.05, checkpoints=[n])
    assert res.status == "ok"
    return res.rows[0]


def test_runs_record_decomp_for_every_learner_and_only_for_composite_concepts():
    # A kernel on the parity target: least squares on the 466 multilinear monomials of degree
    # <= 2 holds F = (x1 x2, ...) and nothing of G (degree-8 parities, orthogonal to every
    # feature). From 2000 samples G acts as noise of variance alpha^2 per output, which moves
    # the fitted function by ~ alpha sqrt(466 / 2000) ~ 0.15 in norm, spread over 466
    # directions: the coefficients on F and G move by ~0.01 (measured 0.002 and 0.007).
    quad = {"kind": "linear", "degree": 2, "multilinear": True, "ridges": [0.0]}
    row = _row({"family": "resnet-parity"}, quad, n=2000)
    assert set(decomp.COLUMNS) <= set(row)
    npt.assert_allclose(row["decomp.F_coef"], 1.0, atol=0.03)
    npt.assert_allclose(row["decomp.G_coef"], 0.0, atol=0.03)
    # rest_sse is at most the test error against the labels (the span holds the labels).
    assert row["decomp.rest_sse"] <= row["test_sse"] * (1 + 1e-9)
    # An SGD learner gets the columns too.
    sgd = _row({"family": "resnet-parity"}, {"kind": "resnet", "m": 16}, n=100, epochs=1,
               lr_units="raw")
    assert all(np.isfinite(sgd[k]) for k in decomp.COLUMNS)
    # A concept not of the form: no decomp columns at all (not NaN columns).
    plain = _row({"family": "azll-exp"}, {"kind": "linear", "degree": 2}, n=100)
    assert not any(k.startswith("decomp.") for k in plain)
