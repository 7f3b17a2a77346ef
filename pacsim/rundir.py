"""Reading a run folder: ``results.parquet``, the sweep's target (``eps``, ``n_boot``, ``ci``,
``n_max``: from ``sweep.json`` when it is there, else from ``sample_complexity.parquet``, else
from the caller) and its whole analysis (:func:`load_analysis`), for the figures, the report
and the analysis scripts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .errors import PacsimError
from .tables import Analysis, analyze, is_sgd


def read_results(run_dir: str | Path) -> pd.DataFrame:
    """``results.parquet`` of a run folder (a one-line :class:`PacsimError` if absent)."""
    path = Path(run_dir) / "results.parquet"
    if not path.is_file():
        raise PacsimError(f"no {path.name} in {str(run_dir)!r}; run `pacsim sweep CONFIG` first")
    return pd.read_parquet(path)


def read_target(run_dir: str | Path) -> dict:
    """The sweep's ``[target]`` (``eps``, ``n_boot``, ``ci``, ``n_max``) as far as the folder
    knows it: ``sweep.json``, else ``sample_complexity.parquet``, else ``{}``."""
    run_dir = Path(run_dir)
    from .config import parse_sweep

    try:
        t = parse_sweep(json.loads((run_dir / "sweep.json").read_text())).target  # + defaults
        return {k: getattr(t, k) for k in ("eps", "n_boot", "ci", "n_max")}
    except (OSError, ValueError, KeyError, TypeError, PacsimError):
        pass
    try:
        sc = pd.read_parquet(run_dir / "sample_complexity.parquet")
        return {k: sc[k].iloc[0].item() for k in ("eps", "ci", "n_max") if k in sc and len(sc)}
    except (OSError, ValueError):
        return {}


def load_analysis(
    run_dir: str | Path,
    eps: float | None = None,
    *,
    n_boot: int | None = None,
    ci: float | None = None,
    x: str | None = None,
) -> tuple[pd.DataFrame, Analysis]:
    """``results.parquet`` and its :class:`~pacsim.tables.Analysis` (arguments override the
    folder's target; ``x`` is the column the power law is fitted against, default
    :func:`pacsim.tables.scaling_key`)."""
    results = read_results(run_dir)
    target = read_target(run_dir)
    eps = target.get("eps") if eps is None else eps
    if eps is None:
        raise PacsimError(f"{str(run_dir)!r} has no sweep.json or sample_complexity.parquet to "
                          "read the target eps from; pass it (--eps)")
    a = analyze(results, float(eps), n_boot=int(n_boot or target.get("n_boot", 1000)),
                ci=float(ci or target.get("ci", 0.95)), x=x)
    a.table = _with_sweep_table(a.table, Path(run_dir), float(eps))
    return results, a


def _with_sweep_table(table: pd.DataFrame, run_dir: Path, eps: float) -> pd.DataFrame:
    """Add the cells that have no runs at all (the caps left no sample size to try), which
    only ``sample_complexity.parquet`` knows, as censored rows (when it was made for the same
    ``eps``). Everything else, ``censored_by`` included, comes from ``results.parquet``
    through :func:`pacsim.tables.n_eps_table`."""
    path = run_dir / "sample_complexity.parquet"
    if not path.is_file():
        return table
    sc = pd.read_parquet(path)
    if sc.empty or "eps" not in sc or not (sc["eps"] == eps).all():
        return table
    missing = sc[~sc["cell"].isin(table["cell"])]
    if missing.empty:
        return table
    rows = []
    for _, m in missing.iterrows():
        row = {k: m[k] for k in table.columns if k in m.index and k.startswith(("concept.",
                                                                               "model."))}
        only = table["setting"].unique()
        setting = str(m.get("model", m.get("model.kind", only[0] if len(only) == 1 else "?")))
        kind = setting.split("(")[0]
        rows.append({**row, "cell": m["cell"], "learner": kind, "model.kind": kind,
                     "setting": setting, "sgd": is_sgd(kind), "n_eps": float("nan"),
                     "ci_lo": float("inf"), "ci_hi": float("inf"), "censored": True,
                     "n_max": float(m.get("n_cap", m.get("n_max", float("nan")))),
                     "n_seeds": m.get("n_seeds", 0), "eps": eps, "ci": m.get("ci", 0.95),
                     "n_runs": 0, "n_diverged": 0, "n_timeout": 0, "n_failed": 0,
                     "censored_by": m.get("censored_by", "no runs")})
    return pd.concat([table, pd.DataFrame(rows)], ignore_index=True).sort_values("cell",
                                                                              ignore_index=True)
