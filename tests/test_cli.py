"""The command line end to end, through click's CliRunner."""

import textwrap

import pandas as pd
import pytest
from click.testing import CliRunner

from pacsim import __version__
from pacsim.cli import main

TINY = textwrap.dedent(
    """
    name = "cli"
    seeds = [0, 1]
    [base.concept]
    d_x = 3
    [base.model]
    m = 8
    [base.train]
    n_test = 40
    [grid]
    "concept.L" = [3, 4]
    [target]
    eps = 0.9
    n_min = 8
    n_max = 64
    n_boot = 100
    """
)


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
