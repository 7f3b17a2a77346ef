"""Sweeps survive faults: SIGKILL at any moment then resume, two sweeps on one folder, workers
that die, runs that raise or diverge, budgets. Each compares with an uninterrupted sweep."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pandas.testing as pdt
import pytest

from pacsim.config import load_sweep
from pacsim.store import RunDir
from pacsim.sweep import VOLATILE, run_sweep, sweep_status

#: 2 seeds, m = 8, L = 4, n_max = 64: an online cell (reached at n = 54) and a finite cell whose
#: search brackets 8, 16, 32, 64 then bisects (7 batches one after the other): 16 runs.
CONFIG = textwrap.dedent(
    """
    name = "faults"
    seeds = [0, 1]
    [base.concept]
    L = 4
    d_x = 3
    [base.model]
    m = 8
    [base.train]
    lr = 0.5
    n_test = 40
    epochs = 2
    [grid]
    "train.protocol" = ["online", "finite"]
    [target]
    eps = 1.1
    n_min = 8
    n_max = 64
    n_boot = 100
    """
)
SLOW = json.dumps({"sleep_s": 0.25})  # every run takes >= 0.25 s: time to kill part-way


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "faults.toml"
    path.write_text(CONFIG)
    return path


@pytest.fixture(scope="module")
def reference(config, tmp_path_factory):
    """The uninterrupted sweep, in this process."""
    out = tmp_path_factory.mktemp("ref")
    outcome = run_sweep(load_sweep(config), out=out, workers=2, progress=False)
    assert outcome.n_failed == 0 and outcome.n_runs == outcome.n_trained
    return out / "faults", outcome


def tables(path):
    res = pd.read_parquet(path / "results.parquet")
    res = res.drop(columns=[c for c in VOLATILE if c in res])
    sc = pd.read_parquet(path / "sample_complexity.parquet")
    return res.sort_values(["run_id", "n"]).reset_index(drop=True), sc


def assert_same_tables(a, b):
    ra, sa = tables(a)
    rb, sb = tables(b)
    # determinism: the same runs through the same code on one machine (bit-identical in fact)
    pdt.assert_frame_equal(ra, rb)
    pdt.assert_frame_equal(sa, sb)


def sweep_cmd(config, out, *args):
    return [sys.executable, "-c", "from pacsim.cli import main; main()", "sweep", str(config),
            "--out", str(out), "--workers", "2", "--no-progress", *args]


def start(cmd, hook=SLOW):
    env = {**os.environ, "_PACSIM_TEST_HOOK": hook} if hook else dict(os.environ)
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def n_units(run_dir):
    units = run_dir / "units"
    return sum(1 for p in units.iterdir() if not p.name.startswith(".")) if units.exists() else 0


def wait_for(predicate, timeout=90.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def kill(proc, group):
    if group:  # the sweep and its workers at once (the OOM killer, a node going down)
        os.killpg(proc.pid, signal.SIGKILL)
    else:  # only the sweep: its workers find their pipe closed and leave
        proc.kill()
    proc.communicate(timeout=30)  # reaps it and closes the pipes


def test_sigkill_at_several_points_then_resume_gives_the_uninterrupted_table(
        config, reference, tmp_path):
    ref, ref_outcome = reference
    run_dir = tmp_path / "faults"
    total = ref_outcome.n_runs
    # (units stored before the kill, how): SIGKILL during start-up, part-way (the sweep alone,
    # or with its workers); SIGTERM stops it cleanly
    for k, how in [(0, "group"), (3, "sweep"), (6, "term"), (9, "group")]:
        proc = start(sweep_cmd(config, tmp_path))
        if k == 0:  # during start-up, before any run is stored
            assert wait_for(lambda: (run_dir / "sweep.json").exists())
        else:
            assert wait_for(lambda: n_units(run_dir) >= k), proc.communicate()
            assert n_units(run_dir) < total, "the sweep finished before the kill"
        if how == "term":
            proc.terminate()
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 130, err
            assert err.strip().splitlines()[-1].startswith("Error: interrupted: ")
        else:
            kill(proc, how == "group")
            assert proc.returncode == -signal.SIGKILL
        for p in (run_dir / "units").glob("*.json"):  # whole files or none
            json.loads(p.read_text())
    # where it stands, from the folder alone
    status, summary = sweep_status(run_dir)
    assert summary["holder"] is None
    assert 9 <= summary["done"] < total and summary["failed"] == 0
    done_before = n_units(run_dir)
    # resume to the end
    r = subprocess.run(sweep_cmd(config, tmp_path), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"({total - done_before} trained, {done_before} reused)" in r.stdout
    assert_same_tables(ref, run_dir)
    leftovers = [p.name for p in [*run_dir.iterdir(), *(run_dir / "units").iterdir()]
                 if p.name.startswith(".") and p.name != ".lock"]
    assert leftovers == []
    assert sweep_status(run_dir)[1]["pending"] == 0


def test_two_sweeps_on_one_folder(config, reference, tmp_path):
    ref, ref_outcome = reference
    run_dir = tmp_path / "faults"
    release = tmp_path / "release"  # the first sweep's runs wait for this file
    first = start(sweep_cmd(config, tmp_path), hook=json.dumps({"wait_file": str(release)}))
    third = None
    try:
        assert wait_for(lambda: RunDir(run_dir).holder() is not None), first.communicate()
        # a second one refuses at once, saying who holds the folder
        second = subprocess.run(sweep_cmd(config, tmp_path), capture_output=True, text=True,
                                timeout=120)
        assert second.returncode == 75
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: run folder")
        assert f"in use by another pacsim sweep (pid {first.pid}" in lines[0]
        assert "--wait" in lines[0]
        assert f"pid {first.pid}" in sweep_status(run_dir)[1]["holder"]
        # a third one waits for the first, then finds everything done
        third = start(sweep_cmd(config, tmp_path, "--wait"), hook=None)
        waiting = third.stderr.readline()
        assert "in use by another pacsim sweep" in waiting and "waiting" in waiting
        release.touch()
        out1, err1 = first.communicate(timeout=300)
        out3, err3 = third.communicate(timeout=300)
    finally:
        release.touch()
        for p in (first, third):
            if p is not None and p.poll() is None:
                kill(p, True)
    assert first.returncode == 0, err1
    assert third.returncode == 0, err3
    assert f"(0 trained, {ref_outcome.n_runs} reused)" in out3
    assert_same_tables(ref, run_dir)


def test_worker_deaths_are_recorded_and_retried(config, reference, tmp_path, monkeypatch):
    """Seed 1's runs kill their worker process: each is recorded as failed and the sweep goes
    on (no hang, no broken pool); the CLI exits 1 with a summary; --retry-failed reruns only
    the failed runs, and then the table is the uninterrupted one."""
    from click.testing import CliRunner

    from pacsim.cli import main

    ref, _ = reference
    run_dir = tmp_path / "faults"
    args = ["sweep", str(config), "--out", str(tmp_path), "--workers", "2", "--no-progress"]
    monkeypatch.setenv("_PACSIM_TEST_HOOK", json.dumps({"crash_seeds": [1]}))
    r = CliRunner().invoke(main, args, catch_exceptions=False)
    assert r.exit_code == 1
    assert ("failed: cell 0 (train.protocol=online) seed 1 lr 0.5 n 64: worker process died "
            "(exit code 13)") in r.output
    assert "--retry-failed" in r.output
    res = pd.read_parquet(run_dir / "results.parquet")
    assert set(res.loc[res["seed"] == 1, "status"]) == {"failed"}
    assert set(res.loc[res["seed"] == 0, "status"]) == {"ok"}
    sc = pd.read_parquet(run_dir / "sample_complexity.parquet")  # a missing seed counts as inf
    assert sc["censored"].all() and set(sc["censored_by"]) == {"failed"}  # not a cap
    ok_files = {p: p.stat().st_mtime_ns for p in (run_dir / "units").iterdir()
                if json.loads(p.read_text())["result"]["status"] == "ok"}
    failed = res.loc[res["status"] == "failed", "run_id"].nunique()

    # without --retry-failed the failures are kept: nothing to train, still exit 1
    monkeypatch.delenv("_PACSIM_TEST_HOOK")
    r = CliRunner().invoke(main, args, catch_exceptions=False)
    assert r.exit_code == 1 and "(0 trained," in r.output and f"{failed} failed" in r.output

    r = CliRunner().invoke(main, [*args, "--retry-failed"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    for p, mtime in ok_files.items():  # runs that were fine were not redone
        assert p.stat().st_mtime_ns == mtime
    assert_same_tables(ref, run_dir)


def test_wall_time_and_step_caps_censor_the_cell(config, tmp_path, monkeypatch):
    cfg = load_sweep(config)
    capped = cfg.model_copy(update={"target": cfg.target.model_copy(
        update={"max_steps": 40, "max_wall_s": 0.5})})
    monkeypatch.setenv("_PACSIM_TEST_HOOK", json.dumps({"sleep_s": 5, "sleep_seeds": [1]}))
    t0 = time.perf_counter()
    o = run_sweep(capped, out=tmp_path, workers=2, progress=False)
    assert time.perf_counter() - t0 < 60
    assert o.n_failed == 0 and o.n_timeout == 2 and o.n_runs == 4
    res = pd.read_parquet(tmp_path / "faults" / "results.parquet")
    sc = pd.read_parquet(tmp_path / "faults" / "sample_complexity.parquet")
    slow = res[res["seed"] == 1]
    assert set(slow["status"]) == {"timeout"} and (slow["test_nmse"] == float("inf")).all()
    assert slow["message"].str.contains("wall-time cap").all()
    assert res.loc[res["train.protocol"] == "online", "n"].max() == 40  # max_steps: 40 steps
    assert set(res.loc[res["train.protocol"] == "finite", "n"]) == {8}  # search stopped
    assert sc["n_cap"].tolist() == [40, 20]  # finite: 2 epochs of 20 samples
    assert sc["censored"].all() and sc["censored_by"].tolist() == ["max_wall_s", "max_wall_s"]

    # a larger cap: the runs stopped by the old one run again, the others are kept
    monkeypatch.delenv("_PACSIM_TEST_HOOK")
    more = capped.model_copy(update={"target": capped.target.model_copy(
        update={"max_wall_s": 60.0})})
    o = run_sweep(more, out=tmp_path, workers=2, progress=False)
    assert o.n_timeout == 0 and o.n_trained >= 2
    sc = pd.read_parquet(tmp_path / "faults" / "sample_complexity.parquet")
    assert sc["n_cap"].tolist() == [40, 20]
    assert set(sc["censored_by"].dropna()) <= {"max_steps"}


@pytest.mark.parametrize("executor", ["local", "dask"])
def test_a_run_stuck_in_compiled_code_is_stopped_at_the_wall_time_cap(config, tmp_path,
                                                                     monkeypatch, executor):
    """The in-run deadline cannot interrupt C code that holds the GIL (a long LAPACK or Numba
    call); the executor ends the worker process instead, within a few seconds of the cap, on
    both executors, and the run is recorded as a timeout while the sweep goes on."""
    cfg = load_sweep(config)
    capped = cfg.model_copy(update={"grid": {"train.protocol": ("online",)},
                                    "target": cfg.target.model_copy(update={"max_wall_s": 2.0})})
    monkeypatch.setenv("_PACSIM_TEST_HOOK",
                       json.dumps({"compiled_sleep_s": 60, "sleep_seeds": [1]}))
    t0 = time.perf_counter()
    o = run_sweep(capped, out=tmp_path, workers=2, progress=False, executor=executor)
    took = time.perf_counter() - t0
    assert o.n_timeout == 1 and o.n_failed == 0 and o.n_runs == 2
    assert took < 45, took  # cap 2 s + grace 2 s + worker start-up, never the 60 s sleep
    res = pd.read_parquet(tmp_path / "faults" / "results.parquet")
    slow = res[res["seed"] == 1]
    assert set(slow["status"]) == {"timeout"} and slow["message"].str.contains("wall-time cap").all()
    assert slow["message"].str.contains("ended after 4 s").all()  # the cap plus HARD_GRACE_S
    assert set(res.loc[res["seed"] == 0, "status"]) == {"ok"}
