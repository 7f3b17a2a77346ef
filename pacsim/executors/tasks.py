"""What a worker does with a run: :func:`run_task` trains it (:func:`pacsim.train.run`) under
the in-run wall-time deadline and returns its result, never raising; plus the worker's warm-up
and the private fault injection of pacsim's own tests."""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import json
import math
import os
import threading
import time
import traceback


def init_worker(kinds) -> None:
    """Run once in every worker: load the compiled kernels, read the provenance."""
    from .. import learners
    from ..store import provenance

    learners.warmup(kinds)
    provenance()


def run_task(task: tuple) -> dict:
    """Worker: train one run and return ``{"result": ..., "provenance": ...}``; never raises
    (a failure, a divergence, a timeout is a result).

    ``task`` is ``(spec, seed, lr, checkpoints, validate, max_wall_s)``: plain data, so that
    a worker imports only what training needs.
    """
    from .. import train
    from ..store import provenance

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
