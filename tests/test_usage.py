"""Every usage line a user can copy runs: the commands shown in README.md (its command table,
inline code and code blocks), the ``Usage:`` line of every script in ``analysis/`` and the
commands of docs/analysis.md.

For each command found: its ``--help`` exits 0, every ``--option`` the line shows is in that
help (an advertised option the program does not accept fails here), and one real call runs on
a tiny run folder made by a tiny sweep in ``tmp_path`` (seconds). A command added to the README
without an entry in :data:`REAL_CALLS` fails :func:`test_every_documented_command_has_a_real_call`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from tiny import tiny_toml

from pacsim.cli import main

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "analysis").glob("*.py"))

TINY = tiny_toml("usage")


def _code_spans(text: str) -> list[str]:
    """The text of every fenced code block line and every inline ``code`` span."""
    spans = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
        spans += block.splitlines()
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    spans += re.findall(r"`([^`\n]+)`", prose)
    return spans


def _commands(text: str) -> list[str]:
    """The ``pacsim ...`` and ``python analysis/...`` commands in markdown ``text`` (a line
    ``a && b`` gives two; comments after ``#`` dropped; table escapes ``\\|`` undone)."""
    out = []
    for span in _code_spans(text):
        for part in span.replace("\\|", "|").split("&&"):
            part = part.split("  #", 1)[0].strip()
            if re.match(r"(pacsim( |$)|python analysis/\w+\.py)", part):
                out.append(part)
    return out


def _usage_lines() -> list[str]:
    """The ``Usage:`` line of every script in analysis/ (each must have one)."""
    lines = []
    for path in SCRIPTS:
        found = re.findall(r"^Usage: (.+)$", path.read_text(), flags=re.M)
        assert found, f"{path.relative_to(ROOT)} has no 'Usage: ...' line in its docstring"
        lines += found
    return lines


def _program(command: str) -> str:
    """``pacsim sweep CONFIG [--out DIR]`` -> ``pacsim sweep``; ``pacsim --help`` -> ``pacsim``;
    ``python analysis/x.py RUN_DIR`` -> ``analysis/x.py``."""
    words = command.split()
    if words[0] == "python":
        return words[1]
    sub = words[1] if len(words) > 1 and re.fullmatch(r"[a-z]+", words[1]) else None
    return f"pacsim {sub}" if sub else "pacsim"


DOCUMENTED = sorted({
    *_commands((ROOT / "README.md").read_text()),
    *_commands((ROOT / "docs" / "analysis.md").read_text()),
    *_usage_lines(),
})
PROGRAMS = sorted({_program(c) for c in DOCUMENTED})


# How each program is called for real on the tiny run folder ``d`` (made by ``pacsim sweep``).
# The argv lists are lists of calls; each must exit 0 and leave what the check looks for.
def _figures(d):
    return (d / "figures" / "n_eps_vs_L.png").stat().st_size > 1000


REAL_CALLS = {
    "pacsim": ([["--version"]], None),
    "pacsim sweep": ([["sweep", "{cfg}", "--out", "{out}", "--workers", "1", "--no-progress"]],
                     lambda d: len(pd.read_parquet(d / "sample_complexity.parquet")) == 2),
    "pacsim status": ([["status", "{run}"]], None),
    "pacsim plot": ([["plot", "{run}"]], _figures),
    "pacsim report": ([["report", "{run}"], ["report", "{run}", "--eps", "0.95"]],
                      lambda d: (d / "report.html").stat().st_size > 1000),
    "pacsim concepts": ([["concepts"], ["concepts", "azl"]], None),
    "pacsim theory": ([["theory", "{run}", "--seeds", "1", "--m-max", "64"]],
                      lambda d: (d / "theory.parquet").is_file()),
    "analysis/sample_complexity.py": (
        [["{run}"], ["{run}", "--eps", "0.95", "--n-boot", "100", "--ci", "0.9", "--x", "L"]],
        lambda d: (d / "analysis" / "fits.csv").is_file()),
    "analysis/learning_curves.py": (
        [["{run}"], ["{run}", "--x", "steps", "--metric", "test_sse"]],
        lambda d: (d / "analysis" / "learning_curves.csv").is_file()),
}


def _load_script(path: str):
    spec = importlib.util.spec_from_file_location(Path(path).stem, ROOT / path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _call(program: str, argv: list[str]) -> tuple[int, str]:
    """Run ``program`` with ``argv`` in this process: (exit status, stdout + stderr)."""
    if program.startswith("analysis/"):
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                code = _load_script(program).main(argv)
            except SystemExit as e:  # argparse's --help and usage errors
                code = e.code
        return int(code or 0), out.getvalue()
    r = CliRunner().invoke(main, argv, catch_exceptions=False)
    return r.exit_code, r.output


def _help_argv(program: str) -> list[str]:
    return ["--help"] if program in ("pacsim",) or program.startswith("analysis/") else [
        program.split()[1], "--help"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished tiny sweep (2 cells x 2 seeds, m = 8): the folder every real call reads."""
    tmp = tmp_path_factory.mktemp("usage")
    (tmp / "tiny.toml").write_text(TINY)
    subs = {"{cfg}": str(tmp / "tiny.toml"), "{out}": str(tmp / "runs")}
    argv = [subs.get(a, a) for a in REAL_CALLS["pacsim sweep"][0][0]]
    code, out = _call("pacsim sweep", argv)
    assert code == 0, out
    return tmp, tmp / "runs" / "usage"


def test_the_readme_and_scripts_show_commands():
    """The parser finds what a reader sees (guards against a parser that finds nothing)."""
    assert {"pacsim sweep", "pacsim status", "pacsim plot", "pacsim report", "pacsim concepts",
            "analysis/sample_complexity.py", "analysis/learning_curves.py"} <= set(PROGRAMS)
    assert any("--x KEY" in c for c in DOCUMENTED)  # sample_complexity.py's usage line


def test_every_documented_command_has_a_real_call():
    missing = sorted(set(PROGRAMS) - set(REAL_CALLS))
    assert not missing, f"documented without a real call in tests/test_usage.py: {missing}"


@pytest.mark.parametrize("command", DOCUMENTED)
def test_help_shows_every_option_of_the_usage_line(command):
    program = _program(command)
    code, out = _call(program, _help_argv(program))
    assert code == 0, out
    for option in re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", command):
        assert option in out, f"{command!r} shows {option}, which {program} --help does not know"
    for option, values in re.findall(r"(--[a-z][a-z-]*) (\w+(?:\|\w+)+)", command):
        for value in values.split("|"):  # the choices shown, e.g. --executor local|dask
            assert value in out, f"{command!r}: {program} --help does not list {option} {value}"


@pytest.mark.parametrize("command", DOCUMENTED)
def test_files_named_in_commands_exist_and_configs_load(command):
    """``pacsim sweep configs/quickstart.toml``: the file is there and is a valid config (the
    real call runs the tiny sweep instead; the quickstart itself takes minutes)."""
    from pacsim.config import load_sweep

    for word in command.split():
        if re.fullmatch(r"[\w./-]+/[\w.-]+\.(toml|py)", word) and not word.startswith("runs/"):
            assert (ROOT / word).is_file(), f"{command!r} names {word}, which does not exist"
            if word.endswith(".toml"):
                assert load_sweep(ROOT / word).cells()


@pytest.mark.parametrize("program", [p for p in REAL_CALLS if p != "pacsim sweep"])
def test_one_real_call(program, run_dir):
    tmp, run = run_dir
    calls, check = REAL_CALLS[program]
    subs = {"{run}": str(run), "{cfg}": str(tmp / "tiny.toml"), "{out}": str(tmp / "runs")}
    for argv in calls:
        code, out = _call(program, [subs.get(a, a) for a in argv])
        assert code == 0, f"{program} {argv}: {out}"
        assert out.strip(), f"{program} {argv} printed nothing"
    if check is not None:
        assert check(run), f"{program}: the expected output is missing in {run}"


def test_the_sweep_call_wrote_its_tables(run_dir):
    _, run = run_dir
    assert REAL_CALLS["pacsim sweep"][1](run)
