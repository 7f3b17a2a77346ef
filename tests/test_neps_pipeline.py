"""One N_eps pipeline: the sweep's sample_complexity.parquet, the report's and plots' table and
analysis/sample_complexity.py are all pacsim.tables.n_eps_table on results.parquet, and a
cell's bootstrap CI depends on the cell, never on its position in the grid."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pandas.testing as pdt

from pacsim import tables
from pacsim.config import parse_sweep
from pacsim.rundir import load_analysis
from pacsim.sweep import run_sweep

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ["n_eps", "ci_lo", "ci_hi", "censored", "censored_by", "lr_at_n_eps"]


def _config(Ls):
    return parse_sweep({
        "name": "pipe", "seeds": [0, 1, 2, 3, 4],
        "base": {"concept": {"d_x": 3}, "model": {"m": 16},
                 "train": {"lr": [0.5, 2.0], "n_test": 60, "n_val": 30}},
        "grid": {"concept.L": Ls},
        "target": {"eps": 0.9, "n_min": 8, "n_max": 256, "points_per_doubling": 4,
                   "n_boot": 300},
    })


def _analysis_script():
    spec = importlib.util.spec_from_file_location("sc", ROOT / "analysis" / "sample_complexity.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_sweep_report_and_analysis_give_the_same_n_eps_table(tmp_path):
    cfg = _config([4, 6, 9])
    run_sweep(cfg, out=tmp_path, workers=1, progress=False)
    folder = tmp_path / "pipe"
    sweep = pd.read_parquet(folder / "sample_complexity.parquet").set_index("cell")[COLUMNS]
    results = pd.read_parquet(folder / "results.parquet")
    direct = tables.n_eps_table(results, 0.9, n_boot=300, ci=0.95).set_index("cell")[COLUMNS]
    report = load_analysis(folder)[1].table.set_index("cell")[COLUMNS]
    script = _analysis_script().summary(folder).table.set_index("cell")[COLUMNS]
    for other in (direct, report, script):
        pdt.assert_frame_equal(sweep, other, check_dtype=False)  # the same computation


def test_adding_a_grid_value_leaves_the_other_cells_cis_unchanged(tmp_path):
    run_sweep(_config([4, 6]), out=tmp_path / "a", workers=1, progress=False)
    run_sweep(_config([3, 4, 6]), out=tmp_path / "b", workers=1, progress=False)
    a = pd.read_parquet(tmp_path / "a" / "pipe" / "sample_complexity.parquet")
    b = pd.read_parquet(tmp_path / "b" / "pipe" / "sample_complexity.parquet")
    a = a.set_index("concept.L")[COLUMNS]
    b = b.set_index("concept.L").loc[[4, 6], COLUMNS]  # cells 0, 1 before; 1, 2 now
    pdt.assert_frame_equal(a, b, check_dtype=False)  # same runs, same bootstrap streams


def _synthetic(cells: dict[int, str], seeds=range(12)) -> pd.DataFrame:
    """A results table whose N_eps varies a lot between seeds (so its CI depends on the
    bootstrap draws): cell -> cell_id; every cell has the same data."""
    import numpy as np

    rng = np.random.default_rng(5)
    ns = np.unique(np.round(2 ** np.arange(3, 12, 0.25)).astype(int))
    n_true = 100 * np.exp(rng.standard_normal(len(seeds)))
    frames = []
    for cell, cid in cells.items():
        for s, n0 in zip(seeds, n_true, strict=True):
            frames.append(pd.DataFrame({
                "run_id": f"{cid}-{s}", "cell": cell, "cell_id": cid, "model.kind": "rnn",
                "sgd": True, "concept.L": 4 + cell, "train.lr": 1.0, "seed": s, "status": "ok",
                "n": ns, "steps": ns, "test_nmse": 0.5 * (n0 / ns), "val_nmse": np.nan}))
    return pd.concat(frames, ignore_index=True)


def test_a_cells_bootstrap_follows_its_identity_not_its_position():
    before = tables.n_eps_table(_synthetic({0: "aa11", 1: "bb22"}), 0.5, n_boot=400)
    after = tables.n_eps_table(_synthetic({0: "cc33", 1: "aa11", 2: "bb22"}), 0.5, n_boot=400)
    ci = ["ci_lo", "ci_hi"]
    assert before.loc[0, ci].tolist() == after.loc[1, ci].tolist()
    assert before.loc[1, ci].tolist() == after.loc[2, ci].tolist()
    # and the draws do matter here: the same data under other ids gets other bounds
    others = [tables.n_eps_table(_synthetic({0: f"{k:04x}"}), 0.5, n_boot=400).loc[0, ci]
              .tolist() for k in range(6)]
    assert len({tuple(o) for o in others}) > 1
