"""The command line end to end, through click's CliRunner."""

import pandas as pd
import pytest
from click.testing import CliRunner
from tiny import tiny_toml

from pacsim import __version__
from pacsim.cli import main

TINY = tiny_toml("cli")


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_sweep_then_plot(tmp_path):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY)
    r = _run("sweep", cfg, "--out", tmp_path / "runs", "--workers", 2, "--no-progress")
    assert r.exit_code == 0, r.output
    assert r.output.startswith("cli: 4 runs (4 trained, 0 reused), 2 cells")
    run_dir = tmp_path / "runs" / "cli"
    assert len(pd.read_parquet(run_dir / "sample_complexity.parquet")) == 2
    r = _run("sweep", cfg, "--out", tmp_path / "runs", "--workers", 1, "--no-progress")
    assert "(0 trained, 4 reused)" in r.output
    r = _run("plot", run_dir)
    assert r.exit_code == 0, r.output
    for name in ("n_eps_vs_L.png", "test_error_vs_N.png", "n_eps_vs_L.pdf"):
        assert (run_dir / "figures" / name).stat().st_size > 1000


@pytest.mark.parametrize(
    "edit, message",
    [
        (("m = 8", "m = -8"), "base.model.m = -8: Input should be greater than or equal to 1"),
        (("m = 8", "m = 8\nwidth = 3"), "unknown key 'base.model.width'"),
        (("d_x = 3", "d_x = 'three'"), "base.concept.d_x = 'three': Input should be a valid integer"),
    ],
)
def test_bad_config_one_line_error_nothing_written(tmp_path, edit, message):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(TINY.replace(*edit))
    r = _run("sweep", cfg, "--out", tmp_path / "runs")
    assert r.exit_code != 0
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0]
    assert not (tmp_path / "runs").exists()


def test_missing_config_file(tmp_path):
    r = _run("sweep", tmp_path / "nope.toml", "--out", tmp_path / "runs")
    assert r.exit_code != 0 and "not found" in r.output and len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_plot_without_results(tmp_path):
    r = _run("plot", tmp_path)
    assert r.exit_code != 0 and "run `pacsim sweep CONFIG` first" in r.output


def test_version():
    assert __version__ in _run("--version").output


def test_status_of_a_finished_and_an_unstarted_sweep(tmp_path):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY.replace('"concept.L" = [3, 4]', '"concept.L" = [3]'))
    r = _run("sweep", cfg, "--out", tmp_path / "runs", "--workers", 1, "--no-progress")
    assert r.exit_code == 0, r.output
    r = _run("status", tmp_path / "runs" / "cli")
    assert r.exit_code == 0, r.output
    lines = r.output.strip().splitlines()
    assert lines[0].split() == ["cell", "concept.L", "protocol", "done", "diverged", "timeout",
                                "failed", "pending", "state", "n_eps"]
    assert lines[1].split()[:8] == ["0", "3", "online", "2", "0", "0", "0", "0"]
    assert "cli: 1/1 cells finished" in lines[-2] and "2 ok" in lines[-2]
    assert lines[-1] == "not running"
    # a config swept into the same folder but not run yet: every run pending
    (tmp_path / "runs" / "cli" / "sweep.json").write_text(
        (tmp_path / "runs" / "cli" / "sweep.json").read_text().replace('"m": 8', '"m": 9'))
    r = _run("status", tmp_path / "runs" / "cli")
    assert "not started" in r.output and "2 pending" in r.output


def test_status_of_a_folder_without_a_sweep(tmp_path):
    r = _run("status", tmp_path)
    assert r.exit_code == 1
    assert r.output.strip().splitlines() == [
        f"Error: {str(tmp_path)!r} is not a run folder (no sweep.json); run `pacsim sweep "
        "CONFIG` first"]


def test_dask_executor_from_the_command_line(tmp_path):
    pytest.importorskip("distributed")
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY)
    r = _run("sweep", cfg, "--out", tmp_path / "local", "--workers", 1, "--no-progress")
    assert r.exit_code == 0, r.output
    r = _run("sweep", cfg, "--out", tmp_path / "dask", "--workers", 2, "--executor", "dask",
             "--no-progress")
    assert r.exit_code == 0, r.output
    a = pd.read_parquet(tmp_path / "local" / "cli" / "results.parquet")
    b = pd.read_parquet(tmp_path / "dask" / "cli" / "results.parquet")
    assert set(b["executor"]) == {"dask"}
    cols = ["run_id", "n", "test_nmse", "val_nmse", "train_loss", "status"]
    # determinism across executors: the same code on one machine (bit-identical in fact)
    pd.testing.assert_frame_equal(a[cols], b[cols])


@pytest.mark.parametrize(
    "edit, message",
    [
        (("seeds = [0, 1]", "seeds = [0, 1, 1]"), "seeds = [0, 1, 1]: duplicate seeds [1]"),
        (("seeds = [0, 1]", "seeds = []"), "at least one seed is required"),
        (('"concept.L" = [3, 4]', '"concept.L" = []'), "grid: concept.L must be a non-empty list"),
        (("eps = 0.9", "eps = 0.9\nn_maxx = 3"), "unknown key 'target.n_maxx'"),
        (("n_max = 64", "n_max = 4"), "n_min = 8 exceeds n_max = 4"),
        (("n_max = 64", "n_max = 64.5"), "target.n_max = 64.5: Input should be a valid integer"),
    ],
)
def test_more_bad_configs_are_refused_before_work(tmp_path, edit, message):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(TINY.replace(*edit))
    r = _run("sweep", cfg, "--out", tmp_path / "runs")
    lines = r.output.strip().splitlines()
    assert r.exit_code == 1 and len(lines) == 1 and message in lines[0], r.output
    assert not (tmp_path / "runs").exists()


def test_unwritable_output_folder_is_refused_with_one_line(tmp_path):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY)
    blocker = tmp_path / "file"
    blocker.write_text("")
    r = _run("sweep", cfg, "--out", blocker / "runs")
    lines = r.output.strip().splitlines()
    assert r.exit_code == 1 and len(lines) == 1 and "is not writable" in lines[0], r.output


def test_scheduler_needs_the_dask_executor(tmp_path):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY)
    r = _run("sweep", cfg, "--executor", "local", "--scheduler", "tcp://127.0.0.1:1")
    assert r.exit_code == 2 and "--scheduler needs --executor dask" in r.output


def test_sweep_help_documents_the_options():
    out = _run("sweep", "--help").output
    for opt in ("--executor", "--scheduler", "--retry-failed", "--wait", "--workers",
                "--progress"):
        assert opt in out
    assert "75" in out
