"""Sweeps: same numbers for any worker count, resume without retraining, corrupt files redone."""

import json
import os
import warnings

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

from pacsim.config import parse_sweep
from pacsim.sweep import VOLATILE, run_sweep

TINY = {
    "name": "tiny",
    "seeds": [0, 1, 2],
    "base": {
        "concept": {"d_x": 3},
        "model": {"m": 8},
        "train": {"lr": [0.5, 1.0], "n_test": 50, "n_val": 30, "epochs": 2},
    },
    "grid": {"concept.L": [3, 5], "train.protocol": ["online", "finite"]},
    "target": {"eps": 0.9, "n_min": 8, "n_max": 64, "points_per_doubling": 2, "n_boot": 200},
}
def _tables(path):
    res = pd.read_parquet(path / "results.parquet")
    res = res.drop(columns=[c for c in VOLATILE if c in res])
    sc = pd.read_parquet(path / "sample_complexity.parquet")
    return res.sort_values(["run_id", "n"]).reset_index(drop=True), sc


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """The tiny sweep, run once with 2 workers and once with 1."""
    cfg = parse_sweep(TINY)
    out2, out1 = tmp_path_factory.mktemp("w2"), tmp_path_factory.mktemp("w1")
    o2 = run_sweep(cfg, out=out2, workers=2, progress=False)
    o1 = run_sweep(cfg, out=out1, workers=1, progress=False)
    return cfg, out2 / "tiny", o2, out1 / "tiny", o1


def test_sweep_writes_both_tables(swept):
    cfg, path, outcome, _, _ = swept
    res, sc = _tables(path)
    assert outcome.n_failed == 0 and outcome.n_trained == outcome.n_runs > 0
    assert len(sc) == 4 and set(sc["protocol"]) == {"online", "finite"}
    assert set(res["seed"]) == {0, 1, 2} and set(res["train.lr"]) == {0.5, 1.0}
    online = res[res["train.protocol"] == "online"]
    assert sorted(online["n"].unique()) == [8, 11, 16, 23, 32, 45, 64]
    # finite runs: every (seed, lr) evaluated at every N the search visited
    for _, cell in res[res["train.protocol"] == "finite"].groupby("cell"):
        assert (cell.groupby("n").size() == 6).all()
    assert (sc["censored"] | (sc["n_eps"] <= 64)).all()
    assert {"pacsim_version", "numpy_version", "numba_version", "eta", "status"} <= set(res.columns)
    # the step size chosen on validation: one per (cell, n), the same for every seed
    chosen = res[res["lr_chosen"]]
    assert (chosen.groupby(["cell", "n", "seed"]).size() == 1).all()
    assert (chosen.groupby(["cell", "n"])["train.lr"].nunique() == 1).all()
    assert len(chosen) * 2 == len(res)
    raw = pd.read_parquet(path / "results.parquet")
    assert set(raw["executor"]) == {"local"} and raw["started_at"].notna().all()


def test_sweep_same_numbers_for_1_and_2_workers(swept):
    _, path2, _, path1, _ = swept
    res2, sc2 = _tables(path2)
    res1, sc1 = _tables(path1)
    # determinism: the same runs through the same code (one thread per worker); pandas' float
    # tolerance (rtol 1e-5) is a floor, the numbers are in fact bit-identical
    pdt.assert_frame_equal(res1, res2)
    pdt.assert_frame_equal(sc1, sc2)


def test_resume_does_no_new_training(swept):
    cfg, path, _, _, _ = swept
    before = _tables(path)
    mtimes = {p: p.stat().st_mtime_ns for p in (path / "units").iterdir()}
    again = run_sweep(cfg, out=path.parent, workers=2, progress=False)
    assert again.n_trained == 0 and again.n_runs > 0
    assert {p: p.stat().st_mtime_ns for p in (path / "units").iterdir()} == mtimes
    after = _tables(path)
    pdt.assert_frame_equal(before[0], after[0])
    pdt.assert_frame_equal(before[1], after[1])


def test_corrupt_unit_file_is_reported_and_recomputed(swept):
    cfg, _, _, path, _ = swept
    before = _tables(path)
    victim = sorted((path / "units").iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:40])  # truncated write
    with pytest.warns(UserWarning, match="corrupt"):
        again = run_sweep(cfg, out=path.parent, workers=1, progress=False)
    assert again.n_trained == 1
    pdt.assert_frame_equal(before[0], _tables(path)[0])


def test_diverging_cell_is_recorded_and_censored(tmp_path):
    raw = {
        "name": "boom",
        "seeds": [0, 2],  # at lr = 100 these two blow up (others kill every ReLU instead)
        "base": {"concept": {"L": 16, "d_x": 3}, "model": {"m": 8, "eps_x": 1.0},
                 "train": {"n_test": 20}},
        "grid": {"train.lr": [1.0, 100.0]},
        "target": {"eps": 0.9, "n_min": 2, "n_max": 32, "n_boot": 100},
    }
    outcome = run_sweep(parse_sweep(raw), out=tmp_path, workers=2, progress=False)
    res, sc = _tables(tmp_path / "boom")
    assert outcome.n_diverged == 2 and outcome.n_failed == 0
    bad = res[res["train.lr"] == 100.0]
    assert set(bad["status"]) == {"diverged"} and bad["diverged_step"].notna().all()
    assert bad["message"].str.startswith("diverged: loss not finite at SGD step").all()
    assert np.isinf(bad["test_nmse"]).any()  # checkpoints after the blow-up: not reached
    assert bool(sc.loc[sc["train.lr"] == 100.0, "censored"].iloc[0])


def test_unwritable_output_folder_is_refused_before_work(tmp_path):
    from pacsim.errors import PacsimError

    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(PacsimError, match="not writable"):
        run_sweep(parse_sweep(TINY), out=blocker, workers=1, progress=False)
    assert os.listdir(tmp_path) == ["file"]


def test_no_warnings_from_a_clean_resume(swept):
    cfg, path, _, _, _ = swept
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_sweep(cfg, out=path.parent, workers=1, progress=False)


def test_dask_cluster_gives_the_same_tables_and_records_worker_deaths(swept, tmp_path,
                                                                      monkeypatch):
    """A real LocalCluster on the loopback interface, started and stopped here: the same
    tables as the local executor; a run that kills its Dask worker is a recorded failure."""
    distributed = pytest.importorskip("distributed")
    import dask

    cfg, path2, _, _, _ = swept
    monkeypatch.setenv("_PACSIM_TEST_HOOK", json.dumps({"crash_seeds": [99]}))
    with dask.config.set({"distributed.scheduler.allowed-failures": 0,
                          # one task per thread, as pacsim's own LocalCluster: a death costs
                          # only the run that caused it
                          "distributed.scheduler.worker-saturation": 1.0}), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                     host="127.0.0.1", dashboard_address=None) as cluster:
        o = run_sweep(cfg, out=tmp_path, progress=False, scheduler=cluster.scheduler_address)
        assert o.executor == "dask" and o.n_failed == 0 and o.n_trained == o.n_runs
        res, sc = _tables(tmp_path / "tiny")
        ref_res, ref_sc = _tables(path2)
        # determinism across executors: the same code on the same machine (see above)
        pdt.assert_frame_equal(res, ref_res)
        pdt.assert_frame_equal(sc, ref_sc)
        assert set(pd.read_parquet(tmp_path / "tiny" / "results.parquet")["executor"]) == {"dask"}

        crash = parse_sweep({**TINY, "name": "crash", "seeds": [0, 99],
                             "grid": {"concept.L": [3]}})
        o = run_sweep(crash, out=tmp_path, progress=False, scheduler=cluster.scheduler_address)
    assert o.n_failed == 2 and o.n_runs == 4  # online: 2 seeds x 2 step sizes
    assert all("worker process died (Dask KilledWorker" in f and "seed 99" in f
               for f in o.failures)
    res = pd.read_parquet(tmp_path / "crash" / "results.parquet")
    assert set(res.loc[res["seed"] == 0, "status"]) == {"ok"}
