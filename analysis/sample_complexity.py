"""N_eps per cell, the power-law fit N_eps ~ a L^b per learner with a bootstrap CI on b, and the
SGD-to-kernel ratio per L, from a sweep's results table.

Usage: python analysis/sample_complexity.py RUN_DIR [--eps E] [--n-boot B] [--ci C] [--x KEY]

Reads only RUN_DIR/results.parquet (N_eps is recomputed from the test errors, exactly as the
sweep computes it), so it works on any run folder: copied, archived, or from another machine.
The target eps (and n_boot, ci) default to the sweep's (sweep.json, else
sample_complexity.parquet); --eps recomputes everything at another target. Prints the tables
and writes them to RUN_DIR/analysis/{n_eps,fits,ratios}.csv.

--x KEY fits the power law against another swept numeric column instead of L (the default is
concept.L, else the first numeric varying concept key): a results column such as concept.d_x or
model.m, or its short name (d_x, m) when that names one column. The fits table (and fits.csv) is then
against KEY.

Censored cells (N_eps > n_max) are listed, marked "> n_max (censored)", and left out of the
fit; the fit reports how many and where, and its bootstrap CI becomes unbounded when resamples
are censored (see pacsim.tables). Library: pacsim.tables.analyze.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from pacsim.errors import PacsimError
from pacsim.rundir import load_analysis, read_results
from pacsim.tables import Analysis, display_fits, display_n_eps, display_ratios, short_key


def summary(run_dir: str | Path, eps: float | None = None, *, n_boot: int | None = None,
            ci: float | None = None, x: str | None = None) -> Analysis:
    """The analysis of a run folder (:func:`pacsim.rundir.load_analysis`), with the power law
    fitted against ``x`` (see :func:`resolve_x`) when given."""
    if x is not None:
        x = resolve_x(read_results(run_dir), x)
    return load_analysis(run_dir, eps, n_boot=n_boot, ci=ci, x=x)[1]


def resolve_x(results: pd.DataFrame, key: str) -> str:
    """The results column ``key`` names (itself, or the one ``concept.*``/``model.*``/...
    column whose last part it is); it must be numeric and positive (a log-log fit)."""
    if key in results.columns:
        col = key
    else:
        matches = [c for c in results.columns if c.rsplit(".", 1)[-1] == key]
        if len(matches) != 1:
            numeric = sorted(c for c in results.columns if c.startswith(("concept.", "model."))
                             and pd.api.types.is_numeric_dtype(results[c]))
            what = f"names {len(matches)} columns ({', '.join(matches)})" if matches else (
                "is not a column of results.parquet")
            raise PacsimError(f"--x {key!r} {what}; allowed: one of {', '.join(numeric)}")
        col = matches[0]
    if not pd.api.types.is_numeric_dtype(results[col]) or not (results[col] > 0).all():
        raise PacsimError(f"--x {key!r}: column {col!r} must be numeric and positive for a "
                          "log-log fit")
    return col


def write_csv(a: Analysis, folder: Path) -> list[Path]:
    """``n_eps.csv``, ``fits.csv`` (against L, and ``fits_m.csv`` against m when swept) and
    ``ratios.csv`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    tables = {"n_eps": a.table, "fits": a.fits, "ratios": a.ratios}
    if not a.fits_m.empty:
        tables["fits_m"] = a.fits_m
    paths = []
    for name, df in tables.items():
        path = folder / f"{name}.csv"
        df.to_csv(path, index=False)
        paths.append(path)
    return paths


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="analysis/sample_complexity.py",
                                description=__doc__.strip().splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--eps", type=float, help="target normalised test error [the sweep's]")
    p.add_argument("--n-boot", type=int, help="bootstrap resamples over seeds [the sweep's]")
    p.add_argument("--ci", type=float, help="confidence level [the sweep's]")
    p.add_argument("--x", metavar="KEY", help="fit N_eps ~ a KEY^b against this numeric column "
                   "(e.g. concept.d_x, model.m, or a short name: d_x, m) [concept.L]")
    args = p.parse_args(argv)
    try:
        a = summary(args.run_dir, args.eps, n_boot=args.n_boot, ci=args.ci, x=args.x)
    except PacsimError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 2
    with pd.option_context("display.width", 200, "display.max_columns", 30,
                           "display.max_colwidth", 120, "display.max_rows", 500):
        print(f"N_eps (eps = {a.eps:g}, median over seeds, {a.ci:.0%} bootstrap CI)")
        print(display_n_eps(a.table).to_string(index=False))
        if a.x is not None:
            print(f"\nPower-law fit N_eps ~ a {short_key(a.x)}^b (exponent b, bootstrap CI "
                  "over seeds)")
            print(display_fits(a.fits).to_string(index=False))
        if not a.fits_m.empty and a.x != "model.m":
            print("\nWidth: N_eps ~ a m^b")
            print(display_fits(a.fits_m).to_string(index=False))
        if not a.ratios.empty:
            print("\nSGD / kernel: N_eps(SGD) / N_eps(kernel) per concept cell")
            print(display_ratios(a.ratios).to_string(index=False))
    paths = write_csv(a, Path(args.run_dir) / "analysis")
    print("\nwrote " + ", ".join(str(q) for q in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
