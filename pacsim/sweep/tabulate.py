"""Tabulating a sweep: ``results.parquet`` (one row per run and evaluated n) from the stored
runs, and ``sample_complexity.parquet`` from it through the one N_eps pipeline
(:func:`pacsim.tables.n_eps_table`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import learners, neps, tables
from ..config import RunSpec, SweepConfig, section_label
from .plan import Unit, _cap_name, _n_cap, _steps, cell_id

#: Provenance columns of the results table that differ between two sweeps on one machine
#: that computed the same numbers: where, when, how fast and by what each run ran.
VOLATILE = ("wall_s", "host", "git_commit", "executor", "started_at")


def results_table(cfg: SweepConfig, cells, units: list[Unit], records: dict) -> pd.DataFrame:
    """Long-form table: one row per (run, evaluated n), flattened config and provenance.

    ``lr_chosen`` marks the rows whose step size the validation set chose at that ``n``
    (always true with a single step size), ``lr_selected`` is that step size; ``lr_search``
    says how the step sizes were found ("auto", "list", "fixed") and ``lr_edge`` is the
    smallest step size at which a run of the same batch (cell and largest ``n``) diverged
    (NaN if none did: for "auto", the search then stopped at ``lr_max`` or where the
    validation error turned up). With a ``weight_decay`` list the choice is of the pair
    (``lr_selected``, ``wd_selected``). ``papers_rule_best_by_test`` marks the pair with the
    smallest median *test* error at that ``n``: the papers' rule, for comparison with their
    tables only; nothing in pacsim uses it.
    """
    rows = []
    caps = {}
    for cell, (_, spec) in enumerate(cells):
        n_cap = _n_cap(cfg, spec)
        caps[cell] = {"sgd": bool(learners.LEARNERS[spec.model.kind].SGD), "n_cap": n_cap,
                      "cap": _cap_name(cfg, spec, n_cap)}
    for unit in units:
        rec = records[unit.id]
        res = rec["result"]
        base = {"run_id": unit.id, "cell": unit.cell, "cell_id": cell_id(cells[unit.cell][1]),
                **caps[unit.cell],
                **_flat(unit.spec.model_dump(mode="json"))}
        base.update({"train.lr": unit.lr, "seed": unit.seed, "eta": res["eta"],
                     "status": res["status"], "diverged_step": res["diverged_step"],
                     "error": res.get("error"), "message": res.get("message"),
                     "test_label_var": res["test_label_var"], "wall_s": res["wall_s"],
                     **res.get("info", {}), **rec["provenance"],
                     **{f"code_{k}": (rec.get("code") or {}).get(k)
                        for k in ("numerics", "schema")}})
        by_n = {r["n"]: r for r in res["rows"]}
        for n in unit.checkpoints:  # a checkpoint after a divergence or failure is not reached
            r = by_n.get(n)
            if r is None:
                fill = np.inf if res["status"] in ("diverged", "timeout") else np.nan
                r = {"n": n, "train_loss": np.nan, "test_mse": fill, "test_nmse": fill,
                     "val_nmse": fill if unit.validate else np.nan}
            rows.append({"steps": _steps(unit.spec, n), **base, **r,
                         "batch_n": unit.checkpoints[-1],
                         "lr_search": unit.spec.train.lr_search if unit.lr else "none"})
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df["diverged_step"] = df["diverged_step"].astype("Int64")
    bad = df[df["status"] == "diverged"].groupby(["cell", "batch_n"])["train.lr"].min()
    df["lr_edge"] = pd.MultiIndex.from_frame(df[["cell", "batch_n"]]).map(bad.to_dict().get)
    df["lr_edge"] = df["lr_edge"].astype(float)
    df["lr_chosen"] = True
    df["lr_selected"] = df["train.lr"].astype(float)
    df["wd_selected"] = _wd_column(df).astype(float)
    df["papers_rule_best_by_test"] = True
    for cell, a in tables.cell_arrays(df).items():
        if len(a.lrs) == 1:
            continue
        part = df[df["cell"] == cell]
        choices = list(zip(a.lrs.tolist(), a.wds.tolist(), strict=True))
        err, val, ns = a.err, a.val, a.ns
        _, choice = neps.selected_median(err, val)
        pick = {n: choices[c] for n, c in zip(ns.tolist(), choice.tolist(), strict=True)}
        mine = list(zip(part["train.lr"], _wd_column(part), strict=True))
        df.loc[part.index, "lr_selected"] = [pick[n][0] for n in part["n"]]
        df.loc[part.index, "wd_selected"] = [pick[n][1] for n in part["n"]]
        df.loc[part.index, "lr_chosen"] = [c == pick[n] for c, n in zip(mine, part["n"],
                                                                          strict=True)]
        # the papers' rule, for comparison with their tables only: best median TEST error
        _, by_test = neps.selected_median(err, err)
        papers = {n: choices[c] for n, c in zip(ns.tolist(), by_test.tolist(), strict=True)}
        df.loc[part.index, "papers_rule_best_by_test"] = [
            c == papers[n] for c, n in zip(mine, part["n"], strict=True)]
    return df.drop(columns="batch_n")


def sample_complexity_table(cfg: SweepConfig, cells, results: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: N_eps with its bootstrap CI, or censored (N_eps > the cap), from
    ``results`` through :func:`pacsim.tables.n_eps_table` (the one N_eps pipeline), with the
    cells' grid labels; a cell the caps left without any sample size to try is censored by
    that cap. ``censored_by`` is documented there."""
    t = cfg.target
    table = (tables.n_eps_table(results, t.eps, n_boot=t.n_boot, ci=t.ci)
             if len(results) else pd.DataFrame(columns=["cell"]))
    by_cell = table.set_index("cell")
    out = []
    for cell, (values, spec) in enumerate(cells):
        n_cap = _n_cap(cfg, spec)
        row = by_cell.loc[cell] if cell in by_cell.index else None
        labels = {k: section_label(v) for k, v in values.items()}
        est = {"n_eps": np.nan, "ci_lo": np.inf, "ci_hi": np.inf, "censored": True,
               "censored_by": _cap_name(cfg, spec, n_cap), "lr_at_n_eps": np.nan,
               "wd_at_n_eps": np.nan}
        if row is not None:
            est = {k: row[k] for k in est}
        out.append({"cell": cell, "cell_id": cell_id(spec), **labels,
                    "protocol": spec.train.protocol, "eps": t.eps, "n_max": t.n_max,
                    "n_cap": n_cap, "n_seeds": len(cfg.seeds), **est, "ci": t.ci})
    return pd.DataFrame(out)


def _wd_column(df: pd.DataFrame) -> pd.Series:
    if "train.weight_decay" not in df:
        return pd.Series(0.0, index=df.index)
    return pd.to_numeric(df["train.weight_decay"], errors="coerce").fillna(0.0)


def _point_n_eps(cfg: SweepConfig, spec: RunSpec, units: list[Unit], records: dict) -> float:
    """N_eps (no CI) of a finished cell from its records; ``inf`` if censored."""
    rows = []
    for u in units:
        res = records[u.id]["result"]
        by_n = {r["n"]: r for r in res["rows"]}
        for n in u.checkpoints:
            r = by_n.get(n, {})
            rows.append({"n": n, "train.lr": u.lr, "train.weight_decay": u.wd, "seed": u.seed,
                         "test_nmse": r.get("test_nmse", np.inf),
                         "val_nmse": r.get("val_nmse", np.inf)})
    (a,) = tables.cell_arrays(pd.DataFrame(rows).assign(cell=0)).values()
    med, _ = neps.selected_median(a.err, a.val)
    return float(neps.first_reached(med, a.ns, cfg.target.eps))


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = ",".join(map(str, v)) if isinstance(v, list) else v
    return out
