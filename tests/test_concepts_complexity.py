"""Complexity measures: closed forms for z^q, series against direct evaluation for sin and exp,
values computed independently from the definitions (Allen-Zhu, Li & Liang, arXiv 1811.04918,
as restated in Panigrahi & Goyal, arXiv 2106.00047, Def. 2.1; the (i+1) variant of Allen-Zhu &
Li, arXiv 1905.10337) and their orderings, finite-radius links, and links.

Tolerances: the series have positive terms (|c_i| times positive weights), so a sum of n terms
is exact to ~n eps relative: rel 1e-12 for n <= 2e4. Reference values given to 2-3
significant figures are compared at their rounding."""

import math

import numpy as np
import numpy.testing as npt
import pytest

from pacsim.concepts import complexity as cx
from pacsim.concepts import links


@pytest.mark.parametrize("q", [1, 2, 3, 5])
@pytest.mark.parametrize("R, eps, C_star", [(1.0, 0.01, 1.0), (3.0, 1e-4, 1e4), (0.5, 0.1, 2.0)])
def test_closed_forms_for_powers(q, R, eps, C_star):
    """z^q: C_eps = (C* R)^q (1 + (log(1/eps)/q)^{q/2}), C_s = C* (q+1)^1.75 R^q, and the ResNet
    variant C* (q+1) R^q."""
    K = C_star * R
    c_eps = K**q * (1 + (math.log(1 / eps) / q) ** (q / 2))
    assert cx.log10_C_eps(f"z{q}", R, eps, C_star) == pytest.approx(math.log10(c_eps), rel=1e-12)
    assert cx.C_s(f"z{q}", R, C_star) == pytest.approx(C_star * (q + 1) ** 1.75 * R**q, rel=1e-12)
    assert cx.C_s(f"z{q}", R, C_star, "resnet") == pytest.approx(C_star * (q + 1) * R**q, rel=1e-12)


def _direct(coef, weight, n_terms=120):
    """A plain Python sum of weight(i) * |c_i| with exact factorials."""
    return sum(weight(i) * abs(coef(i)) for i in range(n_terms))


def _sin_coef(i):
    return 0.0 if i % 2 == 0 else (-1) ** (i // 2) / math.factorial(i)


def _expm1_coef(i):
    return 0.0 if i == 0 else 1 / math.factorial(i)


@pytest.mark.parametrize("name, coef", [("sin", _sin_coef), ("expm1", _expm1_coef)])
@pytest.mark.parametrize("R, C_star, eps", [(1.0, 1.0, 0.01), (2.5, 3.0, 1e-3), (0.3, 10.0, 0.2)])
def test_series_match_direct_evaluation(name, coef, R, C_star, eps):
    K, s = C_star * R, math.sqrt(math.log(1 / eps))
    c_eps = _direct(coef, lambda i: K**i + ((s / math.sqrt(i) * K) ** i if i else 1.0))
    c_s = C_star * _direct(coef, lambda i: (i + 1) ** 1.75 * R**i)
    c_s_res = C_star * _direct(coef, lambda i: (i + 1) * R**i)
    assert cx.C_eps(name, R, eps, C_star) == pytest.approx(c_eps, rel=1e-12)
    assert cx.C_s(name, R, C_star) == pytest.approx(c_s, rel=1e-12)
    assert cx.C_s(name, R, C_star, "resnet") == pytest.approx(c_s_res, rel=1e-12)


@pytest.mark.parametrize("name, closed", [
    ("sin", lambda K: K - math.log(2)),  # sum K^i |c_i| = sinh K
    ("expm1", lambda K: K),  # e^K - 1
    ("cosm1", lambda K: K - math.log(2)),  # cosh K - 1
])
def test_entire_series_summed_to_convergence_at_large_radius(name, closed):
    """eps = 1 keeps only the first C_eps term: sum (C* R)^i |c_i|, a closed form. At C* R = 2e4
    the sum needs ~2e4 terms, in log space (the value is about 10^8686)."""
    K = 2e4
    assert cx.log10_C_eps(name, 2.0, eps=1.0, C_star=1e4) == pytest.approx(closed(K) / math.log(10),
                                                                           rel=1e-12)


@pytest.mark.parametrize("name, fn", [("sin", np.sin), ("expm1", np.expm1),
                                      ("cosm1", lambda z: np.cos(z) - 1), ("cos", np.cos),
                                      ("z3", lambda z: z**3)])
def test_taylor_coefficients_reproduce_the_function(name, fn):
    z = np.linspace(-2.5, 2.5, 11)
    c = cx.series(name).coef(np.arange(40))
    # 40 terms of size <= e^2.5 = 12 (alternating for sin/cos): rounding ~1e-14, truncation
    # 2.5^40/40! ~ 1e-32; NumPy's sin/expm1 within an ulp of <= 12
    npt.assert_allclose(np.polynomial.polynomial.polyval(z, c), fn(z), atol=1e-12)


def test_worked_values_of_the_research_notes():
    """Values computed independently from the definitions (C* = 1, R = 1): C_s with
    (i+1)^1.75 (arXiv 1811.04918), C_s with (i+1) (arXiv 1905.10337), C_eps at eps = 1e-2 and
    1e-4, C_eps at eps = 1e-2 with C* = 2; given to 3 significant figures, hence 2%."""
    table = {
        "sin": (5.45, 2.72, 3.65, 5.15, 10.7),
        "cos": (5.16, 2.72, 3.75, 5.07, 10.3),
        "expm1": (9.61, 4.44, 5.40, 8.22, 19.0),
        "z3": (11.3, 4.0, 2.90, 6.38, 23.2),
        ("sin", 3.0): (127.5, 40.2, 26.8, 53.9, 350),
        ("cos", 7.0): (2.24e4, 4.39e3, 830, 2.09e3, 6.1e5),
    }
    for phi, want in table.items():
        got = (cx.C_s(phi, 1, 1), cx.C_s(phi, 1, 1, "resnet"), cx.C_eps(phi, 1, 1e-2, 1),
               cx.C_eps(phi, 1, 1e-4, 1), cx.C_eps(phi, 1, 1e-2, 2))
        npt.assert_allclose(got, want, rtol=0.02, err_msg=str(phi))


def test_log10_values_computed_independently():
    """log10 C_eps / C_s at eps = 0.01, R = sqrt(L) (the radius pacsim's AZL concepts record as
    complexity_R), computed independently to one decimal: abs 0.06."""
    rows = {  # (phi, C*) -> [(C_eps, C_s) at L = 4, 16, 64, 256]
        ("z2", 1e4): [(9.1, 5.4), (9.7, 6.0), (10.3, 6.6), (10.9, 7.2)],
        ("z3", 1e4): [(13.4, 6.0), (14.3, 6.9), (15.2, 7.8), (16.1, 8.7)],
        ("sin", 1.0): [(1.0, 1.5), (1.8, 2.7), (3.3, 4.9), (6.7, 8.8)],
        ("expm1", 1.0): [(1.3, 1.8), (2.1, 3.0), (3.6, 5.2), (7.0, 9.1)],
    }
    for (phi, cs), want in rows.items():
        for L, (e, s) in zip((4, 16, 64, 256), want, strict=True):
            R = math.sqrt(L)
            assert cx.log10_C_eps(phi, R, 0.01, cs) == pytest.approx(e, abs=0.06), (phi, L)
            assert cx.log10_C_s(phi, R, cs) == pytest.approx(s, abs=0.06), (phi, L)


def test_ordering_sin_expm1_z3_at_unit_C_star():
    """sin < exp - 1 < z^3 for AZLL's C_s at C* = 1, R = 1 (5.45 < 9.61 < 11.3). The ordering
    is measure-dependent: the ResNet (i+1) variant puts exp - 1 above z^3."""
    s = [cx.C_s(phi, 1.0, 1.0) for phi in ("sin", "expm1", "z3")]
    assert s[0] < s[1] < s[2], s
    r = [cx.C_s(phi, 1.0, 1.0, "resnet") for phi in ("sin", "expm1", "z3")]
    assert r[0] < r[2] < r[1], r


def test_footnote_16_cos7_against_sin3_squared():
    """AZLL (arXiv 1811.04918, footnote 16) chose cos 7z so that C(cos 7z) ~ C(sin 3z)^2: ratio
    2.24e4 / 127.5^2 = 1.375 ((i+1)^1.75, C* = 1); rel 1% is the rounding of those values."""
    ratio = cx.C_s(("cos", 7.0), 1, 1) / cx.C_s(("sin", 3.0), 1, 1) ** 2
    assert ratio == pytest.approx(1.375, rel=0.01)


def test_scaled_link_is_the_link_at_a_larger_radius():
    for phi in ("sin", "expm1", "z3"):
        assert cx.log10_C_s((phi, 3.0), 2.0) == pytest.approx(cx.log10_C_s(phi, 6.0), rel=1e-12)
        assert cx.log10_C_eps((phi, 0.5), 2.0, 0.01, 1.0) == pytest.approx(
            cx.log10_C_eps(phi, 1.0, 0.01, 1.0), rel=1e-12)


def test_polynomial_series_are_exact():
    outer = cx.Series.polynomial([4.0, -3.0, 2.0])  # 2 z^2 - 3 z + 4
    R, C_star, eps = 5.0, 10.0, 0.05
    K, s = C_star * R, math.log(1 / eps)
    want = 2 * 4 + (K + math.sqrt(s) * K) * 3 + (K**2 + (s / 2) * K**2) * 2
    assert cx.C_eps(outer, R, eps, C_star) == pytest.approx(want, rel=1e-12)
    # astronomically large radii stay finite in log10 for polynomials
    assert cx.log10_C_eps(outer, log10_R=5000.0) == pytest.approx(2 * (5000 + 4), abs=1.0)


def test_finite_radius_links_are_infinite_with_a_reason():
    for name in ("tanh", "sigmoid"):
        assert cx.C_eps(name) == math.inf and cx.C_s(name) == math.inf
        assert cx.log10_C_s((name, 8.0), 1.0) == math.inf
        assert "finite Taylor radius" in cx.infinite_reason(name)
    assert cx.infinite_reason("sin") == ""
    assert cx.class_reason(["sin", "tanh"]).startswith("tanh")


def test_bad_arguments():
    with pytest.raises(ValueError, match="eps must be in"):
        cx.log10_C_eps("sin", 1.0, eps=0.0)
    with pytest.raises(ValueError, match="R must be positive"):
        cx.log10_C_s("sin", 0.0)
    with pytest.raises(ValueError, match="variant"):
        cx.log10_C_s("sin", 1.0, variant="azl")
    with pytest.raises(ValueError, match="unknown link"):
        cx.series("relu")


def test_links_keep_their_names_and_scaled_versions():
    assert list(links.LINKS)[:5] == ["z2", "z3", "sin", "expm1", "cosm1"]
    z = np.linspace(-1, 1, 5)
    npt.assert_allclose(links.LINKS["sin"][0](z), np.sin(z))
    assert links.LINKS["expm1"][1] == "exp(z) - 1"
    npt.assert_allclose(links.link("sin", 3.0)(z), np.sin(3 * z))
    assert links.formula("sin", 3.0) == "sin(3z)" and links.formula("z2", 2.0) == "(2z)^2"
    assert links.formula("expm1", 2.0) == "exp(2z) - 1"
    for name, lk in links.LINKS.items():
        assert lk.fn(np.zeros(1))[0] == 0.0, name  # Phi(0) = 0 for every RNN-class link
        assert lk.radius == math.inf
    npt.assert_allclose(links.link("sigmoid")(np.zeros(1)), 0.5)
