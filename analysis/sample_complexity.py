"""Print the N_eps table of a sweep and the fitted power-law exponent N_eps ~ L^b.

Usage: python analysis/sample_complexity.py RUN_DIR

Reads only the sweep's Parquet tables, so it works on any run folder (copied, archived, ...).
Censored cells (N_eps > n_max) are listed and left out of the fit, never dropped from the table.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from pacsim.figures import read_tables
from pacsim.tables import grid_keys, power_law_fit


def summary(sc: pd.DataFrame, x: str = "concept.L") -> tuple[pd.DataFrame, pd.DataFrame]:
    """The N_eps table and one fitted exponent per setting of the other grid keys."""
    keys = grid_keys(sc)
    hue = [k for k in keys if k != x]
    table = sc[[*keys, "n_eps", "ci_lo", "ci_hi", "censored", "n_max", "n_seeds"]]
    fits = []
    for key, df in (sc.groupby(hue) if hue else [((), sc)]):
        ok = df[~df["censored"]]
        fit = power_law_fit(ok[x], ok["n_eps"]) if x in df else None
        fits.append({**dict(zip(hue, key if isinstance(key, tuple) else (key,), strict=False)),
                     "exponent": fit[0] if fit else float("nan"), "n_points": len(ok),
                     "n_censored": int(df["censored"].sum())})
    return table, pd.DataFrame(fits)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    _, sc = read_tables(Path(argv[0]))
    table, fits = summary(sc)
    with pd.option_context("display.width", 120, "display.max_columns", 20):
        print(table.to_string(index=False))
        print()
        print(fits.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
