"""The complexity measures C_eps(phi, R) and C_s(phi, R) of a link, from its Taylor series.

Allen-Zhu, Li & Liang (AZLL, arXiv 1811.04918 v5; restated in PG21 Def. 2.1), with
``phi(z) = sum_i c_i z^i`` and a constant C* ("sufficiently large, e.g. 10^4")::

    C_eps(phi, R) = sum_{i>=0} [ (C* R)^i + ( sqrt(log(1/eps)) / sqrt(i) * C* R )^i ] |c_i|
    C_s(phi, R)   = C* sum_{i>=0} (i+1)^1.75 R^i |c_i|                 (variant "azll")
    C_s(phi, R)   = C* sum_{i>=0} (i+1)      R^i |c_i|                 (variant "resnet")

The "resnet" variant is the tighter sample-complexity measure of Allen-Zhu & Li, *What Can
ResNet Learn Efficiently, Going Beyond Kernels?* (arXiv 1905.10337 v2, footnote), which states
it at R = 1; here it is extended to any R by the same R^i weight. ``log`` is natural. At
``i = 0`` the second C_eps term is taken as 1 (so ``c_0`` counts twice), which reproduces the
values computed independently from the definition (e.g. C_eps(cos, 1) = 3.75 at eps = 0.01;
tests/test_concepts_complexity.py).

Sums are exact (finite) for polynomials and, for entire functions, summed term by term in log
space until the terms have fallen below ``exp(-50)`` of the largest one and decay at least
geometrically (ratio < 1/2), so the neglected tail is below 1e-21 relative. Values are returned
as ``log10`` (the papers' C* = 10^4 makes C_eps(sin, 1) about 10^4343); :func:`C_eps` and
:func:`C_s` give plain floats (``inf`` on overflow).

A link with a finite radius of convergence (tanh, sigmoid) gets ``inf`` for both measures; the
reason is :func:`infinite_reason`. The complexity of a class is the maximum over its links
(:func:`class_log10`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from . import links as _links

#: The papers' constant C* (AZLL: "e.g. 10^4").
C_STAR = 1e4
#: The eps at which concepts record C_eps in their ``info()``.
INFO_EPS = 0.01
_LN10 = math.log(10.0)
#: Sums needing more terms than this are reported as infinite (the value is astronomically large).
MAX_TERMS = 50_000_000


@dataclass(frozen=True)
class Series:
    """Taylor coefficients ``c_i`` of a function at 0, by magnitude (log) and sign."""

    name: str
    log_abs: Callable[[np.ndarray], np.ndarray] | None  #: i -> log|c_i|; None: finite radius
    sign: Callable[[np.ndarray], np.ndarray] | None = None
    degree: int | None = None  #: polynomial degree (exact finite sum); None: entire
    radius: float = math.inf  #: radius of convergence

    def scaled(self, a: float) -> Series:
        """The series of ``phi(a z)``: ``c_i a^i``."""
        if a == 1.0:
            return self
        if a <= 0:
            raise ValueError(f"scale must be positive, got {a}")
        la = math.log(a)
        base, name = self.log_abs, f"{self.name}[{a:g}z]"
        if base is None:
            return Series(name, None, None, self.degree, self.radius / a)
        return Series(name, lambda i: base(i) + np.asarray(i) * la, self.sign, self.degree,
                      self.radius / a)

    def coef(self, i) -> np.ndarray:
        """Signed coefficients ``c_i`` (floats; may underflow to 0 for large i)."""
        if self.log_abs is None:
            raise ValueError(f"{self.name}: finite radius of convergence, no coefficients kept")
        i = np.asarray(i)
        return self.sign(i) * np.exp(self.log_abs(i))

    @staticmethod
    def polynomial(coefs: Sequence[float], name: str = "poly") -> Series:
        """``sum_i coefs[i] z^i`` (exact sums)."""
        c = np.asarray(coefs, dtype=np.float64)
        with np.errstate(divide="ignore"):
            la = np.log(np.abs(c))

        def log_abs(i):
            i = np.asarray(i)
            return np.where(i < len(c), la[np.minimum(i, len(c) - 1)], -np.inf)

        def sign(i):
            i = np.asarray(i)
            return np.where(i < len(c), np.sign(c[np.minimum(i, len(c) - 1)]), 0.0)

        return Series(name, log_abs, sign, len(c) - 1, math.inf)


def series(phi, scale: float = 1.0) -> Series:
    """The :class:`Series` of ``phi``: a link name, a :class:`Series`, or a ``(name, scale)``."""
    if isinstance(phi, tuple):
        phi, s = phi
        scale = scale * s
    if isinstance(phi, Series):
        return phi.scaled(scale)
    lk = _links.get(phi)
    return Series(phi, lk.log_abs_coef, lk.sign, lk.degree, lk.radius).scaled(scale)


def infinite_reason(phi, R: float = 1.0, C_star: float = C_STAR) -> str:
    """Why the measures of ``phi`` at ``R`` are infinite, or ``""`` if they are finite."""
    s = series(phi)
    if s.log_abs is None:
        return (f"{s.name} has a finite Taylor radius of convergence ({s.radius:.4g}): "
                f"C_eps diverges once C* R >= {s.radius:.4g} (C* = {C_star:g}); pacsim does not "
                "sum finite-radius series and reports both measures as infinite")
    return ""


def log10_C_eps(phi, R: float = 1.0, eps: float = INFO_EPS, C_star: float = C_STAR, *,
                log10_R: float | None = None) -> float:
    """log10 of AZLL's C_eps(phi, R); ``eps`` in (0, 1], natural log inside.

    ``log10_R`` replaces ``R`` for radii too large for a float (three-layer classes)."""
    if not 0 < eps <= 1:
        raise ValueError(f"eps must be in (0, 1], got {eps}")
    s = series(phi)
    if s.log_abs is None:
        return math.inf
    lK = _log_radius(R, log10_R) + math.log(C_star)
    with np.errstate(divide="ignore"):
        ls = 0.5 * math.log(math.log(1.0 / eps)) if eps < 1 else -math.inf

    def term(i):
        la = s.log_abs(i)
        fi = i.astype(np.float64)
        t1 = la + fi * lK
        with np.errstate(invalid="ignore", divide="ignore"):
            t2 = la + fi * (ls + lK - 0.5 * np.log(np.maximum(fi, 1.0)))
        t2 = np.where(i == 0, la, t2)
        return np.logaddexp(t1, np.where(np.isnan(t2), -np.inf, t2))

    return _sum(term, s, lK) / _LN10


def log10_C_s(phi, R: float = 1.0, C_star: float = C_STAR, variant: str = "azll", *,
              log10_R: float | None = None) -> float:
    """log10 of C_s(phi, R): ``variant`` "azll" ((i+1)^1.75) or "resnet" ((i+1))."""
    power = {"azll": 1.75, "resnet": 1.0}.get(variant)
    if power is None:
        raise ValueError(f"variant must be 'azll' or 'resnet', got {variant!r}")
    s = series(phi)
    if s.log_abs is None:
        return math.inf
    lR = _log_radius(R, log10_R)

    def term(i):
        fi = i.astype(np.float64)
        return s.log_abs(i) + power * np.log1p(fi) + fi * lR

    return (math.log(C_star) + _sum(term, s, lR)) / _LN10


def C_eps(phi, R: float = 1.0, eps: float = INFO_EPS, C_star: float = C_STAR) -> float:
    """AZLL's C_eps(phi, R) as a float (``inf`` if it overflows or diverges)."""
    return _pow10(log10_C_eps(phi, R, eps, C_star))


def C_s(phi, R: float = 1.0, C_star: float = C_STAR, variant: str = "azll") -> float:
    """C_s(phi, R) as a float (``inf`` if it overflows or diverges)."""
    return _pow10(log10_C_s(phi, R, C_star, variant))


def class_log10(phis: Iterable, measure: str, **kw) -> float:
    """The complexity of a class: the max over its links of ``log10_C_eps`` or ``log10_C_s``."""
    fn = {"C_eps": log10_C_eps, "C_s": log10_C_s}[measure]
    return max(fn(phi, **kw) for phi in phis)


def class_reason(phis: Iterable, **kw) -> str:
    """The first :func:`infinite_reason` among ``phis`` (``""`` if every one is finite)."""
    for phi in phis:
        r = infinite_reason(phi, **kw)
        if r:
            return r
    return ""


# Internal helpers


def _log_radius(R: float, log10_R: float | None) -> float:
    if log10_R is not None:
        return float(log10_R) * _LN10
    if not R > 0:
        raise ValueError(f"R must be positive, got {R}")
    return math.log(R)


def _pow10(x: float) -> float:
    return math.inf if x > 308 else 10.0 ** x


def _sum(term: Callable[[np.ndarray], np.ndarray], s: Series, log_scale: float) -> float:
    """Natural log of ``sum_i exp(term(i))``: exact for polynomials, to convergence otherwise."""
    if s.degree is not None:
        return float(logsumexp(term(np.arange(s.degree + 1))))
    # The terms of an entire series peak near i ~ exp(log_scale); beyond MAX_TERMS give up.
    if log_scale > math.log(MAX_TERMS):
        return math.inf
    acc, start, size = -math.inf, 0, 256
    peak = -math.inf
    while start < MAX_TERMS:
        i = np.arange(start, start + size)
        t = term(i)
        finite = t[np.isfinite(t)]
        if finite.size:
            peak = max(peak, float(finite.max()))
            acc = float(np.logaddexp(acc, logsumexp(finite)))
            tail = finite[-8:]
            if (len(tail) >= 2 and tail.max() < peak - 50.0
                    and np.all(np.diff(tail) < -math.log(2.0))):
                return acc
        start += size
        size = min(size * 2, 1 << 20)
    return math.inf
