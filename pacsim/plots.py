"""Figures from tidy tables: each function takes DataFrames and returns a Figure (no I/O).

Conventions: log-log axes with base-2 ticks at the
values swept; points with their bootstrap CI (error bars and a band); the fitted power law
dotted over the fitted range, its exponent and CI in the legend; censored cells
(``N_eps > n_max``) drawn as open up-triangles at ``n_max`` in the line's colour, with their
own legend entry, never dropped. The statistics are computed in :mod:`pacsim.tables`; seaborn
only styles.

No global state is touched: the figures are :class:`matplotlib.figure.Figure` objects made
directly (not through ``pyplot``), so they draw and save on any machine without a display and
leave the importer's backend alone; seaborn's theme is applied through
:func:`matplotlib.rc_context` while a figure is built, not with ``sns.set_theme``.
"""

from __future__ import annotations

import functools
import math

import matplotlib
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullFormatter, ScalarFormatter

from .tables import fmt_exponent, fmt_value, line_keys, line_label, short_key

#: Legend text of the censored marker (tests look for it).
CENSORED_LABEL = "censored: N_eps > n_max (not fitted)"
_CENSORED_STYLE = {"marker": "^", "markerfacecolor": "none", "markersize": 10,
                   "markeredgewidth": 1.6, "linestyle": "none"}
#: Legend text of the predicted curves and N_eps (``pacsim theory``; tests look for it).
THEORY_LABEL = "theory: KRR prediction / linearised oracle (dashed)"
_THEORY_STYLE = {"marker": "D", "markerfacecolor": "none", "markersize": 7,
                 "markeredgewidth": 1.3, "linestyle": "--", "linewidth": 1.1}


def _styled(draw):
    """Build the figure under seaborn's whitegrid/notebook theme, without changing the caller's
    matplotlib settings (an :func:`matplotlib.rc_context`, not ``sns.set_theme``)."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        rc = {**sns.axes_style("whitegrid"), **sns.plotting_context("notebook")}
        with matplotlib.rc_context(rc):
            return draw(*args, **kwargs)

    return wrapper


@_styled
def n_eps_vs(table: pd.DataFrame, fits: pd.DataFrame, x: str,
             predicted: pd.DataFrame | None = None) -> Figure:
    """N_eps against ``x`` on log-log axes, one line per learner setting (and concept setting).

    Parameters
    ----------
    table : DataFrame
        :func:`pacsim.tables.n_eps_table`.
    fits : DataFrame
        :func:`pacsim.tables.fit_exponents` against the same ``x`` (may be empty).
    predicted : DataFrame, optional
        :func:`pacsim.theory.run.theory_n_eps` (``cell``, ``n_eps_pred``): the predicted N_eps
        of the cells that have one, drawn as open diamonds on a dashed line in the colour of
        the measured line.
    """
    fig = Figure(figsize=(7.0, 4.8))
    ax = fig.subplots()
    keys = line_keys(table, x)
    drawn = table[table["n_max"] > 0]  # cells the caps left without runs: named, not drawn
    groups = list(drawn.groupby(keys, sort=True, dropna=False)) if keys else [((), drawn)]
    colors = sns.color_palette("colorblind", max(len(groups), 1))
    fit_by_line = fits.set_index("line") if len(fits) else None
    any_censored = any_theory = False
    for i, (color, (_, df)) in enumerate(zip(colors, groups, strict=False)):
        df = df.sort_values(x)
        name = line_label(df.iloc[0], keys, table)
        dodge = 2 ** (0.03 * (i - (len(groups) - 1) / 2)) if len(groups) > 1 else 1.0
        ok = df[~df["censored"]]
        xs = ok[x].to_numpy(float) * dodge
        lo, hi = _ci_arrays(ok)
        has_fit = fit_by_line is not None and name in fit_by_line.index
        fit = fit_by_line.loc[name] if has_fit else None
        ax.errorbar(xs, ok["n_eps"], yerr=[ok["n_eps"] - lo, hi - ok["n_eps"]], fmt="o-",
                    color=color, capsize=3, linewidth=1.6, label=f"{name}: {_exponent_text(fit)}")
        if len(ok) > 1:
            ax.fill_between(xs, lo, hi, color=color, alpha=0.15, linewidth=0)
        if fit is not None and np.isfinite(fit["exponent"]):
            grid = np.geomspace(ok[x].min(), ok[x].max(), 50)
            ax.plot(grid * dodge, fit["prefactor"] * grid ** fit["exponent"], ":", color=color,
                    linewidth=1.2)
        cens = df[df["censored"]]
        if len(cens):
            any_censored = True
            ax.plot(cens[x].to_numpy(float) * dodge, cens["n_max"], color=color, **_CENSORED_STYLE)
        if predicted is not None and len(predicted):
            pr = df[["cell", x]].merge(predicted, on="cell").dropna(subset=["n_eps_pred"])
            if len(pr):
                ax.plot(pr[x].to_numpy(float) * dodge, pr["n_eps_pred"], **_THEORY_STYLE,
                        color=color)
                any_theory = True
    _budget_line(ax, table)
    _log_x(ax, table[x])
    ax.set_yscale("log")
    _no_runs_note(ax, table, x)
    ax.set_xlabel(_axis_name(x))
    ax.set_ylabel(_n_eps_ylabel(table))
    ax.set_title(f"Samples to reach normalised test error <= {table['eps'].iloc[0]:g}")
    _legend(ax, any_censored, any_theory)
    fig.tight_layout()
    return fig


@_styled
def n_eps_by_cell(table: pd.DataFrame) -> Figure:
    """N_eps per cell side by side (no numeric scaling variable): points with their CI, censored
    cells as open triangles at ``n_max``."""
    fig = Figure(figsize=(max(5.0, 0.9 * len(table) + 2), 4.8))
    ax = fig.subplots()
    labels = [_cell_label(r, table) for _, r in table.iterrows()]
    pos = np.arange(len(table))
    colors = sns.color_palette("colorblind", max(len(table), 1))
    ok = ~table["censored"].to_numpy(bool)
    lo, hi = _ci_arrays(table[ok])
    ax.errorbar(pos[ok], table.loc[ok, "n_eps"], yerr=[table.loc[ok, "n_eps"] - lo,
                                                         hi - table.loc[ok, "n_eps"]],
                fmt="o", color=colors[0], capsize=4, label="N_eps (median over seeds, CI)")
    cens = ~ok & (table["n_max"].to_numpy(float) > 0)  # no runs at all: a tick, no marker
    if cens.any():
        ax.plot(pos[cens], table.loc[cens, "n_max"], color=colors[0], **_CENSORED_STYLE)
    _budget_line(ax, table)
    ax.set_xticks(pos, labels, rotation=20 if len(table) > 3 else 0, ha="right"
                  if len(table) > 3 else "center")
    ax.set_yscale("log")
    ax.set_xlim(-0.6, len(table) - 0.4)
    ax.set_ylabel(_n_eps_ylabel(table))
    ax.set_title(f"Samples to reach normalised test error <= {table['eps'].iloc[0]:g}")
    _legend(ax, bool((~ok).any()))
    fig.tight_layout()
    return fig


@_styled
def error_vs_n(curves: pd.DataFrame, eps: float, censored_cells=(), x: str = "n",
               theory: pd.DataFrame | None = None) -> Figure:
    """Normalised test error against training samples: median over seeds with the IQR band.

    One panel per learner setting (when there are several), one line per cell; cells that
    never reach ``eps`` say so in the legend. ``theory``
    (:func:`pacsim.theory.run.theory_curves`: ``cell``, ``n``, ``pred``): the predicted curve
    of each cell that has one, dashed in the cell's colour.
    """
    order = curves.groupby("setting")["cell"].min().sort_values().index
    settings = [(name, curves[curves["setting"] == name]) for name in order]
    ncol = min(3, len(settings))
    nrow = math.ceil(len(settings) / ncol)
    fig = Figure(figsize=(5.2 * ncol, 4.2 * nrow))
    axes = fig.subplots(nrow, ncol, squeeze=False, sharey=True)
    keys = [k for k in curves.columns if k.startswith("concept.")]
    finite = curves[["median", "q25", "q75"]].to_numpy(float)
    finite = finite[np.isfinite(finite) & (finite > 0)]
    top = float(finite.max()) * 2 if finite.size else 10.0
    censored_cells = set(censored_cells)
    for ax, (setting, df) in zip(axes.flat, settings, strict=False):
        drew_theory = False
        cells = list(df.groupby("cell", sort=True))
        colors = sns.color_palette("viridis", max(len(cells), 1))
        for color, (cell, c) in zip(colors, cells, strict=True):
            xs = c[x] if x == "n" or (c["steps"] > 0).all() else c["n"]
            label = ", ".join(f"{short_key(k)}={fmt_value(c[k].iloc[0])}" for k in keys) or "cell"
            if cell in censored_cells:
                label += " (censored)"
            med = c["median"].where(np.isfinite(c["median"]))
            ax.plot(xs, med, color=color, label=label)
            ax.fill_between(xs, c["q25"].clip(upper=top), c["q75"].clip(upper=top), color=color,
                            alpha=0.18, linewidth=0)
            on_n = x == "n" or not (c["steps"] > 0).all()  # the predictions are against n
            th = theory[theory["cell"] == cell].dropna(subset=["pred"]).sort_values("n") \
                if theory is not None and len(theory) and on_n else None
            if th is not None and len(th):
                ax.plot(th["n"], th["pred"].clip(upper=top), "--", color=color, linewidth=1.3)
                drew_theory = True
        if drew_theory:
            ax.plot([], [], "--", color="0.3", label=THEORY_LABEL)
        ax.axhline(eps, color="k", linestyle="--", linewidth=1, label=f"eps = {eps:g}")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # labelled minor ticks overlap
        ax.set_yscale("log")
        ax.set_title(str(setting), fontsize="medium")
        ax.set_xlabel("SGD steps" if x == "steps" else "training samples n")
        ax.legend(fontsize="x-small")
    for ax in axes.flat[len(settings):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("normalised test error (median, IQR)")
    fig.tight_layout()
    return fig


@_styled
def ratio_vs(ratios: pd.DataFrame, x: str, ci: float = 0.95) -> Figure:
    """N_eps(SGD) / N_eps(kernel) against ``x``: one line per (SGD, kernel) pair with its
    bootstrap CI band; a censored SGD cell gives a lower bound (open up-triangle), a censored
    kernel cell an upper bound (open down-triangle)."""
    fig = Figure(figsize=(7.0, 4.8))
    ax = fig.subplots()
    other = [k for k in ratios.columns if k.startswith("concept.") and k != x]
    keys = ["sgd", "kernel", *other]
    groups = list(ratios.groupby(keys, sort=True, dropna=False))
    colors = sns.color_palette("colorblind", max(len(groups), 1))
    marks = {">": ("^", "lower bound (SGD censored)"), "<": ("v", "upper bound (kernel censored)")}
    seen = set()
    finite = ratios[["ratio", "ci_lo", "ci_hi"]].to_numpy(float)
    finite = finite[np.isfinite(finite) & (finite > 0)]
    top = float(finite.max()) * 4 if finite.size else 10.0
    bottom = float(finite.min()) / 4 if finite.size else 0.1
    for color, (key, df) in zip(colors, groups, strict=False):
        df = df.sort_values(x)
        name = f"{key[0]} / {key[1]}" + "".join(
            f", {short_key(k)}={fmt_value(v)}" for k, v in zip(other, key[2:], strict=True))
        val = df[df["bound"] == ""]
        ax.plot(val[x], val["ratio"], "o-", color=color, label=name)
        lo = val["ci_lo"].clip(lower=bottom).to_numpy(float)  # an unbounded CI: to the bottom
        hi = np.minimum(val["ci_hi"].to_numpy(float), top)  # an unbounded CI: to the top
        if len(val):
            ax.errorbar(val[x], val["ratio"], yerr=[val["ratio"] - np.minimum(lo, val["ratio"]),
                                                    np.maximum(hi, val["ratio"]) - val["ratio"]],
                        fmt="none", color=color, capsize=3)
        if len(val) > 1:
            ax.fill_between(val[x], lo, hi, color=color, alpha=0.15, linewidth=0)
        for b, (marker, _) in marks.items():
            d = df[df["bound"] == b]
            if len(d):
                seen.add(b)
                ax.plot(d[x], d["ratio"], color=color, **{**_CENSORED_STYLE, "marker": marker})
    ax.axhline(1.0, color="k", linewidth=0.8, linestyle="--")
    handles, labels = ax.get_legend_handles_labels()
    for b in sorted(seen):
        handles.append(Line2D([], [], color="0.3", **{**_CENSORED_STYLE, "marker": marks[b][0]}))
        labels.append(marks[b][1])
    unknown = ratios[ratios["bound"] == "?"]
    if len(unknown):
        handles.append(Line2D([], [], linestyle="none"))
        labels.append("both censored (no ratio) at " + ", ".join(
            f"{short_key(x)}={fmt_value(v)}" for v in sorted(unknown[x].unique())))
    _log_x(ax, ratios[x])
    ax.set_yscale("log")
    ax.set_xlabel(_axis_name(x))
    ax.set_ylabel(f"N_eps(SGD) / N_eps(kernel), {ci:.0%} CI")
    ax.set_title("Samples needed by SGD relative to the kernel (< 1: SGD needs fewer)")
    _place_legend(ax, handles, labels)
    fig.tight_layout()
    return fig


# Internal helpers


def _ci_arrays(ok: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """CI bounds for drawing: an infinite upper bound (censored in some resamples) is drawn up
    to ``n_max``, the budget line."""
    lo = ok["ci_lo"].to_numpy(float)
    hi = ok["ci_hi"].to_numpy(float)
    hi = np.where(np.isfinite(hi), hi, ok["n_max"].to_numpy(float))
    n = ok["n_eps"].to_numpy(float)
    return np.minimum(lo, n), np.maximum(hi, n)


def _no_runs_note(ax, table: pd.DataFrame, x: str) -> None:
    """Name the cells without any run (no budget to draw them at) in the legend."""
    empty = table[~(table["n_max"] > 0)]
    if len(empty):
        where = ", ".join(f"{r['setting']} {short_key(x)}={fmt_value(r[x])}"
                          for _, r in empty.iterrows())
        ax.plot([], [], linestyle="none", label=f"no runs (caps): {where}")


def _budget_line(ax, table: pd.DataFrame) -> None:
    n_max = table["n_max"].max()
    ax.axhline(n_max, color="0.5", linestyle=(0, (1, 3)), linewidth=1,
               label=f"budget n_max = {n_max:g}")


def _legend(ax, censored: bool, theory: bool = False) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if censored:
        handles.append(Line2D([], [], color="0.3", **_CENSORED_STYLE))
        labels.append(CENSORED_LABEL)
    if theory:
        handles.append(Line2D([], [], color="0.3", **_THEORY_STYLE))
        labels.append(THEORY_LABEL)
    _place_legend(ax, handles, labels)


def _place_legend(ax, handles, labels) -> None:
    """Inside the axes when short; to the right of them when long (save with
    ``bbox_inches="tight"``)."""
    if len(handles) <= 4 and max((len(t) for t in labels), default=0) <= 40:
        ax.legend(handles, labels, fontsize="small")
    else:
        ax.legend(handles, labels, fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1),
                  borderaxespad=0)


def _exponent_text(fit) -> str:
    if fit is None or not np.isfinite(fit["exponent"]):
        return "exponent n/a"
    b, lo, hi = (fmt_exponent(fit[k]) for k in ("exponent", "ci_lo", "ci_hi"))
    return f"b = {b} [{lo}, {hi}]"


def _n_eps_ylabel(table: pd.DataFrame) -> str:
    return (f"N_eps (median over {int(table['n_seeds'].max())} seeds, "
            f"{table['ci'].iloc[0]:.0%} CI)")


def _axis_name(x: str) -> str:
    return {"concept.L": "sequence length L", "model.m": "width m"}.get(x, x)


def _cell_label(row: pd.Series, table: pd.DataFrame) -> str:
    keys = [k for k in table.columns if k.startswith("concept.")]
    return ", ".join([str(row["setting"])] + [f"{short_key(k)}={fmt_value(row[k])}" for k in keys])


def _log_x(ax, xvalues) -> None:
    ax.set_xscale("log", base=2)
    ticks = np.unique(np.asarray(xvalues, float))
    ax.set_xticks(ticks)
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    if len(ticks) == 1:
        ax.set_xlim(ticks[0] / 1.5, ticks[0] * 1.5)


@_styled
def laziness(rows: pd.DataFrame, eps: float, title: str = "") -> Figure:
    """Test error against SGD steps (left) and against the relative movement of the trained
    matrices (right; ``lazy.move_*``, one colour per matrix), one line per seed.

    ``rows``: :func:`pacsim.tables.laziness_rows` of one cell. The right panel shows how far
    from its initialisation the network had to move to reach each error: a lazy (kernel)
    run reaches ``eps`` at a movement that shrinks with the width.
    """
    fig = Figure(figsize=(10.0, 4.2))
    left, right = fig.subplots(1, 2, sharey=True)
    x = "steps" if "steps" in rows and (rows["steps"] > 0).all() else "n"
    moves = [c for c in rows.columns if c.startswith("lazy.move_")]
    colors = sns.color_palette("colorblind", max(len(moves), 1))
    for i, (_, df) in enumerate(rows.groupby("seed", sort=True)):
        left.plot(df[x], df["test_nmse"], color="0.3", alpha=0.8, marker="o", markersize=3,
                  label="seeds" if i == 0 else None)
        for color, col in zip(colors, moves, strict=False):
            right.plot(df[col], df["test_nmse"], color=color, alpha=0.8, marker="o",
                       markersize=3, label=col.removeprefix("lazy.move_") if i == 0 else None)
    for ax in (left, right):
        ax.axhline(eps, color="0.5", linestyle="--", linewidth=1, label=f"eps = {eps:g}")
        ax.set_xscale("log")
        ax.set_yscale("log")
    left.set_xlabel("SGD steps" if x == "steps" else "training samples n")
    left.set_ylabel("normalised test error")
    right.set_xlabel("relative movement ||M - M0||_F / ||M0||_F")
    left.legend(frameon=False, fontsize=8)
    right.legend(frameon=False, fontsize=8, title="trained matrix")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
