"""Test error against the number of training samples n (and SGD steps) per cell: the median
and the inter-quartile range over seeds.

Usage: python analysis/learning_curves.py RUN_DIR [--x n|steps] [--metric test_nmse|test_mse|test_sse]

Reads only RUN_DIR/results.parquet. Where a cell tried several step sizes, the one with the
smallest median validation error is taken at every n (the test errors never choose it). A seed
that diverged or failed counts as +inf from then on: it raises the median and the upper
quartile, it never disappears. Prints the curves and writes RUN_DIR/analysis/learning_curves.csv.
Library: pacsim.tables.learning_curves.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from pacsim.errors import PacsimError
from pacsim.rundir import read_results
from pacsim.tables import METRICS, learning_curves


def curves(run_dir: str | Path, metric: str = "test_nmse") -> pd.DataFrame:
    """The learning curves of a run folder (:func:`pacsim.tables.learning_curves`)."""
    return learning_curves(read_results(run_dir), metric=metric)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="analysis/learning_curves.py",
                                description=__doc__.strip().splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--x", choices=["n", "steps"], default="n",
                   help="the first column: training samples n or SGD steps [n]")
    p.add_argument("--metric", choices=list(METRICS), default="test_nmse",
                   help="test_nmse (normalised), test_mse (per output) or test_sse (summed over "
                        "outputs: the papers' test error) [test_nmse]")
    args = p.parse_args(argv)
    try:
        lc = curves(args.run_dir, args.metric)
    except PacsimError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 2
    other = "steps" if args.x == "n" else "n"
    keys = [c for c in lc.columns if c.startswith("concept.")]
    cols = ["setting", *keys, args.x, other, "median", "q25", "q75", "lr", "n_seeds"]
    with pd.option_context("display.width", 200, "display.max_rows", 10_000):
        for cell, df in lc.groupby("cell", sort=True):
            print(f"cell {cell}:")
            print(df[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
            print()
    out = Path(args.run_dir) / "analysis"
    out.mkdir(parents=True, exist_ok=True)
    lc.to_csv(out / "learning_curves.csv", index=False)
    print(f"wrote {out / 'learning_curves.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
