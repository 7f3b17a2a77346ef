"""Figures from tidy tables: each function takes DataFrames and returns a Figure (no I/O)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only; no display needed

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import NullFormatter, ScalarFormatter  # noqa: E402

from .tables import power_law_fit  # noqa: E402


def n_eps_vs(sc: pd.DataFrame, x: str, hue: list[str]) -> plt.Figure:
    """N_eps against ``x`` on log-log axes: one line per setting of ``hue``, CI bands, the
    fitted power-law exponent in the legend; censored cells drawn as open triangles at
    ``n_max`` (``N_eps > n_max``), left out of the fit but never dropped."""
    sns.set_theme(style="whitegrid", context="notebook")
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    groups = list(sc.groupby(hue, sort=True)) if hue else [((), sc)]
    colors = sns.color_palette("colorblind", len(groups))
    for color, (key, df) in zip(colors, groups, strict=True):
        df = df.sort_values(x)
        ok = df[~df["censored"]]
        label = ", ".join(f"{k}={v}" for k, v in zip(hue, np.atleast_1d(key), strict=False))
        fit = power_law_fit(ok[x], ok["n_eps"])
        label = f"{label}  " if label else ""
        label += f"slope {fit[0]:.2f}" if fit else "slope n/a"
        ax.plot(ok[x], ok["n_eps"], "o-", color=color, label=label)
        hi = ok["ci_hi"].where(np.isfinite(ok["ci_hi"]), ok["n_max"])
        ax.fill_between(ok[x], ok["ci_lo"], hi, color=color, alpha=0.2, linewidth=0)
        if fit:
            xs = np.geomspace(ok[x].min(), ok[x].max(), 50)
            ax.plot(xs, np.exp(fit[1]) * xs ** fit[0], ":", color=color, linewidth=1)
        cens = df[df["censored"]]
        if len(cens):
            ax.plot(cens[x], cens["n_max"], "^", color=color, markerfacecolor="none",
                    markersize=9, label=f"censored (> budget)" if color == colors[0] else None)
    _loglog(ax, sc[x])
    ax.set_xlabel(x)
    ax.set_ylabel(f"N_eps (median over {int(sc['n_seeds'].iloc[0])} seeds, {sc['ci'].iloc[0]:.0%} CI)")
    ax.set_title(f"Samples to reach normalised test error <= {sc['eps'].iloc[0]:g}")
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def error_vs_n(curves: pd.DataFrame, label_keys: list[str], eps: float) -> plt.Figure:
    """Normalised test error against training samples: median over seeds with the IQR band."""
    sns.set_theme(style="whitegrid", context="notebook")
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    cells = list(curves.groupby("cell", sort=True))
    colors = sns.color_palette("viridis", len(cells))
    for color, (_, df) in zip(colors, cells, strict=True):
        label = ", ".join(f"{k}={df[k].iloc[0]}" for k in label_keys) or "cell"
        med = df["median"].where(np.isfinite(df["median"]))
        ax.plot(df["n"], med, color=color, label=label)
        ax.fill_between(df["n"], df["q25"].clip(upper=1e6), df["q75"].clip(upper=1e6),
                        color=color, alpha=0.15, linewidth=0)
    ax.axhline(eps, color="k", linestyle="--", linewidth=1, label=f"eps = {eps:g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training samples n")
    ax.set_ylabel("normalised test error (median, IQR)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def _loglog(ax, xvalues) -> None:
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ticks = np.unique(np.asarray(xvalues, float))
    ax.set_xticks(ticks)
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
