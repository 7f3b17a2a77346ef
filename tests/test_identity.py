"""Run identity follows the code: the versions stored runs are checked against are derived
from a probe of the numerics and row schema, and a resumed sweep never mixes stale runs."""

from __future__ import annotations

import json

import pandas as pd

from pacsim import identity, store
from pacsim.config import parse_sweep
from pacsim.sweep import run_sweep


def test_probe_matches_the_stored_reference():
    """Fails when a change alters any learner's or concept's numbers beyond rounding, or the
    columns of a run: then regenerate the reference (which changes the run versions, so stored
    runs of the old code are recomputed)."""
    diff = identity.differences(identity.probe(), json.loads(identity.REFERENCE.read_text()))
    assert not diff, (
        "pacsim's numerics or row schema changed:\n  " + "\n  ".join(diff[:20])
        + "\nIf intended, run `python -m pacsim.identity --write` and commit "
          "pacsim/_reference.json (stored runs of the old code then count as stale).")


def test_versions_are_digests_of_the_reference(tmp_path):
    ref = json.loads(identity.REFERENCE.read_text())
    assert identity.versions() == {"numerics": identity._digest(ref["numerics"]),
                                   "schema": identity._digest(ref["schema"])}
    changed = {**ref, "numerics": {**ref["numerics"], "rnn-online": [0.0]}}
    assert identity._digest(changed["numerics"]) != identity.versions()["numerics"]


def test_differences_names_what_changed():
    ref = {"numerics": {"a": [1.0, 2.0]}, "schema": {"a": ["n", "x"]}}
    assert identity.differences(ref, ref) == []
    # a relative change of 1e-10 is rounding, 1e-5 is not
    assert identity.differences({**ref, "numerics": {"a": [1.0 + 1e-10, 2.0]}}, ref) == []
    d = identity.differences({"numerics": {"a": [1.0, 2.0 + 2e-5]},
                              "schema": {"a": ["n", "x", "y"]}}, ref)
    assert len(d) == 2 and "entry 1" in d[0] and "'y'" in d[1]


def test_a_float32_probe_allows_float32_rounding_only():
    """Another CPU family rounds the float32 kernels differently (1.4e-7 measured): that is not a
    change of the code; 1e-3 is."""
    ref = {"numerics": {"rnn-float32": [0.5], "rnn-online": [0.5]}, "schema": {}}
    moved = {"numerics": {"rnn-float32": [0.5 * (1 + 2e-6)], "rnn-online": [0.5]}, "schema": {}}
    assert identity.differences(moved, ref) == []
    both = {**moved["numerics"], "rnn-online": [0.5 * (1 + 2e-6)]}
    assert identity.differences({"numerics": both, "schema": {}}, ref) != []
    off = {"numerics": {"rnn-float32": [0.5 * (1 + 1e-3)], "rnn-online": [0.5]}, "schema": {}}
    assert identity.differences(off, ref) != []


TINY = {
    "name": "ident",
    "seeds": [0, 1],
    "base": {"concept": {"d_x": 3, "L": 4}, "model": {"m": 8},
             "train": {"lr": 0.5, "n_test": 40, "n_val": 20, "epochs": 2}},
    "grid": {"train.protocol": ["online", "finite"]},
    "target": {"eps": 0.9, "n_min": 8, "n_max": 32, "points_per_doubling": 1, "n_boot": 100},
}


def test_resume_after_a_numerics_change_recomputes_stale_runs(tmp_path, monkeypatch):
    cfg = parse_sweep(TINY)
    first = run_sweep(cfg, out=tmp_path, workers=1, progress=False)
    assert first.n_trained == first.n_runs > 0 and first.n_stale == 0
    today = store.code_versions()
    res = pd.read_parquet(tmp_path / "ident" / "results.parquet")
    assert set(res["code_numerics"]) == {today["numerics"]}

    # a change of a kernel's numerics (simulated): the derived version moves
    other = {**today, "numerics": "0123456789ab"}
    monkeypatch.setattr(store, "code_versions", lambda: dict(other))
    monkeypatch.setattr("pacsim.sweep.execute.code_versions", lambda: dict(other))
    lines = []
    again = run_sweep(cfg, out=tmp_path, workers=1, progress=False, on_stale=lines.append)
    assert again.n_stale == first.n_runs and again.n_trained == first.n_runs
    # one line before any work, counting what the replay of the searches found (the finite
    # cell's later batches are found as its search moves on)
    assert len(lines) == 1 and "stored runs were computed by other code" in lines[0]
    assert "recomputing them, and any more the searches reach" in lines[0]
    res = pd.read_parquet(tmp_path / "ident" / "results.parquet")
    assert set(res["code_numerics"]) == {"0123456789ab"}  # never mixed
    for p in (tmp_path / "ident" / "units").iterdir():
        assert json.loads(p.read_text())["code"] == other

    # back to today's code, keeping the stale runs: nothing trained, and the rows say so
    monkeypatch.setattr(store, "code_versions", lambda: dict(today))
    monkeypatch.setattr("pacsim.sweep.execute.code_versions", lambda: dict(today))
    lines.clear()
    kept = run_sweep(cfg, out=tmp_path, workers=1, progress=False, keep_stale=True,
                     on_stale=lines.append)
    assert kept.n_trained == 0 and kept.n_stale == first.n_runs
    assert "kept as they are" in lines[0]
    res = pd.read_parquet(tmp_path / "ident" / "results.parquet")
    assert set(res["code_numerics"]) == {"0123456789ab"}


def test_records_from_before_run_versions_are_stale(tmp_path):
    cfg = parse_sweep({**TINY, "grid": {}})
    first = run_sweep(cfg, out=tmp_path, workers=1, progress=False)
    for p in (tmp_path / "ident" / "units").iterdir():  # as an older pacsim wrote them
        rec = json.loads(p.read_text())
        del rec["code"]
        p.write_text(json.dumps(rec))
    lines = []
    again = run_sweep(cfg, out=tmp_path, workers=1, progress=False, on_stale=lines.append)
    assert again.n_trained == first.n_runs and "pacsim before run versions" in lines[0]


def test_cli_reports_stale_runs_in_one_line(tmp_path):
    from click.testing import CliRunner

    from pacsim.cli import main

    config = tmp_path / "ident.toml"
    config.write_text(
        'name = "ident"\nseeds = [0]\n[base.concept]\nd_x = 3\nL = 4\n[base.model]\nm = 8\n'
        '[base.train]\nlr = 0.5\nn_test = 40\nn_val = 20\n'
        '[target]\nn_min = 8\nn_max = 16\npoints_per_doubling = 1\nn_boot = 100\n')
    out = str(tmp_path / "runs")
    runner = CliRunner()
    assert runner.invoke(main, ["sweep", str(config), "--out", out, "--no-progress"]).exit_code == 0
    for p in (tmp_path / "runs" / "ident" / "units").iterdir():
        rec = json.loads(p.read_text())
        rec["code"] = {"numerics": "x", "schema": "y"}
        p.write_text(json.dumps(rec))
    status = runner.invoke(main, ["status", str(tmp_path / "runs" / "ident")])
    assert "1 stored runs were computed by other pacsim code" in status.output
    kept = runner.invoke(main, ["sweep", str(config), "--out", out, "--no-progress",
                                "--keep-stale"])
    assert kept.exit_code == 0 and "(0 trained, 1 reused)" in kept.output
    assert "numerics x, schema y" in kept.output and "--keep-stale" in kept.output
    redo = runner.invoke(main, ["sweep", str(config), "--out", out, "--no-progress"])
    assert redo.exit_code == 0 and "(1 trained, 0 reused)" in redo.output
    assert "recomputing them" in redo.output


def test_old_files_the_searches_do_not_reach_are_not_counted(tmp_path):
    """A unit file of other code that no search asks for (another grid, an abandoned n) is
    neither recomputed nor reported: the count is of the runs the sweep would use."""
    cfg = parse_sweep({**TINY, "grid": {}})
    run_sweep(cfg, out=tmp_path, workers=1, progress=False)
    units = tmp_path / "ident" / "units"
    rec = json.loads(next(units.iterdir()).read_text())
    rec["id"] = "0" * 16
    rec["code"] = {"numerics": "old", "schema": "old"}
    (units / f"{'0' * 16}.json").write_text(json.dumps(rec))
    lines = []
    again = run_sweep(cfg, out=tmp_path, workers=1, progress=False, on_stale=lines.append)
    assert again.n_stale == 0 and again.n_trained == 0 and lines == []
