"""What both executors share: the worker environment (one thread each), the exceptions a task
can come back as, and the core count."""

from __future__ import annotations

import contextlib
import os

from ..errors import PacsimError

#: Environment of worker processes: one thread each for BLAS and Numba (a process per core).
WORKER_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
}


#: The executors ``run_sweep`` and ``pacsim sweep --executor`` accept.
EXECUTORS = ("local", "dask")


class WorkerDied(Exception):
    """The process running a task died before returning its result."""


class WorkerTimeout(WorkerDied):
    """The worker was killed because its task overran the hard deadline."""


class ExecutorError(PacsimError):
    """The executor cannot run tasks at all (workers die at start, scheduler unreachable)."""


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def worker_env():
    """Set :data:`WORKER_ENV` for processes spawned inside the block, then restore ours."""
    old = {k: os.environ.get(k) for k in WORKER_ENV}
    os.environ.update(WORKER_ENV)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _timeout_text(seconds: float) -> str:
    return (f"stopped at the wall-time cap: its worker process was ended after {seconds:g} s "
            "(the run was in compiled code, which cannot be interrupted)")
