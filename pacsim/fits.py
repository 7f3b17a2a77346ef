"""Power-law fits of N_eps against a scaling variable (a bootstrap CI on the exponent, seeds
resampled jointly across a line's cells), the ratio of SGD learners' N_eps to kernel
learners' on the same concept, and :func:`analyze`, which computes every table of a run folder
at once (:class:`Analysis`). Built on :mod:`pacsim.tables` (see its docstring for how censored
cells enter a fit); the names here are also importable from there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .tables import (
    CONFIG_PREFIXES,
    _groups,
    _present,
    _setting,
    _within_kind,
    boot_n_eps,
    concept_keys,
    failures,
    fmt_value,
    learner_keys,
    learning_curves,
    n_eps_table,
    short_key,
    varying_keys,
)


def power_law_fit(x, y) -> tuple[float, float] | None:
    """Least-squares fit of ``log y = a + b log x``; ``(b, a)`` or ``None`` if < 2 points."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if np.unique(x[ok]).size < 2:
        return None
    b, a = np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)
    return float(b), float(a)


def boot_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares slopes of ``log y`` on ``log x`` for every row of ``y`` (B, J).

    A row with ``y = +inf`` (a censored resample) has slope ``+inf`` if all its infinite
    entries sit above the mean of ``log x``, ``-inf`` if all sit below, and NaN otherwise
    (see the module docstring).
    """
    lx = np.log(np.asarray(x, float))
    dx = lx - lx.mean()
    ly = np.log(np.asarray(y, float))
    inf = ~np.isfinite(ly)
    finite_ly = np.where(inf, 0.0, ly)
    slope = (finite_ly - finite_ly.mean(axis=1, keepdims=True)) @ dx / (dx @ dx)
    up = (inf & (dx > 0)).any(axis=1)
    down = (inf & (dx < 0)).any(axis=1) | (inf & (dx == 0)).any(axis=1)
    slope = np.where(up & ~down, np.inf, slope)
    slope = np.where(down & ~up, -np.inf, slope)
    return np.where(up & down, np.nan, slope)


def percentile_ci(reps: np.ndarray, ci: float, *, floor: float = -np.inf) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates; NaN replicates (undefined) count against
    both bounds (as ``floor`` for the lower one and ``+inf`` for the upper one)."""
    alpha = (1.0 - ci) / 2.0
    lo = np.quantile(np.where(np.isnan(reps), floor, reps), alpha, method="inverted_cdf")
    hi = np.quantile(np.where(np.isnan(reps), np.inf, reps), 1 - alpha, method="inverted_cdf")
    return float(lo), float(hi)


def fit_exponents(
    results: pd.DataFrame,
    eps: float,
    x: str = "concept.L",
    *,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    table: pd.DataFrame | None = None,
    boot: dict[int, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Fit ``N_eps = a x^b`` per line (every setting of the varying keys other than ``x``).

    The point estimate fits the cells that are not censored; the CI is the percentile
    bootstrap over seeds (resampled jointly across the line's cells; every cell's N_eps
    recomputed; refitted). See the module docstring for censored cells.

    Parameters
    ----------
    table, boot : optional
        A precomputed :func:`n_eps_table` and :func:`boot_n_eps` (to share one bootstrap).

    Returns
    -------
    DataFrame, one row per line: ``line`` (a label), the line's keys, ``exponent``,
    ``ci_lo``, ``ci_hi``, ``prefactor`` (``a``), ``n_points`` (cells fitted), ``n_censored``,
    ``censored_at`` (their ``x``), ``boot_censored`` (fraction of resamples with a fitted cell
    censored), ``x``, ``note``.
    """
    table = n_eps_table(results, eps, n_boot=n_boot, ci=ci) if table is None else table
    if boot is None:
        boot = boot_n_eps(results, eps, n_boot=n_boot, seed=seed)[1]
    hue = line_keys(table, x)
    rows = []
    for key, df in _groups(table, hue):
        row = {"line": line_label(df.iloc[0], hue, table), **key}
        fitted = df[~df["censored"]].sort_values(x) if x in df else df.iloc[:0]
        cens = df[df["censored"]]
        reps = np.stack([boot[int(c)] for c in fitted["cell"]], axis=1) if len(fitted) else None
        xs = fitted[x].to_numpy(float) if x in fitted else np.array([])
        f = fit_line(xs, fitted["n_eps"].to_numpy(float), reps, ci)
        row.update({
            **f, "n_points": len(fitted), "n_censored": len(cens),
            "censored_at": ", ".join(fmt_value(v) for v in cens[x]) if x in cens else "",
            "x": x, "note": _fit_note(fitted, cens, x, f, ci),
        })
        rows.append(row)
    return pd.DataFrame(rows)


def fit_line(x: np.ndarray, n_eps: np.ndarray, boot: np.ndarray | None, ci: float) -> dict:
    """The power-law fit of one line and its percentile bootstrap CI.

    Parameters
    ----------
    x, n_eps : ndarray of shape (J,)
        The fitted (uncensored) cells.
    boot : ndarray of shape (B, J)
        Their N_eps in joint seed resamples (``+inf`` where censored), from
        :func:`resampled_n_eps`.

    Returns
    -------
    dict with ``exponent``, ``ci_lo``, ``ci_hi``, ``prefactor`` and ``boot_censored`` (NaN
    when there are fewer than two distinct ``x``).
    """
    fit = power_law_fit(x, n_eps) if len(x) else None
    if fit is None:
        return dict.fromkeys(["exponent", "ci_lo", "ci_hi", "prefactor", "boot_censored"],
                             math.nan)
    lo, hi = percentile_ci(boot_slopes(x, boot), ci)
    return {"exponent": fit[0], "ci_lo": lo, "ci_hi": hi, "prefactor": math.exp(fit[1]),
            "boot_censored": float((~np.isfinite(boot)).any(axis=1).mean())}


def line_keys(table: pd.DataFrame, x: str) -> list[str]:
    """The columns that tell the lines of an N_eps-against-``x`` plot apart: the learner
    (``model.kind``), its varying settings and the varying concept keys, all but ``x``."""
    keys = [k for k in table.columns if k.startswith(CONFIG_PREFIXES)]
    kind = ["model.kind"] if "model.kind" in table else []
    return kind + [k for k in learner_keys(keys) + concept_keys(keys) if k != x]


def line_label(row: pd.Series, keys: list[str], table: pd.DataFrame | None = None) -> str:
    """A legend label from a line's keys, e.g. ``rnn(m=512), L=8``; with ``table``, learner
    keys that do not vary among the cells of the row's learner are left out (``train.lr = 0``
    says nothing about a kernel that the word ``rntk`` does not)."""
    learner = [k for k in keys if k.startswith(("model.", "train.")) and k != "model.kind"]
    if table is not None and "model.kind" in table:
        learner = _within_kind(table, learner).get(row.get("model.kind"), [])
    label = _setting(row, learner) if "model.kind" in keys else ""
    if not label and learner:
        label = ", ".join(f"{short_key(k)}={fmt_value(row[k])}" for k in learner
                          if _present(row[k]))
    rest = [f"{short_key(k)}={fmt_value(row[k])}" for k in keys if k.startswith("concept.")]
    return ", ".join([p for p in [label, *rest] if p]) or "all cells"


def _fit_note(fitted, cens, x, f, ci) -> str:
    notes = []
    fitted_ok = np.isfinite(f["exponent"])
    if not fitted_ok:
        if len(fitted) + len(cens) <= 1 or x not in fitted:
            notes.append(f"no fit: {x} takes one value")
        else:
            notes.append(f"no fit: fewer than 2 uncensored values of {x}")
    elif len(fitted) == 2:
        notes.append("2 points")
    if len(cens):
        where = f"{len(cens)} censored cell{'s' if len(cens) > 1 else ''} not fitted"
        if fitted_ok and (cens[x] > fitted[x].max()).any():
            where += f" (beyond the fitted {x}: the exponent is likely underestimated)"
        notes.append(where)
    open_ends = [side for side, v in (("below", f["ci_lo"]), ("above", f["ci_hi"]))
                 if fitted_ok and np.isinf(v)]
    if open_ends:
        notes.append(f"{f['boot_censored']:.0%} of resamples censored: the CI is unbounded "
                     + " and ".join(open_ends))
    return "; ".join(notes)


def ratio_table(
    table: pd.DataFrame, boot: dict[int, np.ndarray], *, ci: float = 0.95
) -> pd.DataFrame:
    """N_eps(SGD learner) / N_eps(kernel learner) for every pair on the same concept cell.

    Cells are paired on the varying ``concept.*`` keys (the same target, test set and samples
    for the same seed) and on the ``model.*`` keys that both learners have (e.g. the width
    ``m`` of a finite-width kernel and of the network). The CI is the percentile interval of
    the ratio over the joint resamples of :func:`boot_n_eps`.

    Returns
    -------
    DataFrame, one row per (concept setting, SGD setting, kernel setting): the concept keys,
    ``sgd``, ``kernel`` (settings), ``ratio``, ``ci_lo``, ``ci_hi``, ``bound`` (``""``: a
    value; ``">"``: the SGD cell is censored, ``ratio`` is a lower bound ``n_max / N_kernel``;
    ``"<"``: the kernel cell is censored, ``ratio`` is an upper bound ``N_sgd / n_max``;
    ``"?"``: both censored, unknown), ``n_eps_sgd``, ``n_eps_kernel``.
    """
    cols = [*concept_keys(list(table.columns)), "sgd", "kernel", "ratio", "ci_lo", "ci_hi",
            "bound", "n_eps_sgd", "n_eps_kernel"]
    if "sgd" not in table or not (table["sgd"].any() and (~table["sgd"]).any()):
        return pd.DataFrame(columns=cols)
    ck = concept_keys(list(table.columns))
    mk = [k for k in learner_keys(list(table.columns)) if k.startswith("model.")]
    rows = []
    for key, df in _groups(table, ck):
        for _, s in df[df["sgd"]].iterrows():
            for _, k in df[~df["sgd"]].iterrows():
                if not _same_model_keys(s, k, mk):
                    continue
                with np.errstate(invalid="ignore"):  # both censored in a resample: inf/inf
                    r = boot[int(s["cell"])] / boot[int(k["cell"])]
                lo, hi = percentile_ci(r, ci, floor=0.0)
                ns_, nk = s["n_eps"], k["n_eps"]
                if s["censored"] and k["censored"]:
                    value, bound = math.nan, "?"
                elif s["censored"]:
                    value, bound = s["n_max"] / nk, ">"
                elif k["censored"]:
                    value, bound = ns_ / k["n_max"], "<"
                else:
                    value, bound = ns_ / nk, ""
                rows.append({**key, "sgd": s["setting"], "kernel": k["setting"], "ratio": value,
                             "ci_lo": lo, "ci_hi": hi, "bound": bound, "n_eps_sgd": ns_,
                             "n_eps_kernel": nk})
    return pd.DataFrame(rows, columns=cols)


def _same_model_keys(s: pd.Series, k: pd.Series, keys: list[str]) -> bool:
    """Whether two cells agree on every model key both have (a finite-width kernel is paired
    with the SGD network of its width; an infinite-width one with every width)."""
    return all(s[c] == k[c] for c in keys if _present(s[c]) and _present(k[c]))


@dataclass
class Analysis:
    """All the derived tables of one run folder (see :func:`analyze`)."""

    eps: float
    ci: float
    x: str | None  #: the scaling variable (``concept.L`` when present), None if none is numeric
    keys: list[str]  #: the varying config keys
    table: pd.DataFrame  #: :func:`n_eps_table`
    fits: pd.DataFrame  #: :func:`fit_exponents` against ``x`` (empty if ``x`` is None)
    fits_m: pd.DataFrame  #: :func:`fit_exponents` against ``model.m`` (empty unless it varies)
    ratios: pd.DataFrame  #: :func:`ratio_table`
    curves: pd.DataFrame  #: :func:`learning_curves`
    failures: pd.DataFrame  #: :func:`failures`


def analyze(
    results: pd.DataFrame,
    eps: float,
    *,
    n_boot: int = 1000,
    ci: float = 0.95,
    n_max: float | None = None,
    x: str | None = None,
    seed: int = 0,
) -> Analysis:
    """Every table of a run from its results table, sharing one joint bootstrap over seeds."""
    if results.empty:
        from .errors import PacsimError

        raise PacsimError("results.parquet has no rows: the sweep recorded no runs")
    keys = varying_keys(results)
    x = scaling_key(results, keys) if x is None else x
    table = n_eps_table(results, eps, n_boot=n_boot, ci=ci, n_max=n_max)
    if x is not None and x not in table:  # the sweep does not vary it: plot at its one value
        table.insert(table.columns.get_loc("n_eps"), x,
                     table["cell"].map(results.groupby("cell")[x].first()).to_numpy())
    _, boot = boot_n_eps(results, eps, n_boot=n_boot, seed=seed)
    fits = (fit_exponents(results, eps, x, ci=ci, table=table, boot=boot) if x
            else pd.DataFrame())
    widths = (results.groupby("model.kind")["model.m"].nunique().max()
              if "model.m" in keys and "model.kind" in results else 0)
    fits_m = (fit_exponents(results, eps, "model.m", ci=ci, table=table, boot=boot)
              if widths > 1 else pd.DataFrame())  # some learner swept over its width
    return Analysis(eps=eps, ci=ci, x=x, keys=keys, table=table, fits=fits, fits_m=fits_m,
                    ratios=ratio_table(table, boot, ci=ci), curves=learning_curves(results, keys),
                    failures=failures(results))


def scaling_key(results: pd.DataFrame, keys: list[str] | None = None) -> str | None:
    """``concept.L`` if the table has it; else the first numeric varying concept key; else
    None (the cells are then shown side by side)."""
    if "concept.L" in results and pd.api.types.is_numeric_dtype(results["concept.L"]):
        return "concept.L"
    keys = varying_keys(results) if keys is None else keys
    for k in concept_keys(keys):
        if pd.api.types.is_numeric_dtype(results[k]) and (results[k] > 0).all():
            return k
    return None
