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
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import datetime
import json
import logging
import math
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import PacsimError

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


# The local executor


@dataclass(eq=False)
class _Worker:
    proc: Any
    conn: Any
    ready: bool = False
    #: tasks sent, in order: the first is running, the others wait in the worker's pipe
    inflight: collections.deque = field(default_factory=collections.deque)
    head_since: float = 0.0  #: when the first in-flight task started (about)
    killed_for: str | None = None  #: the key of the task it was killed for overrunning


class LocalExecutor:
    """Spawned single-threaded worker processes, each fed over its own pipe.

    While tasks are short, each worker gets up to :attr:`PREFETCH` tasks at a time (the next
    one waits in its pipe, so the worker never idles while the parent saves a result). The
    parent always knows which task a worker is running, so a worker that dies costs exactly
    that task.
    """

    name = "local"
    PREFETCH = 2
    #: tasks shorter than this (running mean, s) are prefetched; longer ones are not, so that
    #: none waits in a busy worker's pipe while another worker is idle
    SHORT_TASK_S = 0.25
    #: workers that die before they are ready, in a row, before giving up
    MAX_START_FAILURES = 3

    def __init__(self, workers: int, init=None, init_args=(), hard_timeout=None):
        self.n_workers = workers
        self._ctx = multiprocessing.get_context("spawn")
        self._init, self._init_args = init, init_args
        self._hard_timeout = hard_timeout
        self._queue: collections.deque = collections.deque()  # (key, fn, arg) not sent yet
        self._sent: dict[str, tuple] = {}  # key -> (key, fn, arg) of the tasks in flight
        self._workers: list[_Worker] = []
        self._start_failures = 0
        self._task_s = float("inf")  # running mean task duration (unknown yet)
        with worker_env():
            for _ in range(workers):
                self._workers.append(self._spawn())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close(force=exc[0] is not None)

    def describe(self) -> str:
        return f"local ({self.n_workers} worker processes)"

    def submit(self, key: str, fn, arg) -> None:
        self._queue.append((key, fn, arg))
        self._dispatch()

    @property
    def pending(self) -> int:
        return len(self._queue) + sum(len(w.inflight) for w in self._workers)

    def poll(self, timeout: float | None = None) -> list[tuple[str, Any]]:
        """Finished tasks as ``(key, result or WorkerDied)``, waiting up to ``timeout`` s."""
        if not self.pending:
            return []
        waits = {}
        for w in self._workers:
            waits[w.conn] = w
            waits[w.proc.sentinel] = w
        if self._hard_timeout is not None:
            timeout = self._until_overrun(timeout)
        ready = multiprocessing.connection.wait(list(waits), timeout)
        out: list[tuple[str, Any]] = []
        dead = []
        for obj in ready:
            w = waits[obj]
            if obj is w.conn:
                if not self._drain(w, out):
                    dead.append(w)
            elif w not in dead:
                self._drain(w, out)  # results it sent before it died
                dead.append(w)
        for w in dict.fromkeys(dead):
            self._replace(w, out)
        self._kill_overruns()
        self._dispatch()
        return out

    def close(self, force: bool = False) -> None:
        """Stop the workers: politely (finish nothing new), or at once with ``force``."""
        for w in self._workers:
            with contextlib.suppress(OSError):
                if force:
                    w.proc.kill()
                else:
                    w.conn.send(None)
        deadline = time.monotonic() + 5.0
        for w in self._workers:
            w.proc.join(max(0.0, deadline - time.monotonic()))
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join(1.0)
            w.conn.close()
        self._workers = []

    # internals

    def _spawn(self) -> _Worker:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(target=_worker_main, args=(child, self._init, self._init_args),
                                 daemon=True, name="pacsim-worker")
        proc.start()
        child.close()
        return _Worker(proc, parent)

    def _dispatch(self) -> None:
        """Send queued tasks: one to every idle ready worker, then (short tasks only) a second
        one each, keeping one back for every worker still starting."""
        starting = sum(not w.ready for w in self._workers)
        depth = self.PREFETCH if self._task_s < self.SHORT_TASK_S else 1
        for level in range(1, depth + 1):
            for w in self._workers:
                if not self._queue or (level > 1 and len(self._queue) <= starting):
                    return
                if w.ready and len(w.inflight) < level:
                    task = self._queue.popleft()
                    key = task[0]
                    self._sent[key] = task
                    if not w.inflight:
                        w.head_since = time.monotonic()
                    try:
                        w.conn.send(task)
                    except OSError:  # it died: poll() sees the sentinel and requeues
                        pass
                    w.inflight.append(key)

    def _drain(self, w: _Worker, out: list) -> bool:
        """Read everything ``w`` sent; ``False`` if its pipe is closed (it died)."""
        try:
            while w.conn.poll():
                msg = w.conn.recv()
                if msg == "ready":
                    w.ready = True
                    self._start_failures = 0
                    continue
                key, result = msg
                w.inflight.popleft()
                self._sent.pop(key, None)
                now = time.monotonic()
                took = now - w.head_since
                self._task_s = took if self._task_s == math.inf else 0.8 * self._task_s + 0.2 * took
                w.head_since = now
                out.append((key, result))
        except (EOFError, OSError):
            return False
        return True

    def _replace(self, w: _Worker, out: list) -> None:
        """``w`` died: charge its running task, requeue the rest, start a new worker."""
        w.proc.join(1.0)
        code = w.proc.exitcode
        w.conn.close()
        if w.inflight:
            key = w.inflight.popleft()
            self._sent.pop(key, None)
            if w.killed_for == key:
                err = WorkerTimeout(_timeout_text(self._hard_timeout))
            else:
                err = WorkerDied(f"worker process died ({_exit_text(code)})")
            out.append((key, err))
        if not w.ready:
            self._start_failures += 1
            if self._start_failures >= self.MAX_START_FAILURES:
                self.close(force=True)
                raise ExecutorError(
                    f"worker processes die at start ({_exit_text(code)}); see the log above")
        # tasks it had not started go back to the front of the queue, in order
        self._queue.extendleft(reversed([self._sent.pop(key) for key in w.inflight]))
        i = self._workers.index(w)
        with worker_env():
            self._workers[i] = self._spawn()

    def _until_overrun(self, timeout):
        now = time.monotonic()
        heads = [w.head_since + self._hard_timeout - now for w in self._workers
                 if w.inflight and w.killed_for is None]
        if not heads:
            return timeout
        t = max(0.0, min(heads))
        return t if timeout is None else min(t, timeout)

    def _kill_overruns(self) -> None:
        if self._hard_timeout is None:
            return
        now = time.monotonic()
        for w in self._workers:
            if w.inflight and w.killed_for is None and now - w.head_since > self._hard_timeout:
                w.killed_for = w.inflight[0]
                w.proc.kill()


def _timeout_text(seconds: float) -> str:
    return (f"stopped at the wall-time cap: its worker process was ended after {seconds:g} s "
            "(the run was in compiled code, which cannot be interrupted)")


def _exit_text(code: int | None) -> str:
    if code is None:
        return "exit status unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _worker_main(conn, init, init_args) -> None:
    """A worker process: run ``init``, say ready, then run tasks until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if init is not None:
        try:
            init(*init_args)
        except Exception:  # noqa: BLE001 - a task that needs it fails with its own message
            logging.getLogger("pacsim").exception("worker init failed")
    try:
        conn.send("ready")
        while True:
            msg = conn.recv()
            if msg is None:
                return
            key, fn, arg = msg
            conn.send((key, fn(arg)))
    except (EOFError, OSError):  # the parent is gone
        return


# The Dask executor


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


# What a worker does with a run


def init_worker(kinds) -> None:
    """Run once in every worker: load the compiled kernels, read the provenance."""
    from . import learners
    from .store import provenance

    learners.warmup(kinds)
    provenance()


def run_task(task: tuple) -> dict:
    """Worker: train one run and return ``{"result": ..., "provenance": ...}``; never raises
    (a failure, a divergence, a timeout is a result).

    ``task`` is ``(spec, seed, lr, checkpoints, validate, max_wall_s)``: plain data, so that
    a worker imports only what training needs.
    """
    from . import train
    from .store import provenance

    spec, seed, lr, checkpoints, validate, max_wall_s = task
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
    t0 = time.perf_counter()
    try:
        with _deadline(max_wall_s):
            _test_hook(seed)
            res = train.run(spec, seed, lr, checkpoints, validate)
        message = None
        if res.status == "diverged":
            message = (f"diverged: loss not finite at SGD step {res.diverged_step} "
                       f"(eta {res.eta:.3g})")
        result = {"rows": res.rows, "status": res.status, "diverged_step": res.diverged_step,
                  "eta": res.eta, "test_label_var": res.test_label_var, "wall_s": res.wall_s,
                  "info": res.info, "error": None, "message": message}
    except _Timeout:
        result = failed_result(
            f"stopped at the wall-time cap (target.max_wall_s = {max_wall_s:g} s)", "timeout")
        result["wall_s"] = time.perf_counter() - t0
    except Exception as e:  # noqa: BLE001 - recorded, the sweep goes on
        result = failed_result(f"{type(e).__name__}: {e}")
        result["traceback"] = traceback.format_exc()
        result["wall_s"] = time.perf_counter() - t0
    return {"result": result, "provenance": {**provenance(), "started_at": started}}


def failed_result(message: str, status: str = "failed") -> dict:
    """The result of a run that produced no numbers (``failed`` or ``timeout``)."""
    return {"rows": [], "status": status, "diverged_step": None, "eta": math.nan,
            "test_label_var": math.nan, "wall_s": 0.0, "info": {},
            "error": message if status == "failed" else None, "message": message}


class _Timeout(BaseException):
    """Raised inside a run that overran its wall-time cap (a BaseException, so that no
    ``except Exception`` in the run swallows it)."""


@contextlib.contextmanager
def _deadline(seconds: float | None):
    """Raise :class:`_Timeout` in this thread once ``seconds`` have passed.

    The exception is delivered between two Python bytecodes (``PyThreadState_SetAsyncExc``):
    a run stops at the end of the jitted chunk of SGD steps it is in. Works in any thread (a
    Dask worker runs tasks off the main thread, where signals cannot reach).
    """
    if seconds is None:
        yield
        return
    tid = ctypes.c_ulong(threading.get_ident())
    lock = threading.Lock()
    state = {"done": False, "fired": False}

    def fire():
        with lock:
            if not state["done"]:
                state["fired"] = True
                ctypes.pythonapi.PyThreadState_SetAsyncExc(tid, ctypes.py_object(_Timeout))

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    delivered = False
    try:
        yield
    except _Timeout:
        delivered = True
        raise
    finally:
        with lock:
            state["done"] = True
        timer.cancel()
        if state["fired"] and not delivered:
            # It fired as the block ended: let the pending exception land here. (Clearing it
            # with PyThreadState_SetAsyncExc(tid, NULL) instead would leave the interpreter's
            # "async exception pending" flag set, which slows all later code down badly.)
            try:
                for _ in range(10**6):
                    pass
            except _Timeout:
                pass
            raise _Timeout  # noqa: B012 - the run did overrun its cap


def _test_hook(seed: int) -> None:
    """Private fault injection for pacsim's own tests (``_PACSIM_TEST_HOOK``, JSON): make the
    runs of some seeds crash their worker process (``crash_seeds``), raise (``raise_seeds``),
    sleep first (``sleep_s``, for the seeds ``sleep_seeds`` or all; ``compiled_sleep_s``: in
    C code holding the GIL, out of reach of the in-run deadline), or wait until a file
    exists (``wait_file``). Not a feature."""
    hook = os.environ.get("_PACSIM_TEST_HOOK")
    if not hook:
        return
    hook = json.loads(hook)
    if hook.get("compiled_sleep_s") and seed in hook.get("sleep_seeds", [seed]):
        # like a long LAPACK or Numba call: C code that holds the GIL, which no in-thread
        # deadline can interrupt (ctypes.PyDLL keeps the GIL during the call)
        ctypes.PyDLL(None).sleep(int(hook["compiled_sleep_s"]))
    if hook.get("sleep_s") and seed in hook.get("sleep_seeds", [seed]):
        end = time.monotonic() + hook["sleep_s"]
        while time.monotonic() < end:  # short naps: a wall-time cap can interrupt it
            time.sleep(0.01)
    while hook.get("wait_file") and not os.path.exists(hook["wait_file"]):
        time.sleep(0.01)
    if seed in hook.get("crash_seeds", ()):
        os._exit(13)
    if seed in hook.get("raise_seeds", ()):
        raise RuntimeError(f"injected failure (seed {seed})")
