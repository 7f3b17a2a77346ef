"""Figures: written, non-empty, and censored cells drawn and marked (never silently dropped)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from matplotlib.lines import Line2D
from test_analysis import make_results

from pacsim import plots, tables
from pacsim.cli import main
from pacsim.figures import make_figures, save_figures
from pacsim.rundir import load_analysis


def run_folder(tmp_path, res, eps=0.5, n_boot=200):
    """A run folder holding only results.parquet and a sweep.json with the target."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    res.to_parquet(tmp_path / "results.parquet")
    (tmp_path / "sweep.json").write_text(json.dumps(
        {"name": tmp_path.name, "seeds": sorted(set(res["seed"].tolist())),
         "target": {"eps": eps, "n_boot": n_boot, "ci": 0.95}}))
    return tmp_path


def _legend_texts(fig):
    return [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]


def _markers(ax, marker):
    """(x, y) of every point drawn with ``marker`` and no line (the bound markers)."""
    pts = []
    for line in ax.get_lines():
        if line.get_marker() == marker and line.get_linestyle() in ("None", "none", ""):
            pts += list(zip(line.get_xdata(), line.get_ydata(), strict=True))
    return pts


def test_censored_cells_are_drawn_and_in_the_legend():
    res = make_results({"rnn": 2.0}, Ls=(4, 8, 16, 32, 64), n_max=2**14)
    a = tables.analyze(res, 0.5, n_boot=200)
    assert a.table["censored"].sum() == 2
    fig = plots.n_eps_vs(a.table, a.fits, "concept.L")
    texts = _legend_texts(fig)
    assert plots.CENSORED_LABEL in texts
    assert any(t.startswith("rnn: b = ") for t in texts)
    tri = _markers(fig.axes[0], "^")
    assert sorted(x for x, _ in tri) == [32, 64] and all(y == 2**14 for _, y in tri)


def test_all_censored_and_single_cell_still_plot(tmp_path):
    res = make_results({"rnn": 2.0}, Ls=(32, 64), a=1000.0, n_max=2**10)
    a = tables.analyze(res, 0.5, n_boot=100)
    figs = make_figures(a)
    fig = figs["n_eps_vs_L"]
    assert "rnn: exponent n/a" in _legend_texts(fig) and plots.CENSORED_LABEL in _legend_texts(fig)
    assert len(_markers(fig.axes[0], "^")) == 2
    assert all("(censored)" in t for t in _legend_texts(figs["test_error_vs_N"])
               if t.startswith("L="))
    paths = save_figures(figs, tmp_path / "a", formats=("png",))
    one = tables.analyze(make_results({"rnn": 1.0}, Ls=(8,)), 0.5, n_boot=100)
    assert one.table["concept.L"].tolist() == [8]  # not varied, still on the x axis
    paths += save_figures(make_figures(one), tmp_path / "b", formats=("png",))
    assert len(paths) == 4 and all(p.stat().st_size > 1000 for p in paths)


def test_no_scaling_variable_plots_cells_side_by_side(tmp_path):
    res = make_results({"rnn": 1.0, "rntk": 2.0}, Ls=(8,), n_max=2**8).drop(columns="concept.L")
    a = tables.analyze(res, 0.5, n_boot=100)
    assert a.x is None and a.fits.empty
    figs = make_figures(a)
    assert set(figs) == {"n_eps_by_cell", "test_error_vs_N"}
    ax = figs["n_eps_by_cell"].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["rnn", "rntk"]
    assert plots.CENSORED_LABEL in _legend_texts(figs["n_eps_by_cell"])  # rntk: 20*8^2 > 256
    assert all(p.stat().st_size > 1000 for p in save_figures(figs, tmp_path, formats=("png",)))


def test_ratio_and_width_figures():
    res = make_results({"rnn": 1.0, "rntk": 3.0}, Ls=(4, 8, 16), ms=(64, 256), n_max=2**14)
    a = tables.analyze(res, 0.5, n_boot=200)
    figs = make_figures(a)
    assert set(figs) == {"n_eps_vs_L", "test_error_vs_N", "ratio_sgd_kernel_vs_L", "n_eps_vs_m"}
    ratio = figs["ratio_sgd_kernel_vs_L"]
    assert "upper bound (kernel censored)" in _legend_texts(ratio)
    assert {x for x, _ in _markers(ratio.axes[0], "v")} == {16}  # 20 * 16^3 > n_max
    assert {"rnn(m=64) / rntk(m=64)", "rnn(m=256) / rntk(m=256)"} <= set(_legend_texts(ratio))
    width = _legend_texts(figs["n_eps_vs_m"])
    assert any(t.startswith("rnn, L=4: b = ") for t in width)
    assert plots.CENSORED_LABEL in width  # rntk at L=16, both widths


def test_width_figure_leaves_out_learners_without_a_width():
    """A kernel without ``model.m`` (NaN) next to an RNN at two widths: n_eps_vs_m is drawn for
    the RNN only (it used to fail converting NaN to int)."""
    res = make_results({"rnn": 1.0, "rntk": 3.0}, Ls=(4, 8), ms=(64, 256), n_max=2**14)
    res.loc[res["model.kind"] == "rntk", "model.m"] = np.nan
    figs = make_figures(tables.analyze(res, 0.5, n_boot=100))
    assert "n_eps_vs_m" in figs
    assert not any("rntk" in t for t in _legend_texts(figs["n_eps_vs_m"]))


def test_error_vs_n_panels_per_setting():
    res = make_results({"rnn": 1.0, "mlp2": 1.5}, Ls=(4, 8))
    lc = tables.learning_curves(res)
    fig = plots.error_vs_n(lc, 0.5)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["rnn", "mlp2"]
    for ax in visible:
        lines = [ln for ln in ax.get_lines() if isinstance(ln, Line2D) and ln.get_label() == "L=4"]
        assert len(lines) == 1 and np.isfinite(lines[0].get_ydata()).any()


def test_plot_command_writes_png_and_pdf(tmp_path):
    folder = run_folder(tmp_path / "syn", make_results({"rnn": 1.0, "rntk": 2.0}, Ls=(4, 8),
                                                       n_max=2**12))
    r = CliRunner().invoke(main, ["plot", str(folder)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    names = {line.rsplit("/", 1)[-1] for line in r.output.split()}
    assert names == {f"{s}.{e}" for s in ("n_eps_vs_L", "test_error_vs_N",
                                          "ratio_sgd_kernel_vs_L") for e in ("png", "pdf")}
    for name in names:
        assert (folder / "figures" / name).stat().st_size > 1000


def test_eps_comes_from_the_folder_or_the_caller(tmp_path):
    res = make_results({"rnn": 1.0}, Ls=(4, 8))
    folder = run_folder(tmp_path / "a", res, eps=0.25)
    _, a = load_analysis(folder)
    assert a.eps == 0.25
    _, a = load_analysis(folder, eps=0.5)
    assert a.eps == 0.5
    (folder / "sweep.json").unlink()
    from pacsim.errors import PacsimError

    with pytest.raises(PacsimError, match="--eps"):
        load_analysis(folder)


def test_drawing_leaves_the_backend_alone_and_needs_no_display(tmp_path):
    """Importing pacsim.plots must not switch the importer's matplotlib backend (it used to call
    ``matplotlib.use("Agg")``), and ``pacsim plot`` must write figures with neither DISPLAY nor
    MPLBACKEND set. Run in a fresh interpreter so that no earlier import has chosen a backend."""
    import os
    import subprocess
    import sys

    folder = run_folder(tmp_path / "syn", make_results({"rnn": 1.0}, Ls=(4, 8), n_max=2**12))
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "MPLBACKEND", "WAYLAND_DISPLAY")}
    code = (
        "import matplotlib; matplotlib.use('svg'); import matplotlib as mpl\n"
        "import pacsim.plots, pacsim.figures\n"
        "assert mpl.get_backend() == 'svg', mpl.get_backend()\n"
        "rc = dict(mpl.rcParams)\n"
        "from pacsim.figures import write_figures\n"
        f"paths = write_figures({str(folder)!r})\n"
        "assert mpl.get_backend() == 'svg', mpl.get_backend()\n"
        "assert mpl.rcParams['axes.facecolor'] == rc['axes.facecolor']\n"
        "print(len(paths))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    (folder / "figures").rename(folder / "figures_api")
    r = subprocess.run([sys.executable, "-c", "from pacsim.cli import main; main()", "plot",
                        str(folder)], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (folder / "figures" / "n_eps_vs_L.png").stat().st_size > 1000
    assert (folder / "figures" / "n_eps_vs_L.pdf").stat().st_size > 1000
