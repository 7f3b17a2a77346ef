"""The standard figures of a run folder, drawn (:mod:`pacsim.plots`) from its analysis
(:func:`pacsim.rundir.load_analysis`) and saved under ``figures/`` (``pacsim plot``).

Every figure is computed from ``results.parquet`` alone (:func:`pacsim.tables.analyze`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .errors import PacsimError
from .rundir import load_analysis, read_results, read_target
from .store import RunDir
from .tables import Analysis

#: What the figure files are called and what they show.
FIGURES = {
    "n_eps_vs_L": "N_eps against the sequence length L (log-log), bootstrap CIs, fitted exponents",
    "n_eps_by_cell": "N_eps per cell (no numeric scaling variable), bootstrap CIs",
    "test_error_vs_N": "normalised test error against training samples: median and IQR over seeds",
    "ratio_sgd_kernel_vs_L": "N_eps of each SGD learner over N_eps of each kernel learner",
    "n_eps_vs_m": "N_eps against the width m (theory: at most log m)",
    "laziness_cell<N>": "one SGD cell (pacsim plot --cell N): test error against steps and "
                        "against the relative movement of the trained matrices",
}


def make_figures(a: Analysis, theory: pd.DataFrame | None = None) -> dict:
    """The standard figures of an analysis, by file stem (see :data:`FIGURES`).

    Always: N_eps against the scaling variable (``n_eps_vs_L``; ``n_eps_by_cell`` when there is
    none) and ``test_error_vs_N``. When the sweep has SGD and kernel learners:
    ``ratio_sgd_kernel_vs_L``. When it varies ``model.m``: ``n_eps_vs_m``. With ``theory``
    (``theory.parquet``, :mod:`pacsim.theory.run`): the predicted curves dashed beside the
    measured ones in ``test_error_vs_N`` and the predicted N_eps beside the measured in
    ``n_eps_vs_L``.
    """
    from . import plots

    figs = {}
    t = a.table
    th_curves = th_n_eps = None
    if theory is not None and len(theory):
        from .theory.summary import theory_curves, theory_n_eps

        th_curves, th_n_eps = theory_curves(theory), theory_n_eps(theory, a.eps)
    if a.x is not None:
        figs[f"n_eps_vs_{_stem(a.x)}"] = plots.n_eps_vs(t, a.fits, a.x, predicted=th_n_eps)
    else:
        figs["n_eps_by_cell"] = plots.n_eps_by_cell(t)
    censored = set(t.loc[t["censored"], "cell"])
    figs["test_error_vs_N"] = plots.error_vs_n(a.curves, a.eps, censored, theory=th_curves)
    if len(a.ratios) and a.x is not None:
        figs[f"ratio_sgd_kernel_vs_{_stem(a.x)}"] = plots.ratio_vs(a.ratios, a.x, a.ci)
    with_m = t[t["model.m"].notna()] if "model.m" in t else t.iloc[:0]
    if "model.m" in a.keys and with_m["model.m"].nunique() > 1:  # kernels without m: left out
        figs["n_eps_vs_m"] = plots.n_eps_vs(with_m, a.fits_m, "model.m")
    return figs


def save_figures(figs: dict, folder: Path, formats=("png", "pdf")) -> list[Path]:
    """Save every figure as ``folder/<stem>.<format>`` (plain :class:`~matplotlib.figure.Figure`
    objects, not registered with ``pyplot``: nothing to close, no display needed)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fig in figs.items():
        for ext in formats:
            path = folder / f"{name}.{ext}"
            fig.savefig(path, dpi=150, bbox_inches="tight")
            written.append(path)
    return written


def write_figures(run_dir: str | Path, eps: float | None = None) -> list[Path]:
    """Write the figures of :func:`make_figures` to ``RUN_DIR/figures/`` as PNG and PDF (with
    the predictions of ``RUN_DIR/theory.parquet`` when it is there)."""
    from .theory.summary import read_theory

    _, a = load_analysis(run_dir, eps)
    return save_figures(make_figures(a, read_theory(run_dir)), RunDir(run_dir).figures)


def _stem(key: str) -> str:
    return key.split(".", 1)[-1]


def laziness_figure(results: pd.DataFrame, cell: int, eps: float):
    """The laziness figure of one cell (:func:`pacsim.plots.laziness`), titled with the cell's
    learner setting; a one-line :class:`PacsimError` for a cell without ``lazy.*`` columns."""
    from . import plots
    from .tables import cell_table, laziness_rows

    try:
        rows = laziness_rows(results, cell)
    except ValueError as e:
        raise PacsimError(str(e)) from None
    setting = cell_table(results).set_index("cell").loc[cell, "setting"]
    return plots.laziness(rows, eps, title=f"cell {cell}: {setting}")


def write_laziness(run_dir: str | Path, cells, eps: float | None = None) -> list[Path]:
    """Write ``RUN_DIR/figures/laziness_cell<N>.{png,pdf}`` for each of ``cells``."""
    results = read_results(run_dir)
    eps = read_target(run_dir).get("eps") if eps is None else eps
    if eps is None:
        raise PacsimError(f"{str(run_dir)!r} has no sweep.json or sample_complexity.parquet to "
                          "read the target eps from")
    figs = {f"laziness_cell{c}": laziness_figure(results, int(c), float(eps)) for c in cells}
    return save_figures(figs, RunDir(run_dir).figures)
