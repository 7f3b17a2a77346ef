"""Every citation can be followed by a reader: no file of the repository cites the project's
private research notes (which are not part of it); facts are cited from the papers (arXiv id,
section, equation, figure) and derivations live in docs/ (docs/model.md and docs/kernels.md,
"Derivations").
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Where a reader looks: the package, its docs, tests, analysis scripts, configs, benchmarks and
#: the README.
PLACES = ("pacsim", "docs", "tests", "analysis", "configs", "benchmarks", "README.md")
#: The note files, and the phrases that cited them ("research notes 3.5", "RT 7.1", "(R 3.4c)").
#: (Spelled in parts, "rnn" "_theory", so that this file does not match a search for the names.)
_NOTES = ("rnn" "_theory", "resnet" "_kernels", "icml" "_seeds", "aesthetics", "ecosystem")
FORBIDDEN = re.compile(
    r"(?i:" + "|".join(rf"{n}\.md" for n in _NOTES) + r"|shared" r"/research|research notes)"
    r"|\b(?:RT|IS) \d+\.\d|\((?:R|T) \d+\.\d"
)
SUFFIXES = {".py", ".md", ".toml", ".txt", ".cfg", ".ini", ".yaml", ".yml", ".json", ".html"}


def _files():
    for place in PLACES:
        path = ROOT / place
        if path.is_file():
            yield path
        elif path.is_dir():
            yield from (p for p in sorted(path.rglob("*"))
                        if p.is_file() and p.suffix in SUFFIXES and "__pycache__" not in p.parts)


def test_the_scan_covers_the_repository():
    files = {p.relative_to(ROOT).as_posix() for p in _files()}
    for expected in ("README.md", "docs/model.md", "pacsim/concepts/azl.py", "tests/naive.py",
                     "configs/quickstart.toml", "analysis/sample_complexity.py"):
        assert expected in files
    assert FORBIDDEN.search("see shared" "/research/" + _NOTES[0] + ".md 2.2")  # it does match
    assert FORBIDDEN.search("(R 3.4c)") and FORBIDDEN.search("RT 7.1; AZL")


def test_no_citation_of_the_research_notes():
    this = Path(__file__).resolve()
    hits = []
    for path in _files():
        if path.resolve() == this:
            continue
        for i, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if FORBIDDEN.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not hits, "cite the paper, not the notes:\n" + "\n".join(hits)


@pytest.mark.parametrize("name", ["azl", "pg21", "regular", "resnet", "resnet-hard",
                                  "resnet-parity", "azll2", "azll3", "azll-exp"])
def test_concepts_command_cites_papers(name):
    """``pacsim concepts NAME`` prints each family's source: an arXiv id (or the original
    reference), never a note."""
    from click.testing import CliRunner

    from pacsim.cli import main

    r = CliRunner().invoke(main, ["concepts", name], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    source = next(line for line in r.output.splitlines() if line.startswith("source:"))
    assert re.search(r"arXiv \d{4}\.\d{4,5}", source), source
    assert not FORBIDDEN.search(r.output)
