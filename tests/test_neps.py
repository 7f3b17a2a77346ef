"""N_eps: definition, censoring, bootstrap CI, validation-only step-size choice, bisection."""

import numpy as np
import numpy.testing as npt

from pacsim.neps import BisectionSearch, n_eps, selected_median

NS = np.array([10, 20, 40, 80, 160])


def _est(err, val=None, lrs=(0.1,), eps=0.35, **kw):
    val = np.full_like(err, np.nan) if val is None else val
    return n_eps(err, val, NS, lrs, eps, rng=np.random.default_rng(0), **kw)


def test_n_eps_is_first_point_where_median_reaches_eps():
    err = np.array([[[1, .8, .5, .3, .1], [1, .9, .6, .2, .05], [1, .7, .4, .35, .2]]])
    est = _est(err)
    assert est.n_eps == 80 and not est.censored  # medians: 1, .8, .5, .3, .1
    assert est.ci_lo <= est.n_eps <= est.ci_hi
    assert set(np.unique([est.ci_lo, est.ci_hi])) <= set(NS.astype(float)) | {np.inf}


def test_n_eps_censored_when_never_reached():
    err = np.ones((1, 4, 5))
    est = _est(err)
    assert est.censored and np.isnan(est.n_eps) and np.isnan(est.lr_at_n_eps)
    assert est.ci_lo == np.inf and est.ci_hi == np.inf


def test_diverged_seed_counts_as_not_reached():
    """Missing values (diverged or failed runs) are +inf: they raise the median, never drop."""
    err = np.array([[[1, .2, .1, .1, .1], [1, .2, .1, .1, .1], [1, np.nan, np.nan, np.nan, np.nan]]])
    assert _est(err).n_eps == 20
    err[0, 1, 1:] = np.inf  # two of three seeds diverged
    assert _est(err).censored


def test_bootstrap_ci_widens_with_seed_spread():
    k = np.arange(5)
    same = np.where(k >= 2, 0.1, 1.0) * np.ones((1, 20, 5))  # every seed crosses at n = 40
    est = _est(same)
    assert est.ci_lo == est.ci_hi == est.n_eps == 40
    cross = np.random.default_rng(1).integers(1, 5, size=20)  # seeds cross at n = 20..160
    spread = np.where(k[None, :] >= cross[:, None], 0.1, 1.0)[None]
    est2 = _est(spread)
    assert est2.ci_lo <= est2.n_eps <= est2.ci_hi and est2.ci_lo < est2.ci_hi


def test_step_size_is_chosen_on_validation_only():
    """Test errors say lr 0 is best; validation says lr 1. The choice follows validation."""
    err = np.stack([np.full((3, 5), 0.1), np.full((3, 5), 0.3)])
    val = np.stack([np.full((3, 5), 0.9), np.full((3, 5), 0.2)])
    med, choice = selected_median(err, val)
    npt.assert_array_equal(choice, 1)
    npt.assert_allclose(med, 0.3)  # the median of equal values: exact
    est = _est(err, val, lrs=(0.5, 2.0))
    assert est.lr_at_n_eps == 2.0 and est.n_eps == 10
    # Changing the test errors of the unchosen lr cannot change the choice.
    err[0] = 1e9
    npt.assert_array_equal(selected_median(err, val)[1], 1)


def test_bisection_brackets_then_refines():
    for true in (16, 17, 300, 999, 1000):
        s = BisectionSearch(16, 1000, 2.0, 0.1)
        seen = []
        while (n := s.next()) is not None:
            seen.append(n)
            s.observe(n, n >= true)
        assert s.hi == min(n for n in seen if n >= true)
        assert s.lo is None or (s.lo < true and s.hi / s.lo - 1 <= 0.1 or s.hi - s.lo == 1)
        assert len(seen) == len(set(seen))


def test_bisection_censored_at_budget():
    s = BisectionSearch(16, 100, 2.0, 0.1)
    seen = []
    while (n := s.next()) is not None:
        seen.append(n)
        s.observe(n, False)
    assert seen == [16, 32, 64, 100] and s.hi is None
