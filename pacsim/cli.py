"""The ``pacsim`` command line: thin shells over library functions."""

from __future__ import annotations

import sys

import click

from . import __version__
from .errors import PacsimError


@click.group()
@click.version_option(__version__, prog_name="pacsim")
def main():
    """pacsim: sample complexity of SGD-trained RNNs and ResNets against kernel baselines, on the bench."""


@main.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=str))
@click.option("--out", default="runs", show_default=True, type=click.Path(file_okay=False),
              help="Parent folder of the run folder (results go to OUT/<sweep name>/).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes (local executor, or the LocalCluster of --executor dask) "
                   "[default: one per core]. Results do not depend on it.")
@click.option("--executor", type=click.Choice(["local", "dask"]), default=None,
              help="local: worker processes on this machine [default]; dask: Dask distributed "
                   "(a LocalCluster, or the cluster of --scheduler). Results do not depend on it.")
@click.option("--scheduler", metavar="ADDRESS", default=None,
              help="Run on the Dask cluster whose scheduler is at ADDRESS (tcp://host:8786); "
                   "implies --executor dask.")
@click.option("--retry-failed", is_flag=True,
              help="Run again the stored runs that failed (by default they are kept).")
@click.option("--keep-stale", is_flag=True,
              help="Reuse stored runs computed by other pacsim code (other numerics or result "
                   "columns); by default they are recomputed. Either way their count is shown.")
@click.option("--wait", is_flag=True,
              help="If another sweep is writing to the run folder, wait for it to finish "
                   "instead of exiting with status 75.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar [default: a bar on a terminal, a log line every 30 s "
                   "otherwise].")
def sweep(config, out, workers, executor, scheduler, retry_failed, keep_stale, wait, progress):
    """Run (or resume) the sweep in CONFIG, a TOML file.

    Writes OUT/<name>/results.parquet (one row per run and evaluated sample size) and
    OUT/<name>/sample_complexity.parquet (N_eps per cell, bootstrap CI, censored flag).
    Finished runs are kept as they finish; running the same command again trains only
    what is missing; stored runs computed by other pacsim code are recomputed (or, with
    --keep-stale, reused), and their count is shown first. Exit status: 0 done; 1 a run failed (summary on stderr) or bad
    input; 75 the run folder is in use by another sweep; 130 interrupted.
    """
    from .config import load_sweep
    from .sweep import run_sweep

    if executor == "local" and scheduler is not None:
        raise click.UsageError("--scheduler needs --executor dask (or no --executor)")

    def waiting(holder):
        click.echo(f"{out}: in use by another {holder}; waiting for it to finish...", err=True)

    with _user_errors():
        cfg = load_sweep(config)
        o = run_sweep(cfg, out=out, workers=workers, progress=progress,
                      executor=executor or "local", scheduler=scheduler,
                      retry_failed=retry_failed, keep_stale=keep_stale, wait=wait,
                      on_wait=waiting, on_stale=lambda line: click.echo(line, err=True))
    reused = o.n_runs - o.n_trained
    timeout = f", {o.n_timeout} timed out" if o.n_timeout else ""
    click.echo(
        f"{cfg.name}: {o.n_runs} runs ({o.n_trained} trained, {reused} reused), "
        f"{o.n_cells} cells ({o.n_censored} censored), {o.n_diverged} diverged{timeout}, "
        f"{o.n_failed} failed, {o.wall_s:.1f} s -> {o.run_dir}"
    )
    if o.n_failed:
        for msg in o.failures[:10]:
            click.echo(f"  failed: {msg}", err=True)
        if len(o.failures) > 10:
            click.echo(f"  ... and {len(o.failures) - 10} more (status column of "
                       "results.parquet)", err=True)
        click.echo(f"{cfg.name}: {o.n_failed} of {o.n_runs} runs failed; the tables treat them "
                   "as not reached. Fix the cause and re-run with --retry-failed.", err=True)
        sys.exit(1)


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=str))
def status(run_dir):
    """Where the sweep in RUN_DIR stands: per cell, runs done / diverged / timed out / failed /
    pending, and the state of its search (works on an unfinished or interrupted sweep)."""
    import pandas as pd

    from .sweep import sweep_status

    with _user_errors():
        df, s = sweep_status(run_dir)
    with pd.option_context("display.max_rows", None, "display.max_columns", None,
                           "display.width", 200):
        click.echo(df.to_string(index=False, na_rep="-"))
    more = f" (+ up to {s['more']} more as searches go on)" if s["more"] else ""
    click.echo(
        f"{s['name']}: {s['finished_cells']}/{s['cells']} cells finished ({s['censored']} "
        f"censored); runs: {s['done']} ok, {s['diverged']} diverged, {s['timeout']} timed out, "
        f"{s['failed']} failed, {s['pending']} pending{more}"
    )
    if s["stale"]:
        click.echo(f"{s['stale']} stored runs were computed by other pacsim code; the next "
                   "`pacsim sweep` recomputes them (they count as pending above)")
    click.echo(f"running now: {s['holder']}" if s["holder"] else "not running")


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=str))
@click.option("--cell", "cells", type=int, multiple=True,
              help="Also draw laziness_cell<N> for SGD cell N (repeatable): test error against "
                   "steps and against the relative movement of the trained matrices.")
def plot(run_dir, cells):
    """Draw RUN_DIR/figures/: n_eps_vs_L and test_error_vs_N, plus ratio_sgd_kernel_vs_L (SGD
    and kernel learners) and n_eps_vs_m (widths swept), as PNG and PDF, from results.parquet."""
    from .figures import write_figures, write_laziness

    with _user_errors():
        paths = write_figures(run_dir)
        if cells:
            paths += write_laziness(run_dir, cells)
    for p in paths:
        click.echo(str(p))


@main.command("concepts")
@click.argument("name", required=False)
def concepts_command(name):
    """List the concept families (targets) with their parameters and defaults, or describe
    family NAME: formula, source, label scale, parameters."""
    from . import concepts

    with _user_errors():
        click.echo(concepts.catalogue() if name is None else concepts.describe(name))


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=str))
@click.option("--eps", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Target normalised test error [default: the sweep's target.eps].")
def report(run_dir, eps):
    """Write RUN_DIR/report.md and a self-contained RUN_DIR/report.html: what was run, N_eps
    per cell, fitted exponents with CIs, SGD/kernel ratios, figures, censored cells, failures.
    Everything is recomputed from RUN_DIR/results.parquet."""
    from .report import write_report

    with _user_errors():
        paths = write_report(run_dir, eps=eps)
    for p in paths:
        click.echo(str(p))


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=str))
@click.option("--seeds", type=click.IntRange(min=1), default=2, show_default=True,
              help="Predict for the first SEEDS seeds of the sweep (their targets and "
                   "networks); the spread over them is kept.")
@click.option("--m-max", type=click.IntRange(min=64), default=2048, show_default=True,
              help="Largest number M of fresh samples whose Gram matrix estimates the "
                   "spectrum (M doubles from 256 until the estimate is tight); predictions "
                   "reach n <= M/2.")
@click.option("--tol", type=click.FloatRange(min=0, min_open=True), default=0.1,
              show_default=True,
              help="The estimate is tight when its held-out and in-sample predictions agree "
                   "within a factor 1 + TOL.")
@click.option("--oracle-max", type=click.IntRange(min=1), default=2048, show_default=True,
              help="Largest number of (sample, scored output) pairs in the linearised "
                   "oracle's kernel (SGD cells): the run's N samples (finite protocol; larger "
                   "N are skipped with a note) or the M fresh samples (online; predictions "
                   "reach n <= M/2).")
def theory(run_dir, seeds, m_max, tol, oracle_max):
    """Predict the learning curve of every kernel cell of RUN_DIR from the spectral theory of
    kernel ridge regression, and of every SGD cell of mlp2, mlp3, resnet or the ReLU rnn from
    its network linearised at initialisation (docs/theory.md), and write
    RUN_DIR/theory.parquet. `pacsim plot` and `pacsim report` then show predicted curves and
    N_eps beside the measured ones."""
    from .theory.run import write_theory

    with _user_errors():
        path = write_theory(run_dir, seeds=seeds, M0=min(256, m_max // 2), M_max=m_max,
                            tol=tol, oracle_max=oracle_max,
                            log=lambda line: click.echo(line, err=True))
    click.echo(str(path))


class _user_errors:
    """Turn a :class:`PacsimError` into a one-line ``Error: ...`` and exit status 1."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and issubclass(exc_type, PacsimError):
            err = click.ClickException(str(exc))
            err.exit_code = getattr(exc, "exit_code", 1)
            raise err
        return False
