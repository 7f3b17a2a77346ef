"""Summaries of ``theory.parquet`` (pure pandas; no kernels): predicted curves and N_eps per
cell, for :mod:`pacsim.figures` and :mod:`pacsim.report`. See :mod:`pacsim.theory.run`."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from . import curves

__all__ = ["THEORY_FILE", "ORACLE_BASIS", "sources", "read_theory", "theory_curves",
           "theory_n_eps", "comparison"]

THEORY_FILE = "theory.parquet"


def read_theory(run_dir: str | Path) -> pd.DataFrame | None:
    """``RUN_DIR/theory.parquet``, or ``None`` when there is none."""
    path = Path(run_dir) / THEORY_FILE
    return pd.read_parquet(path) if path.is_file() else None


#: ``basis`` of the oracle's curves, by the run's protocol.
ORACLE_BASIS = {"online": "oracle (online SGD)", "finite": "oracle (run's SGD replayed)"}


def sources(theory: pd.DataFrame) -> pd.Series:
    """``source`` of every row: ``"krr"`` or ``"oracle"`` (tables that predate the oracle
    have no column: all ``"krr"``)."""
    if "source" not in theory:
        return pd.Series("krr", index=theory.index)
    return theory["source"].fillna("krr")


def theory_curves(theory: pd.DataFrame) -> pd.DataFrame:
    """Per cell and ``n``: the predicted ``test_nmse``. For a kernel cell, at the ridge the
    run chose (``basis = "chosen ridge"``; where the table does not say, the best ridge of the
    grid, ``"best ridge"``); for an SGD cell, the linearised oracle's (``basis`` in
    :data:`ORACLE_BASIS`). ``pred`` the median over the seeds, ``lo`` / ``hi`` the smallest
    in-sample and largest held-out estimate over them (the estimate's spread over seeds and
    ``M``)."""
    t = theory[theory["note"].fillna("") == ""].dropna(subset=["pred"])
    if t.empty:
        return pd.DataFrame(columns=["cell", "n", "pred", "lo", "hi", "basis"])
    src = sources(t)
    parts = []
    for (_, _), g in t.groupby(["cell", "seed"]):
        if (src.loc[g.index] == "oracle").all():
            proto = g["oracle.protocol"].iloc[0] if "oracle.protocol" in g else "online"
            parts.append(g.assign(basis=ORACLE_BASIS.get(proto, "oracle")))
            continue
        ch = g[g["chosen"]]
        if ch["n"].nunique() == g["n"].nunique():
            parts.append(ch.assign(basis="chosen ridge"))
        else:  # best ridge of the grid at every n
            best = g.loc[g.groupby("n")["pred"].idxmin()]
            parts.append(best.assign(basis="best ridge"))
    sel = pd.concat(parts)
    out = sel.groupby(["cell", "n"]).agg(pred=("pred", "median"), lo=("lo", "min"),
                                         hi=("hi", "max"), basis=("basis", "first"),
                                         M=("M", "max"), stable=("stable", "all"))
    return out.reset_index()


def theory_n_eps(theory: pd.DataFrame, eps: float) -> pd.DataFrame:
    """Per cell: the predicted N_eps on the cell's evaluated ``n`` grid (the smallest ``n`` at
    which the predicted curve of :func:`theory_curves` is ``<= eps``, as the measured N_eps
    is defined), ``n_eps_pred``; ``n_eps_lo`` and ``n_eps_hi`` from the ``lo`` and ``hi``
    curves (NaN: not reached within the ``n`` the estimate reaches); ``hi_over_lo`` the ratio
    of the ``hi`` and ``lo`` predictions at ``n_eps_pred`` (how tight the estimate is where it
    matters)."""
    c = theory_curves(theory)
    rows = []
    for cell, g in c.groupby("cell"):
        g = g.sort_values("n")
        n_pred = curves.n_eps(g["n"], g["pred"], eps)
        at = g[g["n"] == n_pred]
        rows.append({"cell": cell,
                     "n_eps_pred": n_pred,
                     "hi_over_lo": float(at["hi"].iloc[0] / at["lo"].iloc[0]) if len(at)
                     else math.nan,
                     "n_eps_lo": curves.n_eps(g["n"], g["lo"], eps),
                     "n_eps_hi": curves.n_eps(g["n"], g["hi"], eps),
                     "n_reach": float(g.loc[g["pred"].notna(), "n"].max()),
                     "M": int(g["M"].max()), "stable": bool(g["stable"].all()),
                     "basis": g["basis"].iloc[0]})
    out = pd.DataFrame(rows, columns=["cell", "n_eps_pred", "hi_over_lo", "n_eps_lo",
                                      "n_eps_hi", "n_reach", "M", "stable", "basis"])
    return out.assign(n_reach=out["n_reach"].where(np.isfinite(out["n_reach"]), math.nan))


def comparison(table: pd.DataFrame, theory: pd.DataFrame, eps: float) -> pd.DataFrame:
    """Measured against predicted N_eps, one row per cell of ``table``
    (:func:`pacsim.tables.n_eps_table`) that ``theory`` predicts, for people: the learner
    setting, the varying concept keys, ``measured`` (``> n_max`` when censored),
    ``predicted`` with the range ``[from the in-sample curve, from the held-out curve]``,
    ``measured / predicted`` (a bound when censored: ``>``), the held-out over the in-sample
    prediction at the predicted N_eps, ``M``, whether the estimate was tight everywhere
    (``stable``), the ``basis`` (the kernel prediction's ridge, or the linearised oracle of
    an SGD cell), and cells without a prediction with the reason."""
    from ..tables import concept_keys, short_key

    pred = theory_n_eps(theory, eps).set_index("cell")
    notes = theory[theory["note"].fillna("") != ""].groupby("cell")["note"].first()
    keys = concept_keys(list(table.columns))
    rows = []
    for _, r in table.sort_values("cell").iterrows():
        cell = r["cell"]
        row = {"setting": r["setting"], **{short_key(k): r[k] for k in keys}}
        measured = r["n_eps"]
        cens = bool(r["censored"])
        row["N_eps measured"] = f"> {_n(r['n_max'])} (censored)" if cens else _n(measured)
        if cell in pred.index:
            p = pred.loc[cell]
            reach = p["n_reach"]
            if np.isfinite(p["n_eps_pred"]):
                row["N_eps predicted"] = (f"{_n(p['n_eps_pred'])} [{_n(p['n_eps_lo'])}, "
                                          f"{_n(p['n_eps_hi'])}]")
                ratio = (r["n_max"] if cens else measured) / p["n_eps_pred"]
                row["measured / predicted"] = f"> {ratio:.3g}" if cens else f"{ratio:.3g}"
            else:
                row["N_eps predicted"] = f"> {_n(reach)} (beyond the estimate's reach)"
                row["measured / predicted"] = "" if cens else f"< {measured / reach:.3g}"
            row["hi/lo at N_eps (seeds, M)"] = "" if not np.isfinite(p["hi_over_lo"]) \
                else f"{p['hi_over_lo']:.3g}"
            row["M"] = int(p["M"])
            row["tight"] = "yes" if p["stable"] else "no"
            row["basis"] = p["basis"]
        elif cell in notes.index:
            row["N_eps predicted"] = f"none: {notes.loc[cell]}"
        elif cell in set(theory["cell"]):  # predicted, but no evaluated n within M / 2
            M = theory.loc[theory["cell"] == cell, "M"].max()
            row["N_eps predicted"] = f"none: every evaluated n is beyond M / 2 (M = {M:g})"
        else:
            continue
        rows.append(row)
    return pd.DataFrame(rows).astype(object).fillna("")


def _n(v) -> str:
    return "" if v is None or not np.isfinite(v) else f"{v:g}"
