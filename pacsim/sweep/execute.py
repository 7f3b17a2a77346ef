"""Running a sweep: the lock, the executor, saving every run the moment it finishes, resuming,
stale runs, interruption, progress; and :func:`sweep_status`, which replays the same searches
over the stored runs without running anything."""

from __future__ import annotations

import contextlib
import datetime
import json
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import learners
from ..config import SweepConfig, parse_sweep, section_label
from ..errors import PacsimError
from ..executors import (
    EXECUTORS,
    WorkerDied,
    WorkerTimeout,
    available_cores,
    failed_result,
    init_worker,
    make_executor,
    run_task,
)
from ..store import RunDir, code_versions, is_current, provenance, write_atomic, write_parquet
from .plan import Unit, _Search, budget
from .tabulate import _point_n_eps, results_table, sample_complexity_table


@dataclass
class SweepOutcome:
    """What a sweep did: counts, and where the tables are."""

    run_dir: Path
    n_runs: int = 0
    n_trained: int = 0
    n_failed: int = 0
    n_diverged: int = 0
    n_timeout: int = 0
    n_cells: int = 0
    n_censored: int = 0
    wall_s: float = 0.0
    executor: str = ""
    failures: list[str] = field(default_factory=list)  #: one line per failed run
    n_stale: int = 0  #: stored runs of other code found (recomputed, or kept with keep_stale)


class SweepInterrupted(PacsimError):
    """Ctrl-C: the finished runs are saved; running the same command resumes."""

    exit_code = 130


def run_sweep(
    cfg: SweepConfig,
    out: str | Path = "runs",
    workers: int | None = None,
    progress: bool | None = None,
    *,
    executor: str = "local",
    scheduler: str | None = None,
    retry_failed: bool = False,
    keep_stale: bool = False,
    wait: bool = False,
    on_wait=None,
    on_stale=None,
) -> SweepOutcome:
    """Run (or resume) a sweep and write its tables to ``out/<cfg.name>/``.

    Parameters
    ----------
    cfg : SweepConfig
    out : path
        Parent folder of the run folder.
    workers : int, optional
        Worker processes (default: one per available core). Results do not depend on it.
    progress : bool, optional
        A progress bar (``True``), nothing (``False``), or (default) a bar on a terminal and a
        log line every 30 s otherwise.
    executor : {"local", "dask"}
        Local worker processes, or Dask distributed (a ``LocalCluster``, or the cluster at
        ``scheduler``). Results do not depend on it.
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``); implies ``executor="dask"``.
    retry_failed : bool
        Run again the stored runs that failed (by default they are kept, and reported).
    keep_stale : bool
        Reuse stored runs computed by other code (other numerics or row schema,
        :func:`pacsim.store.is_current`); by default they are recomputed. Either way
        ``on_stale(line)`` is called with one line saying how many there are, before any work.
    wait : bool
        If another sweep holds the run folder, wait for it (default: raise
        :class:`pacsim.store.RunDirBusy` at once). ``on_wait(holder)`` is called first.

    Raises
    ------
    PacsimError
        Before any work: unwritable folder, folder in use, unknown executor.
    """
    t0 = time.perf_counter()
    if executor not in EXECUTORS:
        raise PacsimError(f"unknown executor {executor!r}; allowed: {', '.join(EXECUTORS)}")
    if scheduler is not None:
        executor = "dask"
    run_dir = RunDir(Path(out) / cfg.name)
    run_dir.prepare()
    with run_dir.lock(wait=wait, on_wait=on_wait):
        run_dir.remove_temporaries()
        # the keys as written (defaults left out): whole-section grid tables inherit only the
        # keys written in [base.*], so this is what rebuilds the same sweep
        write_atomic(run_dir.path / "sweep.json",
                     cfg.model_dump_json(indent=2, exclude_unset=True).encode())
        sweep = _Sweep(cfg, run_dir, retry_failed=retry_failed, keep_stale=keep_stale)
        sweep.run(executor, workers, scheduler, progress, on_stale)
        outcome = sweep.tabulate()
    outcome.n_stale = sweep.n_stale
    outcome.wall_s = time.perf_counter() - t0
    return outcome


def sweep_status(path: str | Path) -> tuple[pd.DataFrame, dict]:
    """Where a (possibly unfinished or interrupted) sweep stands, from its folder alone.

    Replays every cell's search over the stored unit files. Returns one row per cell (``done``
    ok runs, ``diverged``, ``timeout``, ``failed``, ``pending``: runs of the current step not
    stored yet, ``state``: ``"done"``, ``"censored"``, ``"running"`` or ``"not started"``, and
    ``n_eps`` of the finished cells) and a summary dict (totals, ``holder``: the sweep running
    there now, if any).
    """
    run_dir = RunDir(path)
    spec_file = run_dir.path / "sweep.json"
    if not spec_file.is_file():
        raise PacsimError(f"{str(run_dir.path)!r} is not a run folder (no sweep.json); "
                          "run `pacsim sweep CONFIG` first")
    try:
        raw = json.loads(spec_file.read_text())
    except (OSError, ValueError) as e:
        raise PacsimError(f"{spec_file}: unreadable ({e})") from None
    cfg = parse_sweep(raw, source=str(spec_file))
    sweep = _Sweep(cfg, run_dir, quiet=True)
    pending = {cell: len(sweep.search.advance(cell)) for cell in range(len(sweep.search.cells))}
    rows = []
    for cell, (values, spec) in enumerate(sweep.search.cells):
        p = sweep.search.planners[cell]
        units = p.units
        status = [sweep.records[u.id]["result"]["status"] for u in units if u.id in sweep.records]
        finished = p.next() is None
        n_eps = np.nan
        if finished and units:
            n_eps = _point_n_eps(cfg, spec, units, sweep.records)
        state = ("not started" if not status else "running" if not finished
                 else "censored" if not np.isfinite(n_eps) else "done")
        if finished and not units:
            state = "censored"
        rows.append({"cell": cell, **{k: section_label(v) for k, v in values.items()},
                     "protocol": spec.train.protocol, "done": status.count("ok"),
                     "diverged": status.count("diverged"), "timeout": status.count("timeout"),
                     "failed": status.count("failed"), "pending": pending[cell],
                     "state": state, "n_eps": n_eps if np.isfinite(n_eps) else np.nan})
    df = pd.DataFrame(rows)
    summary = {"name": cfg.name, "cells": len(rows),
               **{k: int(df[k].sum())
                  for k in ("done", "diverged", "timeout", "failed", "pending")},
               "more": sweep.search.runs_left(),
               "censored": int((df["state"] == "censored").sum()),
               "finished_cells": int(df["state"].isin(["done", "censored"]).sum()),
               "stale": sweep.n_stale, "holder": run_dir.holder()}
    return df, summary


#: A run past ``target.max_wall_s`` by this much has its worker process ended (it is stuck in
#: compiled code, which the in-run deadline cannot interrupt), on every executor.
HARD_GRACE_S = 2.0


class _Sweep:
    """One invocation: the search over stored runs, the runs it launches, the tables."""

    def __init__(self, cfg: SweepConfig, run_dir: RunDir, retry_failed=False, quiet=False,
                 keep_stale=False):
        self.cfg, self.run_dir = cfg, run_dir
        self.budget = budget(cfg)
        self.retry_failed = retry_failed
        self.keep_stale = keep_stale
        self.code = code_versions()
        self.stale: dict[str, str] = {}  # run id -> the other code's versions, as loaded
        self.records: dict[str, dict] = {}
        self.n_trained = 0
        self.executor_name = ""
        self._quiet = quiet
        self.search = _Search(cfg, self._load, self.records)

    @property
    def n_stale(self) -> int:
        """Stored runs of other code that the searches asked for (recomputed, or kept)."""
        return len(self.stale)

    def _load(self, unit: Unit) -> dict | None:
        """The stored record of ``unit`` if it counts as done (read from disk once)."""
        rec = self.records.get(unit.id)
        if rec is not None:
            return rec
        rec = self.run_dir.load(unit.id, repair=not self._quiet)
        if rec is not None and not is_current(rec):
            code = rec.get("code")
            self.stale[unit.id] = ("pacsim before run versions" if not isinstance(code, dict) else
                                   f"numerics {code.get('numerics')}, schema {code.get('schema')}")
        if rec is None or not self._still_valid(rec):
            return None
        self.records[unit.id] = rec
        return rec

    def stale_message(self) -> str:
        """One line: how many stored runs are from other code, and what happens to them."""
        now = f"numerics {self.code['numerics']}, schema {self.code['schema']}"
        counts: dict[str, int] = {}
        for code in self.stale.values():
            counts[code] = counts.get(code, 0) + 1
        other = "; ".join(f"{n} from {code}" for code, n in sorted(counts.items()))
        what = ("kept as they are, with any more the searches reach (--keep-stale): their rows "
                "mix with today's" if self.keep_stale else
                "recomputing them, and any more the searches reach (pass --keep-stale to reuse "
                "them)")
        return (f"{self.run_dir.path}: {self.n_stale} stored runs were computed by other code "
                f"({other}; today: {now}); {what}")

    def _still_valid(self, rec: dict) -> bool:
        if not self.keep_stale and not is_current(rec):
            return False
        status = rec["result"]["status"]
        if status == "failed":
            return not self.retry_failed
        if status == "timeout":  # stopped by a smaller wall-time cap than today's: run again
            cap = (rec.get("budget") or {}).get("max_wall_s")
            now = self.budget.max_wall_s
            return cap is not None and now is not None and now <= cap
        return True

    def run(self, executor: str, workers, scheduler, progress, on_stale=None) -> None:
        todo = [u for cell in range(len(self.search.cells)) for u in self.search.advance(cell)]
        if self.stale and on_stale is not None:  # found by the replay, before any work
            on_stale(self.stale_message())
        bar = _Progress(self.cfg.name, progress)
        self._show(bar)
        if not todo:
            bar.close()
            return
        kinds = sorted({(spec.model.kind, getattr(spec.model, "dtype", "float64"))
                        for _, spec in self.search.cells})
        learners.warmup(kinds)  # compile once, before the workers load the cache
        hard = None if self.budget.max_wall_s is None else self.budget.max_wall_s + HARD_GRACE_S
        waiters: dict[str, list[Unit]] = {}
        if executor == "local" or scheduler is None:  # no more workers than runs to do
            workers = min(workers or available_cores(), len(todo) + self.search.runs_left())
        ex = make_executor(executor, workers, scheduler, init_worker, (kinds,), hard)
        self.executor_name = ex.name
        stack = contextlib.ExitStack()

        def submit(units):
            for u in units:
                if u.id in waiters:
                    waiters[u.id].append(u)
                else:
                    waiters[u.id] = [u]
                    ex.submit(u.id, run_task, (u.spec, u.seed, u.lr, u.checkpoints, u.validate,
                                              self.budget.max_wall_s))

        try:
            stack.enter_context(_sigterm_as_interrupt())
            bar.start()
            submit(todo)
            while ex.pending:
                for uid, res in ex.poll(bar.tick):
                    units = waiters.pop(uid)
                    self.records[uid] = self.run_dir.save(self._record(units[0], res))
                    self.n_trained += 1
                    for u in units:
                        submit(self.search.finished(u))
                self._show(bar)
        except KeyboardInterrupt:
            ex.close(force=True)
            bar.close()
            raise SweepInterrupted(
                f"interrupted: {self.n_trained} runs trained and saved in this session; "
                "run the same command again to resume") from None
        finally:
            ex.close()
            stack.close()
        self._show(bar, final=True)
        bar.close()

    def _show(self, bar, final=False) -> None:
        units = self.search.units()
        done = [self.records[u.id]["result"]["status"] for u in units if u.id in self.records]
        bar.update(len(done), len(units) + self.search.runs_left(), done.count("failed"),
                   self.n_trained, final=final)

    def _record(self, unit: Unit, res) -> dict:
        if isinstance(res, WorkerDied):
            timeout = isinstance(res, WorkerTimeout)
            result = failed_result(str(res), status="timeout" if timeout else "failed")
            prov = {**provenance(), "started_at": None}
        else:
            result, prov = res["result"], res["provenance"]
        rec = {"id": unit.id, "unit": unit.key, "result": result, "code": self.code,
               "provenance": {**prov, "executor": self.executor_name}}
        if self.budget.max_wall_s is not None:
            rec["budget"] = {"max_wall_s": self.budget.max_wall_s}
        return rec

    def tabulate(self) -> SweepOutcome:
        s = self.search
        units = s.units()
        results = results_table(self.cfg, s.cells, units, self.records)
        write_parquet(results, self.run_dir.path / "results.parquet")
        uniq = {u.id: u for u in units}
        failed = [u for u in uniq.values() if self.records[u.id]["result"]["status"] == "failed"]
        sc = sample_complexity_table(self.cfg, s.cells, results)
        write_parquet(sc, self.run_dir.path / "sample_complexity.parquet")
        statuses = [self.records[i]["result"]["status"] for i in uniq]
        o = SweepOutcome(run_dir=self.run_dir.path, n_cells=len(s.cells), n_runs=len(uniq),
                         n_trained=self.n_trained, executor=self.executor_name)
        o.n_failed = statuses.count("failed")
        o.n_diverged = statuses.count("diverged")
        o.n_timeout = statuses.count("timeout")
        o.n_censored = int(sc["censored"].sum())
        for u in failed:
            error = self.records[u.id]["result"]["error"]
            where = ", ".join(f"{k}={section_label(v)}" for k, v in s.cells[u.cell][0].items())
            o.failures.append(f"cell {u.cell}{f' ({where})' if where else ''} seed {u.seed} "
                              f"lr {u.lr:g} n {u.checkpoints[-1]}: {error}")
        return o


class _Progress:
    """Runs done / total, failures and ETA: a bar on a terminal (``mode`` True or None), a log
    line every ``interval`` s otherwise (``mode`` None), or nothing (``mode`` False).

    The total is an upper bound while finite-protocol searches are open (they may stop
    earlier), so the ETA is conservative.
    """

    def __init__(self, name: str, mode: bool | None, interval: float = 30.0, stream=None):
        self.name, self.interval = name, interval
        self.stream = stream or sys.stderr
        tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.mode = "off" if mode is False else "bar" if (mode or tty) else "log"
        self._bar = None
        self._t0 = self._last = time.monotonic()
        self._trained0 = None
        self._state = (0, 0, 0, 0)

    @property
    def tick(self) -> float | None:
        """How long to wait for results before redrawing."""
        return {"bar": 0.5, "log": min(self.interval, 5.0), "off": None}[self.mode]

    def start(self) -> None:
        self._t0 = self._last = time.monotonic()
        if self.mode == "bar":
            from tqdm.auto import tqdm

            self._bar = tqdm(total=0, file=self.stream, unit="run", dynamic_ncols=True,
                             bar_format="{desc}{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} runs "
                                        "[{elapsed}{postfix}]", desc=f"{self.name}: ")
        elif self.mode == "log":
            self._line("started")

    def update(self, done: int, total: int, failed: int, trained: int, final=False) -> None:
        if self._trained0 is None:
            self._trained0 = (trained, done)
        self._state = (done, total, failed, trained)
        if self._bar is not None:
            self._bar.total, self._bar.n = total, done
            self._bar.set_postfix_str(f"{failed} failed, ETA {self._eta()}", refresh=False)
            self._bar.refresh()
        elif self.mode == "log" and (final or time.monotonic() - self._last >= self.interval):
            if self._trained0 is not None and (final or trained > self._trained0[0]):
                self._line("done" if final else None)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _eta(self) -> str:
        done, total, _, trained = self._state
        n = trained - (self._trained0 or (0, 0))[0]
        if n <= 0:
            return "?"
        left = (time.monotonic() - self._t0) / n * max(0, total - done)
        return _hms(left)

    def _line(self, what: str | None) -> None:
        self._last = time.monotonic()
        done, total, failed, _ = self._state
        stamp = datetime.datetime.now().strftime("%H:%M:%S")
        text = what or f"ETA {self._eta()}"
        print(f"[{stamp}] {self.name}: {done}/{total} runs, {failed} failed, "
              f"{_hms(self._last - self._t0)} elapsed, {text}", file=self.stream, flush=True)


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (``kill``, a batch system's end of job) stops the sweep like Ctrl-C: the
    workers are stopped, the finished runs are kept, the lock is released."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
