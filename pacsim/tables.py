"""Tidy tables derived from ``results.parquet`` (pure pandas; no I/O)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import samples

#: Columns of results.parquet that identify a run rather than describe a cell.
_RUN_COLUMNS = {"seed", "train.lr"}


def learning_curves(results: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Test error against ``n`` per cell: median and inter-quartile range over seeds.

    Where a cell tried several step sizes, the one with the smallest median validation error
    is taken at every ``n`` (the test errors are not read to choose it).

    Returns
    -------
    DataFrame with columns ``cell``, ``keys...``, ``n``, ``median``, ``q25``, ``q75``,
    ``lr``.
    """
    out = []
    for cell, df in results.groupby("cell", sort=True):
        lrs = np.sort(df["train.lr"].unique())
        seeds = np.sort(df["seed"].unique())
        ns = np.sort(df["n"].unique())
        err = np.full((len(lrs), len(seeds), len(ns)), np.nan)
        val = np.full_like(err, np.nan)
        idx = (np.searchsorted(lrs, df["train.lr"]), np.searchsorted(seeds, df["seed"]),
               np.searchsorted(ns, df["n"]))
        err[idx] = df["test_nmse"]
        val[idx] = df["val_nmse"]
        med, choice = samples.selected_median(err, val)
        chosen = np.where(np.isnan(err), np.inf, err)[choice, :, np.arange(len(ns))]  # (K, S)
        q25, q75 = np.quantile(chosen, [0.25, 0.75], axis=1, method="inverted_cdf")
        out.append(pd.DataFrame({"cell": cell, **{k: df[k].iloc[0] for k in keys}, "n": ns,
                                 "median": med, "q25": q25, "q75": q75, "lr": lrs[choice]}))
    return pd.concat(out, ignore_index=True)


def grid_keys(sc: pd.DataFrame) -> list[str]:
    """The grid columns of a sample-complexity table (dotted names such as ``concept.L``)."""
    return [c for c in sc.columns if "." in c]


def power_law_fit(x, y) -> tuple[float, float] | None:
    """Least-squares fit of ``log y = a + b log x``; ``(b, a)`` or ``None`` if < 2 points."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if np.unique(x[ok]).size < 2:
        return None
    b, a = np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)
    return float(b), float(a)
