"""Sweeps: expand the grid, run every (cell, seed, step size, N) in parallel, resume, tabulate.

Work units are single training runs (:func:`pacsim.train.run`), keyed by a content hash of
everything that determines their numbers (:func:`pacsim.store.run_id`). Each cell has a planner
that says which sample sizes to evaluate next: the online protocol needs one run per seed and
step size (the checkpointed curve); the finite protocol brackets N_eps on a geometric grid and
then bisects (:class:`pacsim.samples.BisectionSearch`), launching the runs of many cells at
once. Every finished run is written atomically to ``units/<run id>.json`` the moment it
finishes, so a killed sweep loses only the runs in flight, and a re-run trains only what is
missing; the tables are rebuilt from the unit files, so they are the same however often the
sweep was interrupted, and whatever the executor (:mod:`pacsim.executors`) and worker count.

A run that raises is recorded as ``failed`` (with its message), one whose loss blows up as
``diverged``, one stopped by the wall-time cap as ``timeout``; the sweep goes on. See
``docs/sweeps.md``.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import json
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import learners, samples, tables
from .config import RunSpec, SweepConfig, geometric_grid, parse_sweep, section_label
from .errors import PacsimError
from .executors import (
    EXECUTORS,
    WORKER_ENV,
    WorkerDied,
    WorkerTimeout,
    available_cores,
    failed_result,
    init_worker,
    make_executor,
    run_task,
)
from .store import RunDir, code_versions, is_current, provenance, run_id, write_atomic, write_parquet

__all__ = ["WORKER_ENV", "SweepOutcome", "Unit", "run_sweep", "sweep_status", "results_table",
           "sample_complexity_table", "Budget", "budget"]

#: Provenance columns of the results table that differ between two sweeps on one machine
#: that computed the same numbers: where, when, how fast and by what each run ran.
VOLATILE = ("wall_s", "host", "git_commit", "executor", "started_at")


@dataclass(frozen=True)
class Unit:
    """One training run of a sweep; ``id`` is the hash of :attr:`key`."""

    cell: int
    spec: RunSpec
    seed: int
    lr: float
    checkpoints: tuple[int, ...]
    validate: bool
    id: str = field(default="", compare=False)

    @property
    def wd(self) -> float:
        """The run's weight decay (one value of the cell's list)."""
        return self.spec.train.weight_decays[0]

    @property
    def choice(self) -> tuple[float, float]:
        """The hyper-parameters chosen on validation: (step size, weight decay)."""
        return (self.lr, self.wd)

    @property
    def key(self) -> dict:
        """Everything that determines the run's numbers (hashed into its id)."""
        return _unit_key(self.spec.model_dump(mode="json"), self.seed, self.lr,
                         self.checkpoints, self.validate)


@dataclass(frozen=True)
class Budget:
    """Per-cell caps: each run of a cell gets at most ``n_max`` samples, ``max_steps`` SGD
    steps and ``max_wall_s`` seconds; a cell that needs more is censored."""

    n_max: int
    max_steps: int | None = None
    max_wall_s: float | None = None


def budget(cfg: SweepConfig) -> Budget:
    """The caps of a sweep (``target.n_max``, ``target.max_steps``, ``target.max_wall_s``)."""
    t = cfg.target
    return Budget(t.n_max, t.max_steps, t.max_wall_s)


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
        if sweep.n_stale and on_stale is not None:
            on_stale(sweep.stale_message())
        sweep.run(executor, workers, scheduler, progress)
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


def results_table(cfg: SweepConfig, cells, units: list[Unit], records: dict) -> pd.DataFrame:
    """Long-form table: one row per (run, evaluated n), flattened config and provenance.

    ``lr_chosen`` marks the rows whose step size the validation set chose at that ``n``
    (always true with a single step size), ``lr_selected`` is that step size; ``lr_search``
    says how the step sizes were found ("auto", "list", "fixed") and ``lr_edge`` is the
    smallest step size at which a run of the same batch (cell and largest ``n``) diverged
    (NaN if none did: for "auto", the search then stopped at ``lr_max`` or where the
    validation error turned up). With a ``weight_decay`` list the choice is of the pair
    (``lr_selected``, ``wd_selected``). ``papers_rule_best_by_test`` marks the pair with the
    smallest median *test* error at that ``n``: the papers' rule, for comparison with their
    tables only; nothing in pacsim uses it.
    """
    rows = []
    caps = {}
    for cell, (_, spec) in enumerate(cells):
        n_cap = _n_cap(cfg, spec)
        caps[cell] = {"sgd": bool(learners.LEARNERS[spec.model.kind].SGD), "n_cap": n_cap,
                      "cap": _cap_name(cfg, spec, n_cap)}
    for unit in units:
        rec = records[unit.id]
        res = rec["result"]
        base = {"run_id": unit.id, "cell": unit.cell, "cell_id": cell_id(cells[unit.cell][1]),
                **caps[unit.cell],
                **_flat(unit.spec.model_dump(mode="json"))}
        base.update({"train.lr": unit.lr, "seed": unit.seed, "eta": res["eta"],
                     "status": res["status"], "diverged_step": res["diverged_step"],
                     "error": res.get("error"), "message": res.get("message"),
                     "test_label_var": res["test_label_var"], "wall_s": res["wall_s"],
                     **res.get("info", {}), **rec["provenance"],
                     **{f"code_{k}": (rec.get("code") or {}).get(k)
                        for k in ("numerics", "schema")}})
        by_n = {r["n"]: r for r in res["rows"]}
        for n in unit.checkpoints:  # a checkpoint after a divergence or failure is not reached
            r = by_n.get(n)
            if r is None:
                fill = np.inf if res["status"] in ("diverged", "timeout") else np.nan
                r = {"n": n, "train_loss": np.nan, "test_mse": fill, "test_nmse": fill,
                     "val_nmse": fill if unit.validate else np.nan}
            rows.append({"steps": _steps(unit.spec, n), **base, **r,
                         "batch_n": unit.checkpoints[-1],
                         "lr_search": unit.spec.train.lr_search if unit.lr else "none"})
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df["diverged_step"] = df["diverged_step"].astype("Int64")
    bad = df[df["status"] == "diverged"].groupby(["cell", "batch_n"])["train.lr"].min()
    df["lr_edge"] = pd.MultiIndex.from_frame(df[["cell", "batch_n"]]).map(bad.to_dict().get)
    df["lr_edge"] = df["lr_edge"].astype(float)
    df["lr_chosen"] = True
    df["lr_selected"] = df["train.lr"].astype(float)
    df["wd_selected"] = _wd_column(df).astype(float)
    df["papers_rule_best_by_test"] = True
    for _, part in df.groupby("cell", sort=False):
        choices = _choices(part)
        if len(choices) == 1:
            continue
        err, val, ns = _cell_arrays(part, choices, list(cfg.seeds))
        _, choice = samples.selected_median(err, val)
        pick = {n: choices[c] for n, c in zip(ns.tolist(), choice.tolist(), strict=True)}
        mine = list(zip(part["train.lr"], _wd_column(part), strict=True))
        df.loc[part.index, "lr_selected"] = [pick[n][0] for n in part["n"]]
        df.loc[part.index, "wd_selected"] = [pick[n][1] for n in part["n"]]
        df.loc[part.index, "lr_chosen"] = [c == pick[n] for c, n in zip(mine, part["n"],
                                                                          strict=True)]
        # the papers' rule, for comparison with their tables only: best median TEST error
        _, by_test = samples.selected_median(err, err)
        papers = {n: choices[c] for n, c in zip(ns.tolist(), by_test.tolist(), strict=True)}
        df.loc[part.index, "papers_rule_best_by_test"] = [
            c == papers[n] for c, n in zip(mine, part["n"], strict=True)]
    return df.drop(columns="batch_n")


def sample_complexity_table(cfg: SweepConfig, cells, results: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: N_eps with its bootstrap CI, or censored (N_eps > the cap), from
    ``results`` through :func:`pacsim.tables.n_eps_table` (the one N_eps pipeline), with the
    cells' grid labels; a cell the caps left without any sample size to try is censored by
    that cap. ``censored_by`` is documented there."""
    t = cfg.target
    table = (tables.n_eps_table(results, t.eps, n_boot=t.n_boot, ci=t.ci)
             if len(results) else pd.DataFrame(columns=["cell"]))
    by_cell = table.set_index("cell")
    out = []
    for cell, (values, spec) in enumerate(cells):
        n_cap = _n_cap(cfg, spec)
        row = by_cell.loc[cell] if cell in by_cell.index else None
        labels = {k: section_label(v) for k, v in values.items()}
        est = {"n_eps": np.nan, "ci_lo": np.inf, "ci_hi": np.inf, "censored": True,
               "censored_by": _cap_name(cfg, spec, n_cap), "lr_at_n_eps": np.nan,
               "wd_at_n_eps": np.nan}
        if row is not None:
            est = {k: row[k] for k in est}
        out.append({"cell": cell, "cell_id": cell_id(spec), **labels,
                    "protocol": spec.train.protocol, "eps": t.eps, "n_max": t.n_max,
                    "n_cap": n_cap, "n_seeds": len(cfg.seeds), **est, "ci": t.ci})
    return pd.DataFrame(out)


def unit_lrs(spec: RunSpec) -> tuple[float, ...]:
    """The step sizes a cell runs: ``train.lr`` for SGD learners; ``(0.0,)`` (meaning "none")
    for closed-form learners, which have no step size."""
    return spec.train.lrs if learners.LEARNERS[spec.model.kind].SGD else (0.0,)


def cell_id(spec: RunSpec) -> str:
    """Stable id of a cell (its resolved config)."""
    return run_id({"cell": spec.model_dump(mode="json")})


# The sweep


class _Sweep:
    """One invocation: the search over stored runs, the runs it launches, the tables."""

    def __init__(self, cfg: SweepConfig, run_dir: RunDir, retry_failed=False, quiet=False,
                 keep_stale=False):
        self.cfg, self.run_dir = cfg, run_dir
        self.budget = budget(cfg)
        self.retry_failed = retry_failed
        self.keep_stale = keep_stale
        self.code = code_versions()
        self.stale_codes = run_dir.stale_codes(self.code)  # read before any work
        self.n_stale = sum(self.stale_codes.values())
        self.records: dict[str, dict] = {}
        self.n_trained = 0
        self.executor_name = ""
        self._quiet = quiet
        self.search = _Search(cfg, self._load, self.records)

    def _load(self, unit: Unit) -> dict | None:
        """The stored record of ``unit`` if it counts as done (read from disk once)."""
        rec = self.records.get(unit.id)
        if rec is not None:
            return rec
        rec = self.run_dir.load(unit.id, repair=not self._quiet)
        if rec is None or not self._still_valid(rec):
            return None
        self.records[unit.id] = rec
        return rec

    def stale_message(self) -> str:
        """One line: how many stored runs are from other code, and what happens to them."""
        now = f"numerics {self.code['numerics']}, schema {self.code['schema']}"
        other = "; ".join(f"{n} from {code}" for code, n in sorted(self.stale_codes.items()))
        what = ("kept as they are (--keep-stale): their rows mix with today's" if self.keep_stale
                else "recomputing them (pass --keep-stale to reuse them)")
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

    def run(self, executor: str, workers, scheduler, progress) -> None:
        todo = [u for cell in range(len(self.search.cells)) for u in self.search.advance(cell)]
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


class _Search:
    """Every cell's planner, moved on over the stored runs (``load``) as far as they go."""

    def __init__(self, cfg: SweepConfig, load, records: dict):
        self.cfg, self._load, self._records = cfg, load, records
        self.cells = cfg.cells()
        self._dumps = [spec.model_dump(mode="json") for _, spec in self.cells]
        self.planners = [_planner(cfg, spec) for _, spec in self.cells]
        self.waiting: dict[int, list[Unit]] = {}  # cell -> its batch with runs not done

    def advance(self, cell: int) -> list[Unit]:
        """Observe the cell's stored batches; return the runs its next batch still needs."""
        p = self.planners[cell]
        while cell not in self.waiting and (n := p.next()) is not None:
            batch = self._batch(cell, n)
            p.units.extend(batch)
            missing = self._complete(cell, batch)
            if missing:
                return missing
        return []

    def finished(self, unit: Unit) -> list[Unit]:
        """``unit`` is stored: if that completes its batch, observe it and move the cell on."""
        batch = self.waiting.get(unit.cell)
        if batch is None or any(u.id not in self._records for u in batch):
            return []
        del self.waiting[unit.cell]
        missing = self._complete(unit.cell, batch)
        return missing or self.advance(unit.cell)

    def _complete(self, cell: int, batch: list[Unit]) -> list[Unit]:
        """Move ``batch`` on over the stored runs: extend its step-size search while it asks
        for more, and observe it once it is whole. Returns the runs it still needs (then it
        waits in :attr:`waiting`), or nothing (observed)."""
        p = self.planners[cell]
        while True:
            missing = [u for u in batch if self._load(u) is None]
            if missing:
                self.waiting[cell] = batch
                return missing
            lr = _next_lr(self.cells[cell][1], batch, self._records)
            if lr is None:
                break
            more = self._units(cell, batch[0].checkpoints, lr)
            batch.extend(more)
            p.units.extend(more)
        p.observe(batch[0].checkpoints[-1], *_outcome(self.cfg, batch, self._records))
        return []

    def units(self) -> list[Unit]:
        return [u for p in self.planners for u in p.units]

    def runs_left(self) -> int:
        """An estimate of the runs the searches may still launch (beyond :meth:`units`): an
        upper bound for fixed step sizes; a step-size search counts as many step sizes as its
        cell's last batch needed (or ``AUTO_LR_GUESS``), and one more for an open batch."""
        n = 0
        for cell, p in enumerate(self.planners):
            spec = self.cells[cell][1]
            per_batch = len(unit_lrs(spec))
            if spec.train.lr == "auto" and learners.LEARNERS[spec.model.kind].SGD:
                done = [u for u in p.units if u.checkpoints[-1] == p.units[-1].checkpoints[-1]]
                per_batch = len({u.lr for u in done}) if done else AUTO_LR_GUESS
                n += len(self.cfg.seeds) * (cell in self.waiting)
            batches = p.max_left() - (cell in self.waiting)
            n += max(0, batches) * len(self.cfg.seeds) * per_batch
        return n

    def _batch(self, cell: int, n: int) -> list[Unit]:
        """The first runs evaluating ``n`` samples in ``cell``: every seed and step size (a
        step-size search then extends the batch, :meth:`_complete`)."""
        t = self.cfg.target
        spec = self.cells[cell][1]
        if spec.train.protocol == "online":
            checkpoints = tuple(geometric_grid(t.n_min, n, t.points_per_doubling))
        else:
            checkpoints = (n,)
        return [u for lr in unit_lrs(spec) for u in self._units(cell, checkpoints, lr)]

    def _units(self, cell: int, checkpoints: tuple[int, ...], lr: float) -> list[Unit]:
        """The runs of every seed (and weight decay of a list) at step size ``lr``."""
        spec = self.cells[cell][1]
        validate = _validates(spec)
        out = []
        for one, dump in self._by_wd(cell):
            key = functools.partial(_unit_key, dump, lr=lr, checkpoints=checkpoints,
                                    validate=validate)
            out += [Unit(cell, one, seed, lr, checkpoints, validate, run_id(key(seed=seed)))
                    for seed in self.cfg.seeds]
        return out

    def _by_wd(self, cell: int) -> list[tuple[RunSpec, dict]]:
        """The cell's spec and its dump, one per weight decay of a ``weight_decay`` list (the
        cell's own when it is one number)."""
        spec = self.cells[cell][1]
        wds = spec.train.weight_decays
        if not isinstance(spec.train.weight_decay, tuple):
            return [(spec, self._dumps[cell])]
        out = []
        for wd in wds:
            one = spec.model_copy(update={"train": spec.train.model_copy(
                update={"weight_decay": wd})})
            out.append((one, one.model_dump(mode="json")))
        return out


#: A run past ``target.max_wall_s`` by this much has its worker process ended (it is stuck in
#: compiled code, which the in-run deadline cannot interrupt), on every executor.
HARD_GRACE_S = 2.0

#: Step sizes a search is expected to try, before it has tried any (for the ETA only).
AUTO_LR_GUESS = 8


def _validates(spec: RunSpec) -> bool:
    """Whether the runs of a cell record the validation error: it chooses their step size
    (a list, or a search) or their stopping epoch (``patience``)."""
    tc = spec.train
    return (tc.lr_search != "fixed" or len(tc.weight_decays) > 1
            or (tc.patience is not None and tc.protocol == "finite"))


def _next_lr(spec: RunSpec, batch: list[Unit], records: dict) -> float | None:
    """The next step size of a batch's "auto" search, or ``None`` when it is over.

    Upwards from ``lr_start`` by ``lr_factor`` until a run of some seed diverges (the
    stability edge), the median validation error has turned back up (the two largest step
    sizes both worse than the best by more than ``FLAT``: a step size so large that SGD
    kills the network without a NaN), or ``lr_max`` is passed; then downwards, while the step size with the
    smallest median validation error is the smallest tried (a grid whose best value sits at
    its edge is not a result) and is better than the next larger one by more than
    ``FLAT`` (relative), until ``lr_min``. Reads only validation errors and statuses.
    """
    tc = spec.train
    if tc.lr != "auto" or not learners.LEARNERS[spec.model.kind].SGD:
        return None
    diverged, val = _lr_outcomes(batch, records, batch[0].checkpoints[-1])
    lrs = sorted(val)
    k = {lr: round(math.log(lr / tc.lr_start, tc.lr_factor)) for lr in lrs}
    best = min(lrs, key=lambda lr: (val[lr], lr))
    turned_up = len(lrs) >= 3 and all(val[lr] > (1 + FLAT) * val[best] for lr in lrs[-2:])
    if not any(diverged.values()) and not turned_up:
        up = tc.auto_lr(k[lrs[-1]] + 1)
        if up <= tc.lr_max * (1 + 1e-12):
            return up
    down = tc.auto_lr(k[lrs[0]] - 1)
    if best != lrs[0] or down < tc.lr_min * (1 - 1e-12):
        return None
    if len(lrs) > 1 and np.isfinite(val[lrs[1]]) and val[best] >= (1 - FLAT) * val[lrs[1]]:
        return None  # flat below: smaller steps would not be chosen either
    return down


#: A step-size search stops going down when the smallest step size beats the next by less.
FLAT = 0.01


def _lr_outcomes(batch: list[Unit], records: dict, n: int) -> tuple[dict, dict]:
    """Per step size of a batch: whether any run (any seed, any weight decay) diverged, and the
    median over seeds of the validation error at ``n`` (``inf`` where not reached), at the
    best weight decay."""
    diverged: dict[float, bool] = {}
    vals: dict[tuple, list[float]] = {}
    for u in batch:
        res = records[u.id]["result"]
        diverged[u.lr] = diverged.get(u.lr, False) or res["status"] == "diverged"
        row = next((r for r in res["rows"] if r["n"] == n), None)
        v = row.get("val_nmse", np.inf) if row else np.inf
        vals.setdefault(u.choice, []).append(np.inf if v is None or not np.isfinite(v) else v)
    best: dict[float, float] = {}
    for (lr, _), v in vals.items():
        best[lr] = min(best.get(lr, np.inf), float(np.median(v)))
    return diverged, best


def _unit_key(dump: dict, seed: int, lr: float, checkpoints, validate: bool) -> dict:
    spec = {**dump, "train": {**dump["train"], "lr": lr}}
    return {"spec": spec, "seed": seed, "checkpoints": list(checkpoints), "validate": validate}


# Planners


class _OnlinePlanner:
    """Online protocol: one batch of runs per cell, each recording the whole curve."""

    def __init__(self, n_min: int, n_cap: int):
        self.n_cap, self.units, self.timed_out = n_cap, [], False
        self._done = n_cap < n_min

    def next(self):
        return None if self._done else self.n_cap

    def observe(self, n, reached, timed_out):
        self._done = True
        self.timed_out = timed_out and not reached

    def max_left(self) -> int:
        return 0 if self._done else 1


class _FinitePlanner(samples.BisectionSearch):
    """Finite protocol: bracket then bisect; a step not reached because runs hit the
    wall-time cap ends the search (larger N only takes longer)."""

    def __init__(self, n_min: int, n_cap: int, factor: float, rel_tol: float):
        super().__init__(n_min, n_cap, factor, rel_tol)
        self.units, self.timed_out = [], False
        if n_cap < n_min:
            self.stop()

    def observe(self, n, reached, timed_out=False):
        super().observe(n, reached)
        if timed_out and not reached:
            self.timed_out = True
            self.stop()


def _planner(cfg: SweepConfig, spec: RunSpec):
    t = cfg.target
    n_cap = _n_cap(cfg, spec)
    if spec.train.protocol == "online":
        return _OnlinePlanner(t.n_min, n_cap)
    return _FinitePlanner(t.n_min, n_cap, t.grid_factor, t.rel_tol)


def _steps(spec: RunSpec, n: int) -> int:
    """SGD steps a run on ``n`` samples takes (0 for closed-form learners)."""
    tc = spec.train
    if not learners.LEARNERS[spec.model.kind].SGD:
        return 0
    if tc.protocol == "online":
        return n
    if tc.optimizer == "momentum":
        return math.ceil(n / tc.batch) * tc.epochs
    return n * tc.epochs


def _n_cap(cfg: SweepConfig, spec: RunSpec) -> int:
    """The largest sample size a run of this cell may use: ``n_max``, or less if
    ``target.max_steps`` or the learner's own cap (closed-form learners: ``model.max_n``, as
    their kernel matrices grow as n^2, or less where :func:`pacsim.learners.max_n` says so)
    allows fewer."""
    b = budget(cfg)
    max_n = learners.max_n(spec.model, spec.concept)
    n_max = b.n_max if max_n is None else min(b.n_max, max_n)
    if b.max_steps is None or _steps(spec, n_max) <= b.max_steps:
        return n_max
    lo, hi = 0, n_max  # steps(lo) <= max_steps < steps(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if _steps(spec, mid) <= b.max_steps else (lo, mid)
    return lo


def _cap_name(cfg: SweepConfig, spec: RunSpec, n_cap: int) -> str:
    """Which sample cap a censored cell hit: "n_max", "max_n" or "max_steps"."""
    max_n = learners.max_n(spec.model, spec.concept)
    if n_cap >= cfg.target.n_max:
        return "n_max"
    if max_n is not None and n_cap >= min(max_n, cfg.target.n_max):
        return "max_n"
    return "max_steps"


def _outcome(cfg: SweepConfig, batch: list[Unit], records: dict) -> tuple[bool, bool]:
    """Whether the median (validation-chosen step size) test error at this n is <= eps, and
    whether any run of the batch hit the wall-time cap."""
    n = batch[0].checkpoints[-1]
    lrs = sorted({u.choice for u in batch})
    seeds = sorted({u.seed for u in batch})
    err = np.full((len(lrs), len(seeds), 1), np.nan)
    val = np.full_like(err, np.nan)
    timed_out = False
    for u in batch:
        res = records[u.id]["result"]
        timed_out |= res["status"] == "timeout"
        row = next((r for r in res["rows"] if r["n"] == n), None)
        if row is not None:
            i, j = lrs.index(u.choice), seeds.index(u.seed)
            err[i, j, 0], val[i, j, 0] = row["test_nmse"], row["val_nmse"]
    med, _ = samples.selected_median(err, val)
    return bool(med[0] <= cfg.target.eps), timed_out


def _choices(df: pd.DataFrame) -> list[tuple[float, float]]:
    """The (step size, weight decay) pairs run in a cell's rows, sorted."""
    return sorted(set(zip(df["train.lr"], _wd_column(df), strict=True)))


def _wd_column(df: pd.DataFrame) -> pd.Series:
    if "train.weight_decay" not in df:
        return pd.Series(0.0, index=df.index)
    return pd.to_numeric(df["train.weight_decay"], errors="coerce").fillna(0.0)


def _cell_arrays(df: pd.DataFrame, lrs: list, seeds: list):
    """``err``, ``val`` of shape (choices, seeds, n) and the sorted ``ns`` of one cell, for the
    (step size, weight decay) pairs ``lrs`` (:func:`_choices`)."""
    ns = np.array(sorted(df["n"].unique()))
    err = np.full((len(lrs), len(seeds), len(ns)), np.nan)
    val = np.full_like(err, np.nan)
    index = {c: i for i, c in enumerate(lrs)}
    r = np.array([index[c] for c in zip(df["train.lr"], _wd_column(df), strict=True)], dtype=int)
    s = df["seed"].map({sd: i for i, sd in enumerate(seeds)}).to_numpy()
    k = np.searchsorted(ns, df["n"].to_numpy())
    err[r, s, k] = df["test_nmse"].to_numpy()
    val[r, s, k] = df["val_nmse"].to_numpy()
    return err, val, ns


def _point_n_eps(cfg: SweepConfig, spec: RunSpec, units: list[Unit], records: dict) -> float:
    """N_eps (no CI) of a finished cell from its records; ``inf`` if censored."""
    rows = []
    for u in units:
        res = records[u.id]["result"]
        by_n = {r["n"]: r for r in res["rows"]}
        for n in u.checkpoints:
            r = by_n.get(n, {})
            rows.append({"n": n, "train.lr": u.lr, "train.weight_decay": u.wd, "seed": u.seed,
                         "test_nmse": r.get("test_nmse", np.inf),
                         "val_nmse": r.get("val_nmse", np.inf)})
    table = pd.DataFrame(rows)
    err, val, ns = _cell_arrays(table, _choices(table), list(cfg.seeds))
    med, _ = samples.selected_median(err, val)
    return float(samples.first_reached(med, ns, cfg.target.eps))


# Progress


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


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = ",".join(map(str, v)) if isinstance(v, list) else v
    return out
