"""Planning a sweep: its work units, their ids, and each cell's search.

A cell's planner says which sample sizes to evaluate next (online: one batch per cell, the
whole curve from each run; finite: bracket N_eps on a geometric grid, then bisect); a batch is
every seed at every step size (and weight decay) of the cell, and a step-size search
(``train.lr = "auto"``) extends its batch one step size at a time (:func:`_next_lr`).
:class:`_Search` moves every cell on over the stored runs, so a resumed sweep replays the
searches and launches only what is missing.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

from .. import learners, neps
from ..config import RunSpec, SweepConfig, geometric_grid
from ..store import run_id


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


def unit_lrs(spec: RunSpec) -> tuple[float, ...]:
    """The step sizes a cell runs: ``train.lr`` for SGD learners; ``(0.0,)`` (meaning "none")
    for closed-form learners, which have no step size."""
    return spec.train.lrs if learners.LEARNERS[spec.model.kind].SGD else (0.0,)


def cell_id(spec: RunSpec) -> str:
    """Stable id of a cell (its resolved config)."""
    return run_id({"cell": spec.model_dump(mode="json")})


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
                n += len(self.cfg.seeds) * len(self._by_wd(cell)) * (cell in self.waiting)
            batches = p.max_left() - (cell in self.waiting)
            n += max(0, batches) * len(self.cfg.seeds) * per_batch * len(self._by_wd(cell))
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
        if not isinstance(spec.train.weight_decay, tuple) or not learners.LEARNERS[
                spec.model.kind].SGD:  # closed-form learners have no weight decay
            return [(spec, self._dumps[cell])]
        out = []
        for wd in wds:
            one = spec.model_copy(update={"train": spec.train.model_copy(
                update={"weight_decay": wd})})
            out.append((one, one.model_dump(mode="json")))
        return out


#: Step sizes a search is expected to try, before it has tried any (for the ETA only).
AUTO_LR_GUESS = 8


def _validates(spec: RunSpec) -> bool:
    """Whether the runs of a cell record the validation error: it chooses their step size
    (a list, or a search) or their stopping epoch (``patience``)."""
    tc = spec.train
    if not learners.LEARNERS[spec.model.kind].SGD:
        return False
    return (tc.lr_search != "fixed" or len(tc.weight_decays) > 1
            or (tc.patience is not None and tc.protocol == "finite"))


def _next_lr(spec: RunSpec, batch: list[Unit], records: dict) -> float | None:
    """The next step size of a batch's "auto" search, or ``None`` when it is over.

    Upwards from ``lr_start`` by ``lr_factor`` until a run of some seed diverges (the
    stability edge), the median validation error has turned back up (the two largest step
    sizes both worse than the best by more than ``FLAT``: a step size so large that SGD
    kills the network without a NaN), or ``lr_max`` is passed; then downwards, while at some
    evaluated ``n`` the step size with the smallest median validation error is the smallest
    tried (a grid whose best value sits at its edge is not a result; the choice is made per
    ``n``) and is better than the next larger one by more than ``FLAT`` (relative), until
    ``lr_min``; every step size diverging counts as the smallest winning. A run that timed
    out or failed ends the search (a budget or an error, not a step size, stopped it). Reads
    only validation errors and statuses.
    """
    tc = spec.train
    if tc.lr != "auto" or not learners.LEARNERS[spec.model.kind].SGD:
        return None
    if any(records[u.id]["result"]["status"] in ("timeout", "failed") for u in batch):
        return None  # a budget or an error, not the step size: the cell's planner decides
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
    if down < tc.lr_min * (1 - 1e-12):
        return None
    for n in batch[0].checkpoints:  # the choice is made at every n: the smallest best anywhere?
        at_n = val if n == batch[0].checkpoints[-1] else _lr_outcomes(batch, records, n)[1]
        if _smallest_wins(at_n):
            return down
    return None


def _smallest_wins(val: dict[float, float]) -> bool:
    """Whether the smallest step size has the smallest median validation error, by more than
    ``FLAT`` over the next larger one (flat below: smaller steps would not be chosen either)."""
    lrs = sorted(val)
    if not np.isfinite(val[lrs[0]]):  # unusable: go down only if nothing was usable (diverged)
        return not any(np.isfinite(v) for v in val.values())
    best = min(lrs, key=lambda lr: (val[lr], lr))
    if best != lrs[0]:
        return False
    return len(lrs) == 1 or not np.isfinite(val[lrs[1]]) or val[best] < (1 - FLAT) * val[lrs[1]]


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


class _FinitePlanner(neps.BisectionSearch):
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
    if tc.optimizer != "sgd":  # one step per mini-batch
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
    med, _ = neps.selected_median(err, val)
    return bool(med[0] <= cfg.target.eps), timed_out
