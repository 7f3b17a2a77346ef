"""The local executor: spawned single-threaded worker processes, each fed over its own pipe.
Unlike :class:`concurrent.futures.ProcessPoolExecutor`, whose pool breaks as a whole when one
worker dies, it knows which task each worker is running: a death is charged to that task only,
the worker is replaced, and the tasks queued behind it go to other workers. It kills a worker
whose task overruns the hard deadline."""

from __future__ import annotations

import collections
import contextlib
import logging
import math
import multiprocessing
import multiprocessing.connection
import signal
import time
from dataclasses import dataclass, field
from typing import Any

from .base import ExecutorError, WorkerDied, WorkerTimeout, _timeout_text, worker_env


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
