"""Where a sweep's runs execute: local worker processes, or a Dask distributed cluster.

Both executors offer the same small interface to :func:`pacsim.sweep.run_sweep`:

* ``submit(key, fn, arg)``: run ``fn(arg)`` somewhere (``fn`` is a module-level function,
  ``arg`` picklable, ``key`` a unique string);
* ``poll(timeout)``: wait up to ``timeout`` seconds for finished tasks and return them as
  ``[(key, result), ...]``; a task whose worker process died (killed, out of memory,
  ``os._exit``) comes back as ``(key, WorkerDied(...))``, never as a hang;
* ``close()`` (also a context manager).

``fn`` must never raise (a failing run is a result); the executors only report deaths.

:class:`LocalExecutor` is a pool of spawned single-threaded worker processes, one per core by
default. Unlike :class:`concurrent.futures.ProcessPoolExecutor`, whose pool breaks as a whole
when one worker dies, it knows which task each worker is running: a death is charged to that
task only, the worker is replaced, and the tasks queued behind it go to other workers. It can
also kill a worker that overruns a hard deadline.

:class:`DaskExecutor` submits to a Dask ``distributed`` cluster: one it starts
(``LocalCluster``, processes with one thread each) or an existing one (``scheduler`` address).

The package: :mod:`.base` (shared), :mod:`.local`, :mod:`.dask`, :mod:`.tasks` (what a worker
runs); everything public is re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import PacsimError
from .base import (
    EXECUTORS,
    WORKER_ENV,
    ExecutorError,
    WorkerDied,
    WorkerTimeout,
    available_cores,
    worker_env,
)
from .dask import DaskExecutor
from .local import LocalExecutor
from .tasks import failed_result, init_worker, run_task

__all__ = ["EXECUTORS", "WORKER_ENV", "DaskExecutor", "ExecutorError", "LocalExecutor",
           "WorkerDied", "WorkerTimeout", "available_cores", "failed_result", "init_worker",
           "make_executor", "run_task", "worker_env"]


def make_executor(
    name: str,
    workers: int | None = None,
    scheduler: str | None = None,
    init: Callable | None = None,
    init_args: tuple = (),
    hard_timeout: float | None = None,
):
    """The executor ``name`` ("local" or "dask"), started.

    Parameters
    ----------
    workers : int, optional
        Worker processes (local, or the ``LocalCluster`` that ``dask`` starts); default: one
        per available core. Ignored with ``scheduler``.
    scheduler : str, optional
        ``dask`` only: address of a running scheduler (``tcp://host:8786``); default: start a
        ``LocalCluster`` on the loopback interface.
    init, init_args : callable, tuple
        Run once in every worker before its first task (warm the Numba cache).
    hard_timeout : float, optional
        End the worker process of a task that has run this long (seconds); the task comes
        back as :class:`WorkerTimeout`. Local: the worker is killed and replaced. Dask: its
        nanny restarts it (``Client.restart_workers``).
    """
    if name == "local":
        return LocalExecutor(workers or available_cores(), init, init_args, hard_timeout)
    if name == "dask":
        return DaskExecutor(scheduler, workers or available_cores(), init, init_args,
                            hard_timeout)
    raise PacsimError(f"unknown executor {name!r}; allowed: {', '.join(EXECUTORS)}")
