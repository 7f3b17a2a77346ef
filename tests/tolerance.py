"""Portable numerical comparisons for the tests.

The same formula evaluated two ways (another summation order or vector width, a BLAS call
against a loop, fused multiply-adds or not, another libm) agrees to a few roundings *of the terms
it sums*, not of its result: an entry of a kernel matrix that cancels to 1e-4 of the matrix's
scale carries the absolute rounding error of the scale, i.e. a relative error 1e4 times larger.
So a comparison with ``rtol`` and ``atol = 0`` is only portable where nothing cancels. Every
comparison between two computations of one quantity in this suite therefore uses either

* :func:`assert_close` -- ``|actual - desired| <= rel * (|desired| + scale)`` entrywise, with
  ``scale`` the largest ``|desired|`` (or a scale passed by the caller, e.g. the size of the
  summed terms); ``rel`` is set from the operation (unit roundoff 1.1e-16 times the number of
  rounding steps that can accumulate, with a margin of 10-100 for other CPUs and BLAS); or
* a bit-exact comparison, only where the same code path runs twice on the same input
  (determinism), said so in a comment; or
* a statistical tolerance (Monte Carlo, finite differences), justified where it is used.
"""

from __future__ import annotations

import numpy as np
import numpy.testing as npt

#: Unit roundoff of float64.
U64 = np.finfo(np.float64).eps / 2
#: Unit roundoff of float32.
U32 = np.finfo(np.float32).eps / 2


def assert_close(actual, desired, rel: float, *, scale: float | None = None, err_msg: str = ""):
    """``|actual - desired| <= rel * (|desired| + scale)`` entrywise; ``scale`` defaults to
    ``max |desired|`` (errors relative to the matrix's size, so cancelling entries pass)."""
    desired = np.asarray(desired, dtype=float)
    actual = np.asarray(actual, dtype=float)
    if scale is None:
        scale = float(np.abs(desired).max()) if desired.size else 0.0
    npt.assert_allclose(actual, desired, rtol=rel, atol=rel * scale, err_msg=err_msg)
