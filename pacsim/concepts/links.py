"""Link functions phi of the concept classes, with the Taylor series their complexity needs.

Names are ASCII so they can be written in a TOML config. Three menus:

* :data:`LINKS`: entire functions with ``phi(0) = 0`` (``z1`` ... ``z6`` for z^q, ``sin``,
  ``expm1`` = exp(z) - 1, ``cosm1`` = cos(z) - 1). The RNN classes (AZL, PG21) draw from this
  menu only: their theorems are stated in terms of C_eps(Phi, sqrt(L)), which is finite for
  every entire link (AZLL, arXiv 1811.04918, as restated in PG21, arXiv 2106.00047,
  Def. 2.1).
* ``cos``: entire but ``cos(0) = 1``; allowed where ``phi(0) = 0`` is not required (the
  feed-forward classes of AZLL and AZL-ResNet).
* :data:`FINITE_RADIUS`: ``tanh`` and ``sigmoid``, whose Taylor series at 0 converge only for
  ``|z| < pi/2`` and ``|z| < pi``. With C* = 10^4 the papers' complexity measures diverge for
  them, so they are allowed only in the feed-forward classes (where AZLL's own experiment uses
  tanh) and their complexity is reported as infinite, with the reason
  (:func:`pacsim.concepts.complexity.infinite_reason`).

A *scaled* link ``phi(a z)`` (sin(3z), cos(7z), ...) is a link plus a ``scale`` ``a``; families
take the scale as a config key. ``LINKS[name][0]`` is the vectorised function and
``LINKS[name][1]`` its formula, as before.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from scipy.special import expit, gammaln


class Link(NamedTuple):
    """A named scalar link function and its Taylor series at 0."""

    fn: Callable[[np.ndarray], np.ndarray]  #: vectorised phi
    formula: str  #: shown to users
    log_abs_coef: Callable[[np.ndarray], np.ndarray] | None  #: i -> log|c_i| (-inf where c_i = 0)
    sign: Callable[[np.ndarray], np.ndarray] | None  #: i -> sign of c_i
    degree: int | None  #: polynomial degree; None if not a polynomial
    radius: float  #: radius of convergence of the Taylor series at 0 (inf: entire)


def _where(mask: np.ndarray, value: np.ndarray) -> np.ndarray:
    return np.where(mask, value, -np.inf)


def _power(q: int) -> Link:
    def log_abs(i):
        i = np.asarray(i)
        return np.where(i == q, 0.0, -np.inf)

    def sign(i):
        return np.ones(np.shape(i))

    fns = {1: lambda z: z * 1.0, 2: np.square, 3: lambda z: z * z * z}
    fn = fns.get(q, lambda z, q=q: np.power(z, q))
    return Link(fn, f"z^{q}", log_abs, sign, q, math.inf)


def _inv_factorial(i):
    return -gammaln(np.asarray(i, dtype=np.float64) + 1.0)


def _odd(i):
    return np.asarray(i) % 2 == 1


def _even(i):
    return np.asarray(i) % 2 == 0


_SIN = Link(
    np.sin, "sin(z)",
    lambda i: _where(_odd(i), _inv_factorial(i)),
    lambda i: np.where((np.asarray(i) // 2) % 2 == 0, 1.0, -1.0),
    None, math.inf,
)
_EXPM1 = Link(
    np.expm1, "exp(z) - 1",
    lambda i: _where(np.asarray(i) >= 1, _inv_factorial(i)),
    lambda i: np.ones(np.shape(i)),
    None, math.inf,
)
_COS_SIGN = lambda i: np.where((np.asarray(i) // 2) % 2 == 0, 1.0, -1.0)  # noqa: E731
_COSM1 = Link(
    lambda z: np.cos(z) - 1.0, "cos(z) - 1",
    lambda i: _where(_even(i) & (np.asarray(i) >= 2), _inv_factorial(i)),
    _COS_SIGN, None, math.inf,
)
_COS = Link(np.cos, "cos(z)", lambda i: _where(_even(i), _inv_factorial(i)), _COS_SIGN,
            None, math.inf)

#: Entire links with phi(0) = 0: the menu of the RNN classes. The first five names (and their
#: order) are the original ones; new names are appended.
LINKS: dict[str, Link] = {
    "z2": _power(2),
    "z3": _power(3),
    "sin": _SIN,
    "expm1": _EXPM1,
    "cosm1": _COSM1,
    "z1": _power(1),
    "z4": _power(4),
    "z5": _power(5),
    "z6": _power(6),
}

#: Links whose Taylor series has a finite radius of convergence: complexity reported as infinite.
FINITE_RADIUS: dict[str, Link] = {
    "tanh": Link(np.tanh, "tanh(z)", None, None, None, math.pi / 2),
    "sigmoid": Link(expit, "1 / (1 + exp(-z))", None, None, None, math.pi),
}

#: Every link a feed-forward class may use: LINKS, cos, and the finite-radius links.
ALL_LINKS: dict[str, Link] = {**LINKS, "cos": _COS, **FINITE_RADIUS}


def get(name: str) -> Link:
    """The :class:`Link` called ``name`` (any menu)."""
    try:
        return ALL_LINKS[name]
    except KeyError:
        raise ValueError(f"unknown link {name!r}; allowed: {', '.join(ALL_LINKS)}") from None


def link(name: str, scale: float = 1.0) -> Callable[[np.ndarray], np.ndarray]:
    """The vectorised link function called ``name``, as ``z -> phi(scale * z)``."""
    fn = get(name).fn
    if scale == 1.0:
        return fn
    return lambda z: fn(scale * z)


def formula(name: str, scale: float = 1.0) -> str:
    """``"sin(z)"``, or ``"sin(3z)"`` for a scaled link."""
    f = get(name).formula
    if scale == 1.0:
        return f
    if "^" in f:
        return f.replace("z", f"({scale:g}z)")
    if "-z" in f:
        return f.replace("-z", f"-{scale:g}z")
    return f.replace("(z)", f"({scale:g}z)")
