"""Concept families end to end: every sequence family through a tiny sweep, results traceable to
their exact target, the example configs of configs/concepts/, and the `pacsim concepts` command."""

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from pacsim import concepts
from pacsim.cli import main
from pacsim.config import load_sweep, parse_sweep
from pacsim.learners import LEARNERS
from pacsim.sweep import run_sweep

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs" / "concepts").glob("*.toml"))

TINY = {
    "name": "tiny-concepts",
    "seeds": [0, 1],
    "base": {
        "concept": {"family": "azl", "L": 5, "d_x": 3},
        "model": {"kind": "rnn", "m": 8},
        "train": {"n_test": 40, "lr": 0.5},
    },
    "grid": {"concept": [
        {"variant": "all-past", "link_sharing": "independent", "links": ["sin", "z2"]},
        {"variant": "lag-k", "k": 2},
        {"variant": "first-token"},
        {"variant": "window-k", "k": 2},
        {"family": "pg21", "links": ["expm1"]},
        {"family": "regular", "language": "tomita3"},
    ]},
    "target": {"eps": 0.9, "n_min": 8, "n_max": 64, "points_per_doubling": 1, "n_boot": 100},
}


def test_every_sequence_family_runs_through_a_sweep(tmp_path):
    cfg = parse_sweep(TINY)
    families = {spec.concept.family for _, spec in cfg.cells()}
    sequence = {n for n, m in concepts.FAMILIES.items() if m.KIND == "sequence"}
    assert families == sequence
    out = run_sweep(cfg, out=tmp_path, workers=1, progress=False)
    assert out.n_failed == 0 and out.n_cells == 6 and out.n_runs == 12
    res = pd.read_parquet(tmp_path / "tiny-concepts" / "results.parquet")
    assert res["test_nmse"].notna().all()
    rnn_classes = res[res["concept.family"].isin(["azl", "pg21"])]
    assert rnn_classes["concept_info.log10_C_eps"].notna().all()
    assert (res.loc[res["concept.family"] == "regular", "concept_info.language"] == "tomita3").all()
    # every row is traceable to its exact target: config + seed regenerate the fingerprint
    specs = {i: spec for i, (_, spec) in enumerate(cfg.cells())}
    for (cell, seed), rows in res.groupby(["cell", "seed"]):
        fp = concepts.fingerprint(concepts.regenerate(specs[cell].concept, int(seed)))
        assert (rows["concept_info.fingerprint"] == fp).all()
    assert res.groupby("cell")["concept_info.fingerprint"].nunique().max() == 2  # one per seed


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_example_configs_are_valid(path):
    import tomllib

    raw = tomllib.loads(path.read_text())
    tables = raw.get("grid", {}).get("model", [])
    kinds = {raw["base"]["model"]["kind"]} | {t["kind"] for t in tables}
    assert kinds <= set(LEARNERS), f"{path.name} names unknown learner(s) {sorted(kinds - set(LEARNERS))}"
    cfg = load_sweep(path)
    cells = cfg.cells()
    assert cells and cfg.name == f"concepts-{path.stem}"
    assert {spec.concept.family for _, spec in cells} == {path.stem}


def test_there_is_a_config_per_family():
    assert {p.stem for p in CONFIGS} == set(concepts.FAMILIES)


def _run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_concepts_command_lists_and_describes():
    r = _run("concepts")
    assert r.exit_code == 0
    for name, mod in concepts.FAMILIES.items():
        assert f"{name} ({mod.KIND}): {mod.SUMMARY}" in r.output
    assert 'variant = "all-past", k = 1, L = 8' in r.output
    r = _run("concepts", "regular")
    assert r.exit_code == 0
    assert "formula:" in r.output and "source:" in r.output and "label scale:" in r.output
    assert 'language = "parity"' in r.output and "tomita1" in r.output
    r = _run("concepts", "nope")
    assert r.exit_code != 0
    assert r.output.strip().startswith("Error: unknown concept family 'nope'; allowed: azl, pg21")
