"""The Dask executor: tasks on a Dask ``distributed`` cluster, a ``LocalCluster`` it starts or
an existing one."""

from __future__ import annotations

import collections
import contextlib
import logging
import math
import queue
import time
from typing import Any

from ..errors import PacsimError
from .base import WORKER_ENV, ExecutorError, WorkerDied, WorkerTimeout, _timeout_text, worker_env


class DaskExecutor:
    """Tasks on a Dask ``distributed`` cluster: a ``LocalCluster`` this starts (loopback only,
    processes with one thread each), or the cluster of ``scheduler``.

    At most as many tasks as the cluster has worker threads are submitted at a time (the
    others wait here), so a worker holds only the task it runs, and the ``LocalCluster`` fails
    a task the first time its worker dies (``allowed-failures = 0``): a death is charged to the
    task that caused it. On an external cluster the scheduler's own settings apply (by default
    a task is retried on 3 other workers before it is failed with ``KilledWorker``).
    """

    name = "dask"

    def __init__(self, scheduler: str | None, workers: int, init=None, init_args=(),
                 hard_timeout: float | None = None):
        try:
            import dask
            import distributed
        except ImportError:
            raise PacsimError(
                "the dask executor needs Dask distributed: pip install 'dask[distributed]'"
            ) from None
        self._distributed = distributed
        self._cluster = None
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._futures: dict = {}
        self._queue: collections.deque = collections.deque()  # (key, fn, arg) not submitted
        self._threads, self._threads_at = 1, -math.inf
        self._hard_timeout = hard_timeout
        self._started: dict[str, float] = {}  # future key -> when it was first seen running
        self._killed: set[str] = set()  # future keys whose worker was ended for overrunning
        try:
            if scheduler is None:
                env = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), **WORKER_ENV}
                settings = {
                    "distributed.scheduler.allowed-failures": 0,
                    # one task per worker thread (the default 1.1 lets a single-thread worker
                    # hold two, and a worker death would then fail both)
                    "distributed.scheduler.worker-saturation": 1.0,
                    "distributed.nanny.pre-spawn-environ": env,
                }
                with dask.config.set(settings), worker_env():
                    self._cluster = distributed.LocalCluster(
                        n_workers=workers, threads_per_worker=1, processes=True,
                        host="127.0.0.1", dashboard_address=None, silence_logs=logging.ERROR,
                    )
                self.client = distributed.Client(self._cluster)
                self.where = "LocalCluster"
            else:
                self.client = distributed.Client(scheduler, timeout="20s")
                self.where = scheduler
        except (OSError, TimeoutError) as e:
            self.close()
            raise ExecutorError(
                f"cannot connect to the Dask scheduler {scheduler!r}: {e}") from None
        self.n_workers = len(self.client.scheduler_info(n_workers=-1).get("workers", {}))
        if init is not None:
            try:  # workers that join later load the kernels with their first run
                self.client.run(init, *init_args)
            except Exception as e:  # noqa: BLE001 - a run that needs it fails with its message
                logging.getLogger("pacsim").warning("warming up the Dask workers failed: %s", e)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def describe(self) -> str:
        return f"dask ({self.where}, {self.n_workers} workers)"

    @property
    def pending(self) -> int:
        return len(self._futures) + len(self._queue)

    def submit(self, key: str, fn, arg) -> None:
        self._queue.append((key, fn, arg))
        self._dispatch()

    def poll(self, timeout: float | None = None) -> list[tuple[str, Any]]:
        if not self.pending:
            return []
        self._dispatch()
        out = []
        if self._hard_timeout is not None:
            timeout = self._until_overrun(timeout)
        try:
            fkey = self._done.get(timeout=timeout)
        except queue.Empty:
            self._end_overruns()
            return out
        while True:
            key, fut = self._futures.pop(fkey)
            out.append((key, self._outcome(fut)))
            fut.release()
            try:
                fkey = self._done.get_nowait()
            except queue.Empty:
                break
        self._end_overruns()
        self._dispatch()
        return out

    def _dispatch(self) -> None:
        """Submit queued tasks while the cluster has idle worker threads."""
        if not self._queue:
            return
        now = time.monotonic()
        if now - self._threads_at > 2.0:  # the cluster may grow or shrink (adaptive scaling)
            info = self.client.scheduler_info(n_workers=-1).get("workers", {})
            self._threads = max(1, sum(w.get("nthreads", 1) for w in info.values()))
            self._threads_at = now
        while self._queue and len(self._futures) < self._threads:
            key, fn, arg = self._queue.popleft()
            fut = self.client.submit(fn, arg, key=f"pacsim-{key}-{time.monotonic_ns()}",
                                     pure=False)
            self._futures[fut.key] = (key, fut)
            fut.add_done_callback(lambda f: self._done.put(f.key))

    def _until_overrun(self, timeout):
        """Wake up in time for the next deadline (and at least every second while tasks wait
        to start, to see them start)."""
        now = time.monotonic()
        left = [t + self._hard_timeout - now for k, t in self._started.items()
                if k not in self._killed]
        if len(self._started) < len(self._futures):
            left.append(1.0)
        if not left:
            return timeout
        t = max(0.05, min(left))
        return t if timeout is None else min(t, timeout)

    def _processing(self) -> dict[str, str]:
        """Future key -> address of the worker running it, from the scheduler."""
        where = {}
        with contextlib.suppress(Exception):
            for addr, keys in self.client.processing().items():
                for k in keys:
                    where[k] = addr
        return where

    def _end_overruns(self) -> None:
        """End every task past the hard deadline, counted from when the scheduler first
        reported it running (a task waiting for a worker is not timed): cancel it, so that it
        is never retried elsewhere, then restart its worker through its nanny (a worker stuck
        in compiled code cannot do anything else). It comes back as :class:`WorkerTimeout`.
        Without a nanny the worker finishes the cancelled task in the background. On a
        cluster whose workers run several threads, the restart also ends the other tasks of
        that worker (reported as worker deaths); pacsim's ``LocalCluster`` runs one thread per
        worker."""
        if self._hard_timeout is None or not self._futures:
            return
        now = time.monotonic()
        where = self._processing()
        for k in where:
            if k in self._futures and k not in self._started:
                self._started[k] = now
        late = [k for k, t in self._started.items()
                if k not in self._killed and now - t > self._hard_timeout]
        for k in late:
            self._killed.add(k)
            _, fut = self._futures.get(k, (None, None))
            if fut is not None and not fut.done():
                fut.cancel()
            addr = where.get(k)
            if addr is not None:
                with contextlib.suppress(Exception):  # no nanny: nothing more to do
                    self.client.restart_workers([addr], timeout=30, raise_for_error=True)

    def _outcome(self, fut):
        self._started.pop(fut.key, None)
        if fut.status == "finished":
            return fut.result()
        if fut.key in self._killed:
            self._killed.discard(fut.key)
            return WorkerTimeout(_timeout_text(self._hard_timeout))
        try:
            exc = fut.exception()
        except Exception as e:  # noqa: BLE001 - cancelled (scheduler lost the task)
            exc = e
        if isinstance(exc, self._distributed.KilledWorker):
            return WorkerDied(f"worker process died (Dask KilledWorker: {exc})")
        return WorkerDied(f"task lost by Dask: {type(exc).__name__}: {exc}")

    def close(self, force: bool = False) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
        if self._cluster is not None:
            with contextlib.suppress(Exception):
                self._cluster.close()
            self._cluster = None
