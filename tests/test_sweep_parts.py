"""The parts of the sweep machinery, one by one: the local executor's fault handling, the
wall-time deadline, the run folder's lock and corrupt-file checks, the search's run bounds,
the progress display."""

import io
import json
import math
import os
import random
import time
from pathlib import Path

import pytest

from pacsim.config import load_sweep, parse_sweep
from pacsim.errors import PacsimError
from pacsim.executors import (
    ExecutorError,
    LocalExecutor,
    WorkerDied,
    WorkerTimeout,
    run_task,
)
from pacsim.executors.tasks import _deadline, _Timeout
from pacsim.neps import BisectionSearch
from pacsim.store import RunDir, RunDirBusy
from pacsim.sweep import _Progress, sweep_status

ROOT = Path(__file__).resolve().parents[1]


def _drain(ex, timeout=60.0):
    out, end = {}, time.monotonic() + timeout
    while ex.pending and time.monotonic() < end:
        out.update(ex.poll(0.5))
    assert not ex.pending, "tasks left after the timeout"
    return out


def test_local_executor_charges_a_death_to_its_task_only_and_goes_on():
    """``os._exit`` in one task and a task stuck in C past the hard deadline: each costs its
    own task, the worker is replaced, every other task completes."""
    with LocalExecutor(2, hard_timeout=2.0) as ex:
        for i in range(6):
            ex.submit(f"sqrt{i}", math.sqrt, float(i * i))
        ex.submit("env", os.getenv, "NUMBA_NUM_THREADS")
        ex.submit("exit", os._exit, 3)
        ex.submit("stuck", time.sleep, 60)
        for i in range(6, 10):
            ex.submit(f"sqrt{i}", math.sqrt, float(i * i))
        t0 = time.monotonic()
        got = _drain(ex)
        assert time.monotonic() - t0 < 30
    assert {k: v for k, v in got.items() if k.startswith("sqrt")} == {
        f"sqrt{i}": float(i) for i in range(10)}
    assert got["env"] == "1"  # single-threaded workers
    assert type(got["exit"]) is WorkerDied and "exit code 3" in str(got["exit"])
    assert isinstance(got["stuck"], WorkerTimeout) and "wall-time cap" in str(got["stuck"])


def test_dask_local_cluster_workers_are_single_threaded_and_deaths_are_charged():
    pytest.importorskip("distributed")
    from pacsim.executors import DaskExecutor

    with DaskExecutor(None, 2) as ex:
        assert ex.n_workers == 2 and "LocalCluster" in ex.describe()
        ex.submit("env", os.getenv, "NUMBA_NUM_THREADS")
        ex.submit("omp", os.getenv, "OMP_NUM_THREADS")
        ex.submit("exit", os._exit, 3)
        for i in range(4):
            ex.submit(f"sqrt{i}", math.sqrt, float(i * i))
        got = _drain(ex)
    assert got["env"] == got["omp"] == "1"
    assert isinstance(got["exit"], WorkerDied) and "KilledWorker" in str(got["exit"])
    assert [got[f"sqrt{i}"] for i in range(4)] == [0.0, 1.0, 2.0, 3.0]


def test_local_executor_gives_up_when_workers_die_at_start():
    ex = LocalExecutor(1, init=os._exit, init_args=(5,))
    ex.submit("a", math.sqrt, 1.0)
    with pytest.raises(ExecutorError, match=r"die at start \(exit code 5\)"):
        _drain(ex)


def test_deadline_interrupts_python_code_and_is_silent_otherwise():
    t0 = time.monotonic()
    with pytest.raises(_Timeout):
        with _deadline(0.2):
            while True:
                time.sleep(0.01)
    assert time.monotonic() - t0 < 5
    with _deadline(5.0):  # finishes in time: no stray exception later
        pass
    time.sleep(0.05)
    with _deadline(None):
        pass


def test_run_task_records_an_exception_and_a_timeout(monkeypatch):
    from pacsim.config import RunSpec

    spec = RunSpec.model_validate({"concept": {"L": 4, "d_x": 3}, "model": {"m": 8},
                                   "train": {"n_test": 10}})
    task = (spec, 7, 0.5, (8,), False, None)
    ok = run_task(task)
    assert ok["result"]["status"] == "ok" and ok["provenance"]["numpy_version"]
    monkeypatch.setenv("_PACSIM_TEST_HOOK", json.dumps({"raise_seeds": [7]}))
    bad = run_task(task)["result"]
    assert bad["status"] == "failed" and bad["rows"] == []
    assert bad["error"] == bad["message"] == "RuntimeError: injected failure (seed 7)"
    assert "Traceback" in bad["traceback"]
    monkeypatch.setenv("_PACSIM_TEST_HOOK", json.dumps({"sleep_s": 30}))
    slow = run_task((*task[:-1], 0.2))["result"]
    assert slow["status"] == "timeout" and slow["error"] is None
    assert "target.max_wall_s = 0.2 s" in slow["message"] and slow["wall_s"] < 5


def test_lock_refuses_a_second_holder_and_names_the_first(tmp_path):
    rd = RunDir(tmp_path / "x")
    rd.prepare()
    assert rd.holder() is None
    with rd.lock():
        assert f"pid {os.getpid()}" in rd.holder()
        busy = rf"in use by another pacsim sweep \(pid {os.getpid()}"
        with pytest.raises(RunDirBusy, match=busy):
            with rd.lock():
                pass
        assert f"pid {os.getpid()}" in rd.holder()  # the refused one left the info alone
    assert rd.holder() is None
    with rd.lock():  # free again
        pass
    assert RunDirBusy.exit_code == 75


@pytest.mark.parametrize("text", ["", "{", '{"id": "other", "result": {}}', "[1, 2]",
                                  '{"id": "u", "result": {"status": "ok"}, "provenance": {}}',
                                  '{"id": "u", "result": {"status": "odd", "rows": []}, '
                                  '"provenance": {}}'])
def test_corrupt_unit_files_are_detected(tmp_path, text):
    rd = RunDir(tmp_path)
    rd.prepare()
    path = rd.units / "u.json"
    path.write_text(text)
    assert rd.load("u", repair=False) is None and path.exists()  # status: read only
    with pytest.warns(UserWarning, match="corrupt"):
        assert rd.load("u") is None
    assert not path.exists()
    good = rd.save({"id": "u", "result": {"status": "ok", "rows": [{"n": 1, "x": math.inf}]},
                    "provenance": {}})
    assert rd.load("u") == good and good["result"]["rows"][0]["x"] == math.inf


def test_temporaries_of_a_killed_writer_are_removed(tmp_path):
    rd = RunDir(tmp_path)
    rd.prepare()
    (rd.units / ".abc.json.xyz").write_text("{")
    (rd.path / ".results.parquet.q").write_text("")
    (rd.units / "abc.json").write_text("{}")
    assert rd.remove_temporaries() == 2
    assert sorted(p.name for p in rd.units.iterdir()) == ["abc.json"]


def test_search_bound_on_runs_left_holds():
    for trial in range(500):
        r = random.Random(trial)
        n_min = r.randint(1, 40)
        s = BisectionSearch(n_min, r.randint(n_min, 20000), r.choice([1.5, 2, 4]),
                            r.choice([0.02, 0.1, 0.5]))
        threshold = r.randint(1, 30000)
        seen, bounds = [], []
        while (n := s.next()) is not None:
            bounds.append(s.max_left())
            seen.append(n)
            s.observe(n, n >= threshold)
        assert all(len(seen) - i <= b for i, b in enumerate(bounds)), (trial, seen, bounds)
        assert s.max_left() == 0


def test_progress_log_lines_bar_and_silence():
    log = io.StringIO()
    p = _Progress("demo", None, interval=0.0, stream=log)  # not a terminal: log lines
    assert p.mode == "log"
    p.update(0, 10, 0, 0)
    p.start()
    p.update(4, 10, 1, 4)
    p.update(10, 10, 1, 10, final=True)
    lines = log.getvalue().splitlines()
    assert "demo: 0/10 runs, 0 failed" in lines[0] and lines[0].endswith("started")
    assert "demo: 4/10 runs, 1 failed" in lines[1] and "ETA 0:00:0" in lines[1]
    assert lines[-1].endswith("done") and "10/10 runs" in lines[-1]
    bar = io.StringIO()
    p = _Progress("demo", True, stream=bar)
    p.update(0, 8, 0, 0)
    p.start()
    p.update(3, 8, 2, 3)
    p.close()
    assert "3/8 runs" in bar.getvalue() and "2 failed" in bar.getvalue()
    quiet = io.StringIO()
    p = _Progress("demo", False, stream=quiet)
    p.start()
    p.update(1, 2, 0, 1, final=True)
    p.close()
    assert quiet.getvalue() == ""


@pytest.mark.parametrize("path", sorted(ROOT.glob("configs/**/*.toml")), ids=lambda p: p.name)
def test_sweep_json_reads_back_as_the_same_config(path):
    """``pacsim status`` rebuilds the sweep from ``sweep.json``: it must be the same sweep."""
    cfg = load_sweep(path)
    again = parse_sweep(json.loads(cfg.model_dump_json(exclude_unset=True)))
    assert again == cfg and again.cells() == cfg.cells()


def test_status_of_a_folder_that_is_not_a_run_folder(tmp_path):
    with pytest.raises(PacsimError, match="not a run folder"):
        sweep_status(tmp_path)
