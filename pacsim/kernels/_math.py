"""Scalar building blocks shared by the jitted kernels (private).

``acos`` is a branch-free arccosine (fdlibm's rational approximation of asin, error below about
2 ulp of pi on [-1, 1]) written so that LLVM can vectorise the loops that call it: the system
``acos`` is a scalar libm call (about 17 ns on the development machine, and no SVML is
available), which would dominate every kernel here. ``tests/test_kernels_fc.py`` checks it against
``np.arccos`` on a dense grid that includes both ends and the branch points +-0.5.

``relu_moments``/``leaky_moments`` give the two Gaussian expectations every closed form needs,
for ``(u, v) ~ N(0, [[a, c], [c, b]])`` with ``den = sqrt(a b)`` and ``rho = c / den``:

* ReLU (Cho & Saul 2009; Arora et al. 2019, Fact B.1)::

      E[relu(u) relu(v)]   = den * (sin t + (pi - t) cos t) / (2 pi),   t = arccos(rho)
      E[relu'(u) relu'(v)] = (pi - t) / (2 pi)

* LeakyReLU ``phi(z) = max(z, a z)``, ``0 <= a < 1`` (Tsuchida, Roosta & Gallagher 2018,
  arXiv 1711.09090)::

      E[phi(u) phi(v)]   = den * ( (1-a)^2 (sin t + (pi - t) cos t) / (2 pi) + a cos t )
      E[phi'(u) phi'(v)] = ( (1 + a^2)(pi - t) + 2 a t ) / (2 pi)

  (the derivative term: both positive with probability (pi - t)/(2 pi), both negative with the
  same probability, opposite signs with probability t/pi).

Degenerate variances (``a = 0`` or ``b = 0``, e.g. a zero input without bias): the pre-activation
is identically 0, ``phi(0) = 0`` and pacsim's derivative convention is ``phi'(0) = a`` (0 for
ReLU, as in :mod:`pacsim.models.rnn`), so ``E[phi phi] = 0`` and ``E[phi' phi'] = a^2`` (both
degenerate) or ``a (1 + a) / 2`` (one degenerate).
"""

from __future__ import annotations

import numpy as np

from .._numba import jit

PI = np.pi
INV_2PI = 1.0 / (2.0 * np.pi)
PIO2_HI = 1.57079632679489655800e00
PIO2_LO = 6.12323399573676603587e-17

# fdlibm e_asin.c: asin(x) = x + x * R(x^2) on |x| <= 0.5, R(z) = z P(z) / Q(z).
_PS0 = 1.66666666666666657415e-01
_PS1 = -3.25565818622400915405e-01
_PS2 = 2.01212532134862925881e-01
_PS3 = -4.00555345006794114027e-02
_PS4 = 7.91534994289814532176e-04
_PS5 = 3.47933107596021167570e-05
_QS1 = -2.40339491173441421878e00
_QS2 = 2.02094576023350569471e00
_QS3 = -6.88283971605453293030e-01
_QS4 = 7.70381505559019352791e-02


@jit(inline="always")
def acos(x):
    """arccos of ``x``, clipped to [-1, 1] first; branch-free so that calling loops vectorise."""
    x = min(max(x, -1.0), 1.0)
    a = abs(x)
    big = a > 0.5
    z = 0.5 * (1.0 - a) if big else a * a
    s = np.sqrt(z) if big else a
    p = z * (_PS0 + z * (_PS1 + z * (_PS2 + z * (_PS3 + z * (_PS4 + z * _PS5)))))
    q = 1.0 + z * (_QS1 + z * (_QS2 + z * (_QS3 + z * _QS4)))
    r = s * (p / q)  # asin(s) = s + r
    # acos(|x|): 2 asin(s) when |x| > 1/2, else pi/2 - asin(|x|) (pi/2 split in hi + lo).
    pos = 2.0 * (s + r) if big else PIO2_HI - (s + (r - PIO2_LO))
    return pos if x >= 0.0 else PI - pos


@jit(inline="always")
def leaky_moments(c, den, leak):
    """``(E[phi(u) phi(v)], E[phi'(u) phi'(v)])``; ``den = sqrt(a b)``, ``c`` the covariance.

    ``leak = 0`` is ReLU. See the module docstring for the formulas and the degenerate case
    (``den`` is then 0 and ``c`` must be 0 too; ``deg`` counts the degenerate sides).
    """
    ok = den > 0.0
    rho = c / den if ok else 0.0
    rho = min(max(rho, -1.0), 1.0)
    t = acos(rho)
    st = np.sqrt(max((1.0 - rho) * (1.0 + rho), 0.0))
    pt = PI - t
    one_m = 1.0 - leak
    e1 = den * (one_m * one_m * (st + pt * rho) * INV_2PI + leak * rho)
    e0 = ((1.0 + leak * leak) * pt + 2.0 * leak * t) * INV_2PI
    return (e1 if ok else 0.0), e0


@jit(inline="always")
def relu_moments(c, den):
    """ReLU case of :func:`leaky_moments` for ``den > 0`` (callers handle ``den = 0``)."""
    rho = min(max(c / den, -1.0), 1.0)
    t = acos(rho)
    st = np.sqrt(max((1.0 - rho) * (1.0 + rho), 0.0))
    pt = PI - t
    return den * (st + pt * rho) * INV_2PI, pt * INV_2PI
