"""Tidy tables derived from ``results.parquet`` alone (pure pandas and NumPy; no I/O).

Everything here is recomputed from the long-form results table, so any table or figure can be
rebuilt from that one file (and the target ``eps``):

* :func:`cell_table`: one row per cell: its learner, whether it is trained by SGD, a short
  label of its learner settings, and the config keys that vary across cells (the grid);
* :func:`n_eps_table`: N_eps per cell with its bootstrap CI and censoring: the one place
  N_eps is computed (the sweep's ``sample_complexity.parquet`` is this table);
* in :mod:`pacsim.fits` (importable from here too): :func:`fit_exponents`, a log-log power-law fit ``N_eps ~ a x^b`` per learner line, with a
  bootstrap CI on ``b`` (seeds resampled jointly across the line's cells, N_eps recomputed in
  every cell, refitted);
  :func:`ratio_table`, N_eps of every SGD learner over N_eps of every kernel (closed-form)
  learner on the same concept, per L, with a joint bootstrap CI, and :func:`analyze`, all of
  them at once;
* :func:`learning_curves`: test error against ``n`` per cell, median and inter-quartile range.

Censoring (no evaluated ``n`` reaches ``eps``: ``N_eps > n_max``) is never silently dropped:

* the N_eps table keeps censored cells (``censored = True``, ``n_eps`` NaN, ``n_max`` the
  bound);
* the point fit uses the cells that are *not* censored and reports how many were left out
  and where (``n_censored``, ``censored_at``); if they lie beyond the fitted range the note
  says the exponent is then likely an underestimate;
* a bootstrap resample in which a fitted cell is censored has no finite exponent: its N_eps is
  ``+inf``, so the least-squares slope is ``+inf`` if that cell's ``log x`` is above the mean
  of the fitted ``log x`` and ``-inf`` if below (undefined, and counted against both bounds,
  when censored cells lie on both sides). The CI bounds are percentiles of these replicates,
  so they become infinite once more than ``(1 - ci) / 2`` of the resamples are censored:
  the data then do not bound the exponent, and the table says so (``boot_censored``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import neps

#: Prefixes of the flattened config columns of results.parquet.
CONFIG_PREFIXES = ("concept.", "model.", "train.")


#: Hyper-parameters chosen per cell on the validation split (jointly), not grid keys.
CHOSEN = ("train.lr", "train.weight_decay")


#: The columns of a learner that are not part of its label.
_NOT_LABEL = {"model.kind"}


def is_sgd(kind: str, results: pd.DataFrame | None = None) -> bool:
    """Whether learner ``kind`` is trained by SGD (else it is a closed-form kernel learner):
    the ``sgd`` column of the results table, which the sweep writes from the learner registry
    (:data:`pacsim.learners.LEARNERS`), or the registry itself for a table written before."""
    if results is not None and "sgd" in results and "model.kind" in results:
        flags = results.loc[results["model.kind"] == kind, "sgd"].dropna()
        if len(flags):
            return bool(flags.iloc[0])
    from .learners import LEARNERS

    if kind not in LEARNERS:
        raise KeyError(f"unknown learner kind {kind!r} and no sgd column to read it from")
    return bool(LEARNERS[kind].SGD)


def config_columns(results: pd.DataFrame) -> list[str]:
    """The flattened config columns (``concept.*``, ``model.*``, ``train.*``)."""
    return [c for c in results.columns if c.startswith(CONFIG_PREFIXES)]


def varying_keys(results: pd.DataFrame) -> list[str]:
    """Config columns whose value differs between cells: the sweep's grid, seen from the table.

    ``train.lr`` and ``train.weight_decay`` count only when every cell ran one value (several
    values in one cell are a choice made by validation, not a grid key). ``model.kind`` comes first, then
    ``concept.*``, ``model.*`` and ``train.*`` keys in table order.
    """
    per_cell = results.groupby("cell", sort=True)
    keys = []
    for c in config_columns(results):
        if c in CHOSEN and (per_cell[c].nunique() > 1).any():
            continue
        first = per_cell[c].first() if results[c].notna().all() else per_cell[c].agg(_first_any)
        if _nunique(first) > 1:
            keys.append(c)
    order = {"model.kind": 0, "concept.": 1, "model.": 2, "train.": 3}
    return sorted(keys, key=lambda k: order.get(k, order[k.split(".")[0] + "."]))


def cell_table(results: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: ``cell``, ``learner`` (``model.kind``), ``sgd``, ``setting`` (the
    learner with the learner keys that vary, e.g. ``rnn(m=512)``) and the varying keys."""
    keys = varying_keys(results)
    if "model.kind" not in keys and "model.kind" in results:
        keys = ["model.kind", *keys]
    first = results.groupby("cell", sort=True).agg({k: _first_any for k in keys} | {"seed": "size"})
    out = first.drop(columns="seed").reset_index()
    kind = out["model.kind"] if "model.kind" in out else pd.Series("model", index=out.index)
    out.insert(1, "learner", kind.astype(str))
    out.insert(2, "sgd", [is_sgd(k, results) for k in out["learner"]])
    shown = _within_kind(out, learner_keys(keys))
    out.insert(3, "setting", [_setting(row, shown.get(row["learner"], []))
                              for _, row in out.iterrows()])
    return out


def learner_keys(keys: list[str]) -> list[str]:
    """The varying keys that describe the learner (``model.*`` and ``train.*``)."""
    return [k for k in keys if k.startswith(("model.", "train.")) and k not in _NOT_LABEL]


def concept_keys(keys: list[str]) -> list[str]:
    """The varying keys that describe the target (``concept.*``)."""
    return [k for k in keys if k.startswith("concept.")]


@dataclass(frozen=True)
class CellData:
    """The errors of one cell as arrays: ``err`` and ``val`` of shape (R, S, K) for the R
    hyper-parameter choices (step size ``lrs`` and weight decay ``wds``, each (R,)), seeds
    ``seeds`` (S,) and sample sizes ``ns`` (K,)."""

    err: np.ndarray
    val: np.ndarray
    ns: np.ndarray
    lrs: np.ndarray
    seeds: np.ndarray
    wds: np.ndarray | None = None  #: the weight decay of each choice (R,), with ``lrs``


#: Test-error columns a learning curve can show: normalised (the sweep's), plain MSE per output,
#: and the papers' "test error" (squared error summed over the scored outputs).
METRICS = ("test_nmse", "test_mse", "test_sse")


def cell_arrays(results: pd.DataFrame, metric: str = "test_nmse") -> dict[int, CellData]:
    """Per cell, the test (``metric``) and validation errors as (step size, seed, n) arrays.

    Seeds are those of the whole table in order of appearance (the sweep's ``seeds``), so a
    seed missing from a cell counts as "not reached" (NaN, taken as ``+inf``), as in the
    sweep. Step sizes keep their order of appearance (the config's order).
    """
    seeds = pd.unique(results["seed"])
    s_index = {s: i for i, s in enumerate(seeds)}
    out = {}
    for cell, df in results.groupby("cell", sort=True):
        lr = df["train.lr"] if "train.lr" in df else pd.Series(0.0, index=df.index)
        wd = (pd.to_numeric(df["train.weight_decay"], errors="coerce").fillna(0.0)
              if "train.weight_decay" in df else pd.Series(0.0, index=df.index))
        pairs = list(zip(lr, wd, strict=True))
        choices = sorted(set(pairs))  # (step size, weight decay), as the sweep orders them
        lrs = np.array([c[0] for c in choices], dtype=float)
        ns = np.sort(df["n"].unique())
        err = np.full((len(choices), len(seeds), len(ns)), np.nan)
        val = np.full_like(err, np.nan)
        index = {c: i for i, c in enumerate(choices)}
        r = np.array([index[c] for c in pairs], dtype=int)
        s = df["seed"].map(s_index).to_numpy()
        k = np.searchsorted(ns, df["n"].to_numpy())
        err[r, s, k] = df[metric].to_numpy(float)
        val[r, s, k] = df["val_nmse"].to_numpy(float) if "val_nmse" in df else np.nan
        out[int(cell)] = CellData(err, val, ns, lrs, np.asarray(seeds),
                                  np.array([c[1] for c in choices], dtype=float))
    return out


def n_eps_table(
    results: pd.DataFrame,
    eps: float,
    *,
    n_boot: int = 1000,
    ci: float = 0.95,
    n_max: float | None = None,
) -> pd.DataFrame:
    """N_eps per cell from the results table, with its bootstrap CI and censoring.

    Parameters
    ----------
    results : DataFrame
        ``results.parquet``.
    eps : float
        Target normalised test error.
    n_boot, ci : int, float
        Bootstrap resamples over seeds and confidence level of the per-cell CI.
    n_max : float, optional
        The sample budget (``N_eps > n_max`` for a censored cell); default: the largest ``n``
        evaluated in the cell (the budget it actually had, caps included).

    Returns
    -------
    DataFrame, one row per cell: the columns of :func:`cell_table`, then ``n_eps``, ``ci_lo``,
    ``ci_hi`` (``+inf`` when censored in the resamples), ``censored``, ``n_max``, ``n_seeds``,
    ``lr_at_n_eps``, ``wd_at_n_eps``, ``eps``, ``ci``, ``n_runs``, ``n_diverged``,
    ``n_timeout`` (stopped by a wall-time cap), ``n_failed``, ``censored_by``.

    This is the one place N_eps is computed: ``pacsim sweep`` (``sample_complexity.parquet``),
    ``pacsim report``, ``pacsim plot`` and ``analysis/`` all call it on ``results.parquet``.
    Each cell's bootstrap generator derives from its ``cell_id`` (:func:`neps.boot_rng`).

    ``censored_by`` says why a censored cell stopped (None when it is not censored):
    ``"failed"`` (a run raised an error), ``"max_wall_s"`` (runs stopped by the wall-time
    cap), ``"diverged"`` (at the largest ``n`` every choice's median run diverged),
    ``"optimisation"`` (the median training error, ``train_nmse``, stayed above ``eps``:
    the network did not fit its samples), else the sample cap it hit, from the sweep's
    ``cap`` column (``"n_max"``, ``"max_n"``: a closed-form learner's cap, ``"max_steps"``).
    """
    cells = cell_table(results)
    arrays = cell_arrays(results)
    status = _run_status(results)
    ids = _cell_ids(results)
    rows = []
    for cell in cells["cell"]:
        a = arrays[int(cell)]
        part = results[results["cell"] == cell]
        rng = neps.boot_rng(ids[int(cell)], a.seeds)
        est = neps.n_eps(a.err, a.val, a.ns, a.lrs, eps, n_boot=n_boot, ci=ci, rng=rng)
        st = status.get(int(cell), {})
        cap = float(part["n_cap"].iloc[0]) if "n_cap" in part else float(a.ns.max())
        rows.append({"n_eps": est.n_eps, "ci_lo": est.ci_lo, "ci_hi": est.ci_hi,
                     "censored": est.censored,
                     "n_max": float(n_max) if n_max is not None else cap,
                     "n_seeds": len(a.seeds), "lr_at_n_eps": est.lr_at_n_eps,
                     "wd_at_n_eps": (float(a.wds[est.choice]) if est.choice >= 0
                                     and a.wds is not None else np.nan),
                     "eps": eps, "ci": ci, "n_runs": st.get("runs", 0),
                     "n_diverged": st.get("diverged", 0), "n_timeout": st.get("timeout", 0),
                     "n_failed": st.get("failed", 0),
                     "censored_by": censored_by(part, eps, st) if est.censored else None})
    return pd.concat([cells, pd.DataFrame(rows)], axis=1)


def censored_by(part: pd.DataFrame, eps: float, status: dict | None = None) -> str:
    """Why the censored cell whose rows are ``part`` did not reach ``eps`` (see
    :func:`n_eps_table`)."""
    status = status if status is not None else _run_status(part).get(int(part["cell"].iloc[0]), {})
    if status.get("failed"):
        return "failed"
    if status.get("timeout"):
        return "max_wall_s"
    last = part[part["n"] == part["n"].max()]
    err = last["test_nmse"].astype(float).fillna(np.inf)
    choice = list(CHOSEN[:1]) + (["train.weight_decay"] if "train.weight_decay" in last else [])
    by_choice = last.assign(err=err, div=last["status"] == "diverged").groupby(choice)
    gone = by_choice.agg(med=("err", "median"), div=("div", "any"))
    if (~np.isfinite(gone["med"]) & gone["div"]).all():
        return "diverged"
    if "train_nmse" in last:
        chosen = last[last["lr_chosen"].astype(bool)] if "lr_chosen" in last else last
        tr = chosen["train_nmse"].to_numpy(float)
        if np.isfinite(tr).any() and np.median(np.where(np.isnan(tr), np.inf, tr)) > eps:
            return "optimisation"
    if "cap" in part and part["cap"].notna().any():
        return str(part["cap"].dropna().iloc[0])
    return "n_max"


def _cell_ids(results: pd.DataFrame) -> dict[int, str]:
    """Each cell's ``cell_id`` (the hash of its resolved config), which seeds its bootstrap;
    tables written before the column existed fall back to the cell's position."""
    if "cell_id" not in results:
        return {int(c): f"{int(c):x}" for c in results["cell"].unique()}
    return {int(c): str(i) for c, i in results.groupby("cell")["cell_id"].first().items()}


def boot_n_eps(results: pd.DataFrame, eps: float, *, n_boot: int = 1000, seed: int = 0
               ) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """N_eps of every cell in ``n_boot`` joint resamples of the seeds.

    The same resampled seed indices are used in every cell: cells that share a seed share its
    target, test set and samples, so seeds (not cells) are the independent units.

    Returns
    -------
    idx : ndarray of int, shape (n_boot, S)
        The resampled seed positions.
    n : dict cell -> ndarray of shape (n_boot,)
        N_eps per resample (``+inf`` where censored).
    """
    arrays = cell_arrays(results)
    S = len(next(iter(arrays.values())).seeds) if arrays else 0
    idx = np.random.default_rng(seed).integers(0, S, size=(n_boot, S))
    return idx, {cell: resampled_n_eps(a, idx, eps) for cell, a in arrays.items()}


def resampled_n_eps(a: CellData, idx: np.ndarray, eps: float) -> np.ndarray:
    """N_eps of cell ``a`` for every row of seed positions ``idx`` (B, S): shape (B,)."""
    val = a.val[:, idx] if a.err.shape[0] > 1 else a.val  # one step size: val is not read
    med = neps.selected_median(a.err[:, idx], val)[0]
    return neps.first_reached(med, a.ns, eps)


def learning_curves(results: pd.DataFrame, keys: list[str] | None = None,
                    metric: str = "test_nmse") -> pd.DataFrame:
    """Test error (``metric``, one of :data:`METRICS`) against ``n`` per cell: median and
    inter-quartile range over seeds.

    Where a cell tried several step sizes, the one with the smallest median validation error
    is taken at every ``n`` (the test errors are not read to choose it). A diverged or failed
    seed counts as ``+inf`` (it raises the median and the quartiles, never disappears).

    Parameters
    ----------
    keys : list of str, optional
        Columns to carry along (default: the varying keys).
    metric : str
        The test-error column; the step size is always chosen by ``val_nmse``.

    Returns
    -------
    DataFrame with columns ``cell``, ``learner``, ``sgd``, ``setting``, ``keys...``, ``n``,
    ``steps``, ``median``, ``q25``, ``q75``, ``lr``, ``n_seeds``.
    """
    cells = cell_table(results).set_index("cell")
    keys = [k for k in (varying_keys(results) if keys is None else keys) if k in results]
    if metric not in METRICS:
        raise ValueError(f"metric = {metric!r}; allowed: {', '.join(METRICS)}")
    arrays = cell_arrays(results, metric)
    steps = results.groupby(["cell", "n"])["steps"].first() if "steps" in results else None
    out = []
    for cell, a in arrays.items():
        med, choice = neps.selected_median(a.err, a.val)
        chosen = np.where(np.isnan(a.err), np.inf, a.err)[choice, :, np.arange(len(a.ns))]
        q25, q75 = np.quantile(chosen, [0.25, 0.75], axis=1, method="inverted_cdf")
        c = cells.loc[cell]
        extra = {k: c[k] if k in c else results.loc[results["cell"] == cell, k].iloc[0]
                 for k in keys}
        st = steps.loc[cell].reindex(a.ns).to_numpy() if steps is not None else a.ns
        out.append(pd.DataFrame({"cell": cell, "learner": c["learner"], "sgd": c["sgd"],
                                 "setting": c["setting"], **extra, "n": a.ns, "steps": st,
                                 "median": med, "q25": q25, "q75": q75, "lr": a.lrs[choice],
                                 "n_seeds": len(a.seeds)}))
    return pd.concat(out, ignore_index=True)


def failures(results: pd.DataFrame) -> pd.DataFrame:
    """One row per run that failed or diverged: ``cell``, ``setting``, the varying keys,
    ``seed``, ``train.lr``, ``status``, ``diverged_step``, ``error``."""
    if "status" not in results:
        return pd.DataFrame(columns=["cell", "seed", "status", "error"])
    bad = results[results["status"] != "ok"]
    per_run = bad.drop_duplicates("run_id" if "run_id" in bad else ["cell", "seed", "train.lr"])
    cells = cell_table(results)[["cell", "setting"]]
    keys = concept_keys(varying_keys(results))
    cols = [c for c in ["cell", *keys, "seed", "train.lr", "status", "diverged_step", "error"]
            if c in per_run]
    out = per_run[cols].merge(cells, on="cell", how="left")
    first = ["cell", "setting"]
    return out[first + [c for c in out.columns if c not in first]].reset_index(drop=True)


def _run_status(results: pd.DataFrame) -> dict[int, dict[str, int]]:
    if "status" not in results:
        return {}
    runs = results.drop_duplicates("run_id") if "run_id" in results else results
    out = {}
    for cell, df in runs.groupby("cell"):
        st = df["status"]
        out[int(cell)] = {"runs": len(df), "diverged": int((st == "diverged").sum()),
                          "timeout": int((st == "timeout").sum()),
                          "failed": int((~st.isin(["ok", "diverged", "timeout"])).sum())}
    return out


def _groups(table: pd.DataFrame, keys: list[str]):
    """``(dict of key values, sub-table)`` per setting of ``keys`` (one group if none);
    missing values (a key a learner does not have) form their own group."""
    if not keys:
        yield {}, table
        return
    for key, df in table.groupby(keys, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        yield dict(zip(keys, key, strict=True)), df


def _within_kind(table: pd.DataFrame, keys: list[str]) -> dict[str, list[str]]:
    """Per ``model.kind``: the ``keys`` that take more than one value among its cells."""
    if "model.kind" not in table:
        return {}
    return {kind: [k for k in keys if k in df and _nunique(df[k]) > 1]
            for kind, df in table.groupby("model.kind", sort=False)}


def _setting(row: pd.Series, keys: list[str]) -> str:
    kind = str(row.get("model.kind", "model"))
    parts = [f"{short_key(k)}={fmt_value(row[k])}" for k in keys if _present(row[k])]
    return f"{kind}({', '.join(parts)})" if parts else kind


def short_key(key: str) -> str:
    """``model.m`` -> ``m``, ``concept.L`` -> ``L``; ``train.lr`` stays (it is ambiguous)."""
    return key if key.startswith("train.") else key.split(".", 1)[1]


def fmt_value(v) -> str:
    if isinstance(v, float | np.floating):
        return f"{v:g}"
    return str(v)


def _present(v) -> bool:
    try:
        return not pd.isna(v)
    except (TypeError, ValueError):
        return True


def _first_any(s: pd.Series):
    """The first non-missing value (missing if none)."""
    s = s.dropna()
    return s.iloc[0] if len(s) else np.nan


def _nunique(s: pd.Series) -> int:
    return s.astype(str).nunique(dropna=False)


def display_n_eps(table: pd.DataFrame) -> pd.DataFrame:
    """The N_eps table for people: one row per cell, ``N_eps [CI]`` as text, censored cells
    written ``> n_max (censored)``."""
    keys = concept_keys(list(table.columns))  # the learner keys are in ``setting``
    out = table[["setting", *keys]].copy()
    out["N_eps"] = [_n_text(r) for _, r in table.iterrows()]
    level = f"{table['ci'].iloc[0]:.0%} CI" if len(table) else "CI"
    out[level] = [_ci_text(r["ci_lo"], r["ci_hi"]) for _, r in table.iterrows()]
    out["seeds"] = table["n_seeds"]
    out["diverged/timed out/failed runs"] = [
        f"{d}/{t}/{f}" for d, t, f in zip(table["n_diverged"], table["n_timeout"],
                                          table["n_failed"], strict=True)]
    if "censored_by" in table and table["censored_by"].notna().any():
        out["censored by"] = table["censored_by"].fillna("")
    return out.rename(columns={k: short_key(k) for k in keys}).reset_index(drop=True)


def display_fits(fits: pd.DataFrame) -> pd.DataFrame:
    """Fitted exponents for people: line, ``b [CI]``, points fitted, censored, note."""
    if fits.empty:
        return pd.DataFrame(columns=["line", "exponent", "CI", "fitted", "censored", "note"])
    return pd.DataFrame({
        "line": fits["line"],
        "exponent": [fmt_exponent(b) for b in fits["exponent"]],
        "CI": [f"[{fmt_exponent(lo)}, {fmt_exponent(hi)}]"
               for lo, hi in zip(fits["ci_lo"], fits["ci_hi"], strict=True)],
        "fitted": fits["n_points"],
        "censored": [f"{n} ({at})" if n else "0" for n, at in zip(fits["n_censored"],
                                                                 fits["censored_at"], strict=True)],
        "note": fits["note"],
    })


def display_ratios(ratios: pd.DataFrame) -> pd.DataFrame:
    """SGD / kernel ratios for people: ``bound value [CI]``."""
    keys = [k for k in ratios.columns if k.startswith(CONFIG_PREFIXES)]
    out = ratios[[*keys, "sgd", "kernel"]].rename(columns={k: short_key(k) for k in keys})
    out["N_sgd / N_kernel"] = [
        "unknown (both censored)" if b == "?" else f"{b} {_num(r, 3)}".strip()
        for r, b in zip(ratios["ratio"], ratios["bound"], strict=True)]
    out["CI"] = ["" if b else _ci_text(lo, hi, 3)  # a bound has no CI of its own
                 for lo, hi, b in zip(ratios["ci_lo"], ratios["ci_hi"], ratios["bound"],
                                      strict=True)]
    return out.reset_index(drop=True)


def _n_text(row) -> str:
    if row["censored"]:
        return f"> {_num(row['n_max'])} (censored)"
    return _num(row["n_eps"])


def fmt_exponent(v) -> str:
    """An exponent: two decimals (no ``-0.00``)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return _num(v) if np.isinf(v) else f"{round(float(v), 2) + 0.0:.2f}"


def _ci_text(lo, hi, digits: int = 0) -> str:
    return f"[{_num(lo, digits)}, {_num(hi, digits)}]"


def _num(v, digits: int = 0) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if np.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.{digits}g}" if digits else f"{v:.0f}"  # digits: significant digits


def laziness_rows(results: pd.DataFrame, cell: int) -> pd.DataFrame:
    """The rows of ``cell`` at its chosen step size, one per (seed, n), with ``steps``, the
    test error and the ``lazy.*`` columns (:meth:`pacsim.learners.base.Learner.laziness`).

    The step size is the one with the smallest median validation error over seeds at the
    largest ``n`` that has one (the test errors are not read to choose it); the first one
    when no run was validated. Raises ``ValueError`` (one line) if the table has no such cell
    or the cell has no ``lazy.*`` columns (a closed-form learner, or an older run).
    """
    df = results[results["cell"] == cell]
    if df.empty:
        cells = ", ".join(map(str, sorted(results["cell"].unique())))
        raise ValueError(f"cell = {cell} is not in the results; allowed: {cells}")
    lazy = [c for c in df.columns if c.startswith("lazy.") and df[c].notna().any()]
    if not lazy:
        raise ValueError(f"cell = {cell} has no lazy.* columns (only SGD runs record them)")
    if "train.lr" in df and df["train.lr"].nunique() > 1:
        val = df.dropna(subset=["val_nmse"]) if "val_nmse" in df else df.iloc[:0]
        if len(val):
            last = val[val["n"] == val["n"].max()]
            lr = last.groupby("train.lr", sort=False)["val_nmse"].median().idxmin()
        else:
            lr = df["train.lr"].iloc[0]
        df = df[df["train.lr"] == lr]
    cols = ["seed", "n"] + (["steps"] if "steps" in df else []) + ["test_nmse"] + lazy
    return df[cols].sort_values(["seed", "n"], ignore_index=True)


# The power-law fits, the SGD/kernel ratios and the whole analysis live in pacsim.fits (they
# build on the tables above); their names stay importable from here.
from .fits import (  # noqa: E402, F401
    Analysis,
    analyze,
    boot_slopes,
    fit_exponents,
    fit_line,
    line_keys,
    line_label,
    percentile_ci,
    power_law_fit,
    ratio_table,
    scaling_key,
)
