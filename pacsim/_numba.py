"""The one place where Numba options are set.

Every jitted function in pacsim is decorated with :data:`jit`. Fast-math is enabled only with
the flag set that keeps NaN/Inf semantics (no ``nnan``/``ninf``): plain ``fastmath`` (all flags) lets LLVM
delete ``np.isnan``/``np.isinf`` checks, and pacsim must detect diverging SGD runs
(numba/numba#2919, stumpy-dev/stumpy#708).
"""

from __future__ import annotations

import functools

import numba

#: Fast-math flags without ``nnan`` and ``ninf``: reassociation (vectorised reductions),
#: contraction (FMA), no signed zeros, approximate reciprocals and functions.
FASTMATH = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})

#: Decorator for every serial kernel: cached on disk, NaN-safe fast-math, no bounds checks.
jit = functools.partial(numba.njit, cache=True, fastmath=set(FASTMATH), error_model="numpy")
