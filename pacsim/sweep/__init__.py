"""Sweeps: expand the grid, run every (cell, seed, step size, N) in parallel, resume, tabulate.

Work units are single training runs (:func:`pacsim.train.run`), keyed by a content hash of
everything that determines their numbers (:func:`pacsim.store.run_id`). Each cell has a planner
that says which sample sizes to evaluate next: the online protocol needs one run per seed and
step size (the checkpointed curve); the finite protocol brackets N_eps on a geometric grid and
then bisects (:class:`pacsim.neps.BisectionSearch`), launching the runs of many cells at
once. Every finished run is written atomically to ``units/<run id>.json`` the moment it
finishes, so a killed sweep loses only the runs in flight, and a re-run trains only what is
missing; the tables are rebuilt from the unit files, so they are the same however often the
sweep was interrupted, and whatever the executor (:mod:`pacsim.executors`) and worker count.

A run that raises is recorded as ``failed`` (with its message), one whose loss blows up as
``diverged``, one stopped by the wall-time cap as ``timeout``; the sweep goes on. See
``docs/sweeps.md``.

The package: :mod:`.plan` (work units, run ids, each cell's search and the step-size
search), :mod:`.execute` (running, resuming, stale runs, status) and :mod:`.tabulate` (the
two tables). Everything public is re-exported here.
"""

from __future__ import annotations

from ..executors import WORKER_ENV
from .execute import (
    HARD_GRACE_S,
    SweepInterrupted,
    SweepOutcome,
    _Progress,
    run_sweep,
    sweep_status,
)
from .plan import FLAT, Budget, Unit, _next_lr, budget, cell_id, unit_lrs
from .tabulate import VOLATILE, results_table, sample_complexity_table

__all__ = ["FLAT", "HARD_GRACE_S", "VOLATILE", "WORKER_ENV", "Budget", "SweepInterrupted",
           "SweepOutcome", "Unit", "budget", "cell_id", "results_table", "run_sweep",
           "sample_complexity_table", "sweep_status", "unit_lrs", "_Progress", "_next_lr"]
