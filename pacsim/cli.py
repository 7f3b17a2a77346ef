"""The ``pacsim`` command line: thin shells over library functions."""

from __future__ import annotations

import sys

import click

from . import __version__
from .errors import PacsimError


@click.group()
@click.version_option(__version__, prog_name="pacsim")
def main():
    """pacsim: sample complexity of SGD-trained over-parameterized RNNs, on the bench."""


@main.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=str))
@click.option("--out", default="runs", show_default=True, type=click.Path(file_okay=False),
              help="Parent folder of the run folder (results go to OUT/<sweep name>/).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes [default: one per core]. Results do not depend on it.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar [default: only on a terminal].")
def sweep(config, out, workers, progress):
    """Run (or resume) the sweep in CONFIG, a TOML file.

    Writes OUT/<name>/results.parquet (one row per run and evaluated sample size) and
    OUT/<name>/sample_complexity.parquet (N_eps per cell, bootstrap CI, censored flag).
    Finished runs are kept as they finish; running the same command again trains only
    what is missing. Exits 1 if any run failed.
    """
    from .config import load_sweep
    from .sweep import run_sweep

    with _user_errors():
        cfg = load_sweep(config)
        o = run_sweep(cfg, out=out, workers=workers, progress=progress)
    reused = o.n_runs - o.n_trained
    click.echo(
        f"{cfg.name}: {o.n_runs} runs ({o.n_trained} trained, {reused} reused), "
        f"{o.n_cells} cells ({o.n_censored} censored), {o.n_diverged} diverged, "
        f"{o.n_failed} failed, {o.wall_s:.1f} s -> {o.run_dir}"
    )
    for msg in o.failures[:10]:
        click.echo(f"  failed: {msg}", err=True)
    if o.n_failed:
        sys.exit(1)


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=str))
def plot(run_dir):
    """Draw RUN_DIR/figures/n_eps_vs_L.png and test_error_vs_N.png (and PDFs)."""
    from .figures import write_figures

    with _user_errors():
        paths = write_figures(run_dir)
    for p in paths:
        click.echo(str(p))


class _user_errors:
    """Turn a :class:`PacsimError` into a one-line ``Error: ...`` and exit status 1."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and issubclass(exc_type, PacsimError):
            raise click.ClickException(str(exc))
        return False
