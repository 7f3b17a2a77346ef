"""Read a run folder's tables, draw the standard figures, save them (``pacsim plot``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .errors import PacsimError
from .store import RunDir
from .tables import grid_keys, learning_curves


def write_figures(run_dir: str | Path) -> list[Path]:
    """Write ``figures/n_eps_vs_<x>.png`` and ``figures/test_error_vs_N.png`` (and PDFs).

    ``x`` is ``concept.L`` when the sweep varies it, otherwise its first grid key; the other
    grid keys label the lines.
    """
    rd = RunDir(run_dir)
    results, sc = read_tables(rd.path)
    import matplotlib.pyplot as plt

    from . import plots

    keys = grid_keys(sc)
    x = "concept.L" if "concept.L" in keys else (keys[0] if keys else "concept.L")
    if x not in sc.columns:  # no grid: plot the single cell at its L
        sc = sc.assign(**{x: results.groupby("cell")[x].first().reindex(sc["cell"]).to_numpy()})
    hue = [k for k in keys if k != x]
    rd.figures.mkdir(exist_ok=True)
    written = []
    figs = {
        f"n_eps_vs_{x.split('.')[-1]}": plots.n_eps_vs(sc, x, hue),
        "test_error_vs_N": plots.error_vs_n(
            learning_curves(results, keys), keys, float(sc["eps"].iloc[0])
        ),
    }
    for name, fig in figs.items():
        for ext in ("png", "pdf"):
            path = rd.figures / f"{name}.{ext}"
            fig.savefig(path, dpi=150)
            written.append(path)
        plt.close(fig)
    return written


def read_tables(run_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``results.parquet`` and ``sample_complexity.parquet`` of a run folder."""
    paths = [run_dir / "results.parquet", run_dir / "sample_complexity.parquet"]
    for p in paths:
        if not p.is_file():
            raise PacsimError(f"no {p.name} in {str(run_dir)!r}; run `pacsim sweep CONFIG` first")
    return pd.read_parquet(paths[0]), pd.read_parquet(paths[1])
