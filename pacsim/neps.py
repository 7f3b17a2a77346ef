"""Sample complexity N_eps from a table of test errors, with bootstrap confidence intervals.

Definition (one cell): given the normalised test error ``err[r, s, k]`` of seed ``s`` trained
with step size ``lrs[r]`` on ``ns[k]`` samples, and the validation error ``val[r, s, k]``,

1. at every ``n_k`` the step size is the one with the smallest median (over seeds) validation
   error: the test errors are never read to choose it (with a single step size this is a
   no-op);
2. ``N_eps`` is the smallest evaluated ``n_k`` at which the median over seeds of the selected
   test error is ``<= eps``;
3. if no evaluated ``n`` reaches ``eps`` the cell is *censored*: ``N_eps > n_max`` is all we
   know, and it is reported as such, never dropped.

A seed whose run diverged or failed has error ``+inf`` from that point on, so it can only
raise the median: censored and diverged seeds enter the median as "not reached", which is
what they are. The confidence interval resamples seeds with replacement (percentile
bootstrap), redoing step 1 and 2 on every resample; a bound that is censored in the
resamples is ``+inf``.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class NEps:
    """N_eps of one cell; ``n_eps`` is NaN when ``censored``."""

    n_eps: float
    ci_lo: float
    ci_hi: float
    censored: bool
    lr_at_n_eps: float  #: the step size chosen by validation at N_eps (NaN if censored)
    choice: int = -1  #: index (into ``lrs``) of the hyper-parameters chosen at N_eps; -1 if censored


def selected_median(err: np.ndarray, val: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median over seeds of the test error at the validation-chosen step size, per point.

    Parameters
    ----------
    err, val : ndarray of shape (R, S, K) or (R, B, S, K)
        Test and validation errors for R step sizes, S seeds, K sample sizes (and optionally
        B bootstrap resamples). NaN (missing) is treated as +inf.

    Returns
    -------
    median : ndarray of shape (K,) or (B, K)
    choice : ndarray of int, same shape: index of the chosen step size
    """
    err = np.where(np.isnan(err), np.inf, err)
    if err.shape[0] == 1:
        choice = np.zeros(err.shape[1:-2] + err.shape[-1:], dtype=np.int64)
    else:
        val = np.where(np.isnan(val), np.inf, val)
        choice = np.argmin(np.median(val, axis=-2), axis=0)  # reads validation errors only
    med = np.median(err, axis=-2)  # (R, [B,] K)
    return np.take_along_axis(med, choice[None], axis=0)[0], choice


def first_reached(median: np.ndarray, ns: np.ndarray, eps: float) -> np.ndarray:
    """Smallest ``ns[k]`` with ``median[..., k] <= eps`` (``+inf`` where none is)."""
    hit = median <= eps
    k = np.argmax(hit, axis=-1)
    return np.where(hit.any(axis=-1), ns[k].astype(float), np.inf)


def n_eps(
    err: np.ndarray,
    val: np.ndarray,
    ns,
    lrs,
    eps: float,
    *,
    n_boot: int = 1000,
    ci: float = 0.95,
    rng: np.random.Generator,
) -> NEps:
    """N_eps of one cell with a bootstrap CI over seeds (see the module docstring).

    ``err`` and ``val`` have shape (R, S, K) for ``lrs`` (R,) and ``ns`` (K,), ``ns`` increasing;
    ``lrs`` may also be (R, 2): (step size, weight decay) pairs chosen jointly.
    """
    ns = np.asarray(ns)
    lrs = np.asarray(lrs, dtype=float)
    lrs = lrs[:, 0] if lrs.ndim == 2 else lrs  # (lr, weight decay) pairs: the step size
    med, choice = selected_median(err, val)
    point = float(first_reached(med, ns, eps))
    S = err.shape[1]
    idx = rng.integers(0, S, size=(n_boot, S))
    boot = first_reached(selected_median(err[:, idx], val[:, idx])[0], ns, eps)
    alpha = (1.0 - ci) / 2.0
    lo, hi = np.quantile(boot, [alpha, 1.0 - alpha], method="inverted_cdf")
    censored = not np.isfinite(point)
    at = -1 if censored else int(choice[int(np.searchsorted(ns, point))])
    lr = math_nan if censored else float(lrs[at])
    return NEps(
        n_eps=math_nan if censored else point,
        ci_lo=float(lo),
        ci_hi=float(hi),
        censored=censored,
        lr_at_n_eps=lr,
        choice=at,
    )


math_nan = float("nan")


def boot_rng(cell_id: str, seeds) -> np.random.Generator:
    """The bootstrap generator of a cell: derived from the cell's identity (the hex id of its
    resolved config, ``cell_id`` in the tables) and its seeds, never from its position, so
    adding a grid value leaves the other cells' CIs unchanged."""
    key = int(hashlib.sha256(str(cell_id).encode()).hexdigest()[:16], 16)
    return np.random.default_rng(np.random.SeedSequence([key, *map(int, seeds)]))


class BisectionSearch:
    """Where to evaluate next for the finite protocol: bracket N_eps on a geometric grid, then
    bisect (geometrically) until ``hi / lo - 1 <= rel_tol``.

    Call :meth:`next` for the next ``n`` to evaluate (``None`` when done) and :meth:`observe`
    with whether the cell reached ``eps`` there.
    """

    def __init__(self, n_min: int, n_max: int, factor: float, rel_tol: float):
        self.n_max, self.factor, self.rel_tol = n_max, factor, rel_tol
        self.lo: int | None = None  # largest n known not to reach eps
        self.hi: int | None = None  # smallest n known to reach eps
        self._next: int | None = n_min

    def next(self) -> int | None:
        return self._next

    def observe(self, n: int, reached: bool) -> None:
        if reached:
            self.hi = n
        else:
            self.lo = n
        if self.hi is None:  # still bracketing upwards
            nxt = min(self.n_max, max(n + 1, round(n * self.factor)))
            self._next = None if n >= self.n_max else nxt
        elif self.lo is None or self.hi / self.lo - 1 <= self.rel_tol:
            self._next = None
        else:
            mid = round((self.lo * self.hi) ** 0.5)
            self._next = mid if self.lo < mid < self.hi else None

    def stop(self) -> None:
        """Evaluate nothing more (a budget ran out)."""
        self._next = None

    def max_left(self) -> int:
        """An upper bound on the number of sample sizes still to evaluate (for ETAs)."""
        if self._next is None:
            return 0
        if self.hi is None:  # bracketing up to n_max, then bisecting one grid step
            k, n = 1, self._next
            while n < self.n_max:
                n = min(self.n_max, max(n + 1, round(n * self.factor)))
                k += 1
            return k + self._bisections(self.factor)
        return max(1, self._bisections(self.hi / self.lo))

    def _bisections(self, ratio: float) -> int:
        """Geometric bisections that take a bracket ``hi / lo = ratio`` to ``rel_tol``."""
        if ratio - 1 <= self.rel_tol:
            return 0
        return max(0, math.ceil(math.log2(math.log(ratio) / math.log1p(self.rel_tol))))
