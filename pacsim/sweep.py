"""Sweeps: expand the grid, run every (cell, seed, step size, N) in parallel, resume, tabulate.

Work units are single training runs (:func:`pacsim.train.run`). Each cell has a planner that
says which sample sizes to evaluate next: the online protocol needs one run per seed and step
size (the checkpointed curve); the finite protocol brackets N_eps on a geometric grid and then
bisects (:class:`pacsim.samples.BisectionSearch`), launching the runs of many cells at once.
Every finished run is written atomically to ``units/<run id>.json`` the moment it finishes, so
an interrupted sweep loses only the runs in flight, and a re-run trains only what is missing.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import learners, samples, train
from .config import RunSpec, SweepConfig, geometric_grid, section_label
from .store import RunDir, provenance, run_id, write_atomic, write_parquet

#: Environment of worker processes: one thread each for BLAS and Numba (a process per core).
WORKER_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
}


@dataclass(frozen=True)
class Unit:
    """One training run of a sweep."""

    cell: int
    spec: RunSpec
    seed: int
    lr: float
    checkpoints: tuple[int, ...]
    validate: bool

    @property
    def key(self) -> dict:
        """Everything that determines the run's numbers (hashed into its id)."""
        spec = self.spec.model_dump(mode="json")
        spec["train"]["lr"] = self.lr
        return {"spec": spec, "seed": self.seed, "checkpoints": list(self.checkpoints),
                "validate": self.validate}

    @property
    def id(self) -> str:
        return run_id(self.key)


@dataclass
class SweepOutcome:
    """What a sweep did: counts, and where the tables are."""

    run_dir: Path
    n_runs: int = 0
    n_trained: int = 0
    n_failed: int = 0
    n_diverged: int = 0
    n_cells: int = 0
    n_censored: int = 0
    wall_s: float = 0.0
    failures: list[str] = field(default_factory=list)


def run_sweep(
    cfg: SweepConfig, out: str | Path = "runs", workers: int | None = None, progress: bool | None = None
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
        Show a progress bar (default: only on a terminal).
    """
    t0 = time.perf_counter()
    run_dir = RunDir(Path(out) / cfg.name)
    run_dir.prepare()
    write_atomic(run_dir.path / "sweep.json", cfg.model_dump_json(indent=2).encode())
    cells = cfg.cells()
    planners = [_planner(cfg, spec) for _, spec in cells]
    workers = workers or _available_cores()
    outcome = SweepOutcome(run_dir=run_dir.path, n_cells=len(cells))
    records: dict[str, dict] = {}

    from tqdm.auto import tqdm

    bar = tqdm(total=0, unit="run", disable=None if progress is None else not progress)
    # compile once, before workers start
    learners.warmup({(spec.model.kind, getattr(spec.model, "dtype", "float64")) for _, spec in cells})
    with _worker_env(), cf.ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        running: dict[cf.Future, Unit] = {}
        waiting = {}  # cell -> units of its current batch
        while True:
            for cell, planner in enumerate(planners):
                while cell not in waiting and (n := planner.next()) is not None:
                    batch = _batch(cfg, cell, cells[cell][1], n)
                    planner.units.extend(batch)
                    bar.total += len(batch)
                    todo = []
                    for unit in batch:
                        record = run_dir.load(unit.id)
                        if record is None:
                            todo.append(unit)
                        else:
                            records[unit.id] = record
                            bar.update(1)
                    if todo:
                        waiting[cell] = batch
                        for unit in todo:
                            running[pool.submit(_run_unit, unit)] = unit
                    else:
                        planner.observe(n, _reached(cfg, batch, records))
            bar.refresh()
            if not running:
                break
            done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for fut in done:
                unit = running.pop(fut)
                record = _record(unit, fut)
                run_dir.save(record)
                records[unit.id] = record
                outcome.n_trained += 1
                bar.update(1)
                batch = waiting.get(unit.cell)
                if batch and all(u.id in records for u in batch):
                    del waiting[unit.cell]
                    planners[unit.cell].observe(batch[0].checkpoints[-1], _reached(cfg, batch, records))
    bar.close()

    units = [u for planner in planners for u in planner.units]
    results = results_table(cfg, cells, units, records)
    write_parquet(results, run_dir.path / "results.parquet")
    sc = sample_complexity_table(cfg, cells, results)
    write_parquet(sc, run_dir.path / "sample_complexity.parquet")

    statuses = [records[u.id]["result"]["status"] for u in units]
    outcome.n_runs = len(units)
    outcome.n_failed = statuses.count("failed")
    outcome.n_diverged = statuses.count("diverged")
    outcome.failures = [records[u.id]["result"]["error"] for u in units
                        if records[u.id]["result"]["status"] == "failed"]
    outcome.n_censored = int(sc["censored"].sum())
    outcome.wall_s = time.perf_counter() - t0
    return outcome


def results_table(cfg: SweepConfig, cells, units: list[Unit], records: dict) -> pd.DataFrame:
    """Long-form table: one row per (run, evaluated n), flattened config and provenance."""
    rows = []
    for unit in units:
        rec = records[unit.id]
        res = rec["result"]
        base = {"run_id": unit.id, "cell": unit.cell, "cell_id": cell_id(cells[unit.cell][1]),
                **_flat(unit.spec.model_dump(mode="json"))}
        base.update({"train.lr": unit.lr, "seed": unit.seed, "eta": res["eta"],
                     "status": res["status"], "diverged_step": res["diverged_step"],
                     "error": res.get("error"), "test_label_var": res["test_label_var"],
                     "wall_s": res["wall_s"], **res.get("info", {}), **rec["provenance"]})
        by_n = {r["n"]: r for r in res["rows"]}
        for n in unit.checkpoints:  # a checkpoint after a divergence or failure is not reached
            r = by_n.get(n)
            if r is None:
                fill = np.inf if res["status"] == "diverged" else np.nan
                r = {"n": n, "train_loss": np.nan, "test_mse": fill, "test_nmse": fill,
                     "val_nmse": fill if unit.validate else np.nan}
            rows.append({**base, **r, "steps": _steps(unit, n)})
    df = pd.DataFrame(rows)
    df["diverged_step"] = df["diverged_step"].astype("Int64")
    return df


def sample_complexity_table(cfg: SweepConfig, cells, results: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: N_eps with its bootstrap CI, or censored (N_eps > n_max)."""
    t = cfg.target
    out = []
    for cell, (values, spec) in enumerate(cells):
        df = results[results["cell"] == cell]
        lrs = list(unit_lrs(spec))
        seeds = list(cfg.seeds)
        ns = np.array(sorted(df["n"].unique()))
        err = np.full((len(lrs), len(seeds), len(ns)), np.nan)
        val = np.full_like(err, np.nan)
        r = df["train.lr"].map({lr: i for i, lr in enumerate(lrs)}).to_numpy()
        s = df["seed"].map({sd: i for i, sd in enumerate(seeds)}).to_numpy()
        k = np.searchsorted(ns, df["n"].to_numpy())
        err[r, s, k] = df["test_nmse"].to_numpy()
        val[r, s, k] = df["val_nmse"].to_numpy()
        rng = np.random.default_rng(np.random.SeedSequence([cell, *seeds]))
        est = samples.n_eps(err, val, ns, lrs, t.eps, n_boot=t.n_boot, ci=t.ci, rng=rng)
        labels = {k: section_label(v) for k, v in values.items()}
        out.append({"cell": cell, "cell_id": cell_id(spec), **labels,
                    "protocol": spec.train.protocol, "eps": t.eps, "n_max": t.n_max,
                    "n_seeds": len(seeds), "n_eps": est.n_eps, "ci_lo": est.ci_lo,
                    "ci_hi": est.ci_hi, "censored": est.censored, "lr_at_n_eps": est.lr_at_n_eps,
                    "ci": t.ci})
    return pd.DataFrame(out)


def unit_lrs(spec: RunSpec) -> tuple[float, ...]:
    """The step sizes a cell runs: ``train.lr`` for SGD learners; ``(0.0,)`` (meaning "none")
    for closed-form learners, which have no step size."""
    return spec.train.lrs if learners.LEARNERS[spec.model.kind].SGD else (0.0,)


def cell_id(spec: RunSpec) -> str:
    """Stable id of a cell (its resolved config)."""
    return run_id({"cell": spec.model_dump(mode="json")})


# Internal helpers


class _OnlinePlanner:
    """Online protocol: one batch of runs per cell, each recording the whole curve."""

    def __init__(self, n_max):
        self.n_max, self.units, self._done = n_max, [], False

    def next(self):
        return None if self._done else self.n_max

    def observe(self, n, reached):
        self._done = True


class _FinitePlanner(samples.BisectionSearch):
    def __init__(self, *args):
        super().__init__(*args)
        self.units = []


def _planner(cfg: SweepConfig, spec: RunSpec):
    t = cfg.target
    if spec.train.protocol == "online":
        return _OnlinePlanner(t.n_max)
    return _FinitePlanner(t.n_min, t.n_max, t.grid_factor, t.rel_tol)


def _batch(cfg: SweepConfig, cell: int, spec: RunSpec, n: int) -> list[Unit]:
    """The runs evaluating ``n`` samples in ``cell``: every seed and step size."""
    t = cfg.target
    if spec.train.protocol == "online":
        checkpoints = tuple(geometric_grid(t.n_min, n, t.points_per_doubling))
    else:
        checkpoints = (n,)
    lrs = unit_lrs(spec)
    validate = len(lrs) > 1
    return [Unit(cell, spec, seed, lr, checkpoints, validate) for seed in cfg.seeds for lr in lrs]


def _reached(cfg: SweepConfig, batch: list[Unit], records: dict) -> bool:
    """Whether the median (validation-chosen step size) test error at this n is <= eps."""
    n = batch[0].checkpoints[-1]
    lrs = sorted({u.lr for u in batch})
    seeds = sorted({u.seed for u in batch})
    err = np.full((len(lrs), len(seeds), 1), np.nan)
    val = np.full_like(err, np.nan)
    for u in batch:
        res = records[u.id]["result"]
        row = next((r for r in res["rows"] if r["n"] == n), None)
        if row is not None:
            i, j = lrs.index(u.lr), seeds.index(u.seed)
            err[i, j, 0], val[i, j, 0] = row["test_nmse"], row["val_nmse"]
    med, _ = samples.selected_median(err, val)
    return bool(med[0] <= cfg.target.eps)


def _run_unit(unit: Unit) -> dict:
    """Worker: train one run; never raises (a failure is a result)."""
    try:
        res = train.run(unit.spec, unit.seed, unit.lr, unit.checkpoints, unit.validate)
        return {"rows": res.rows, "status": res.status, "diverged_step": res.diverged_step,
                "eta": res.eta, "test_label_var": res.test_label_var, "wall_s": res.wall_s,
                "info": res.info, "error": None}
    except Exception as e:  # noqa: BLE001 - recorded, the sweep goes on
        return {"rows": [], "status": "failed", "diverged_step": None, "eta": np.nan,
                "test_label_var": np.nan, "wall_s": 0.0,
                "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}


def _record(unit: Unit, fut: cf.Future) -> dict:
    try:
        result = fut.result()
    except Exception as e:  # the worker process died (killed, out of memory)
        result = {"rows": [], "status": "failed", "diverged_step": None, "eta": np.nan,
                  "test_label_var": np.nan, "wall_s": 0.0, "error": f"worker died: {e!r}"}
    return {"id": unit.id, "unit": unit.key, "result": result, "provenance": provenance()}


def _steps(unit: Unit, n: int) -> int:
    """SGD steps taken by checkpoint ``n`` (0 for closed-form learners)."""
    if not learners.LEARNERS[unit.spec.model.kind].SGD:
        return 0
    return n if unit.spec.train.protocol == "online" else n * unit.spec.train.epochs


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = ",".join(map(str, v)) if isinstance(v, list) else v
    return out


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def _worker_env():
    """Set the single-thread environment for spawned workers, then restore the parent's."""
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
