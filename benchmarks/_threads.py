"""Thread counts for the benchmarks, which must be set before NumPy, Numba or torch is imported.

Every benchmark calls :func:`set_threads` before importing those libraries (one thread unless
it says otherwise, e.g. ``kernels.py --threads``), and gets torch, the optional reference, from
:func:`optional_torch`, which keeps it on the same single thread.
"""

from __future__ import annotations

import os

#: The variables the BLAS libraries, OpenMP and Numba read at import.
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def set_threads(n: int | str = 1) -> None:
    """Set every variable of :data:`THREAD_VARS` to ``n`` (before the libraries are imported)."""
    for var in THREAD_VARS:
        os.environ[var] = str(n)


def optional_torch():
    """The ``torch`` module on one thread, or None when it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    return torch
