"""Reduced versions of the reproductions in ``configs/paper/`` (docs/experiments.md).

Each test loads the shipped config, shrinks it (fewer seeds, smaller widths and N, fewer
epochs) and checks the *ranking* of the learners that docs/experiments.md reports, not the
numbers: those need the full configs (minutes to tens of minutes on 2 cores).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pandas as pd

from pacsim import tables
from pacsim.config import parse_sweep
from pacsim.sweep import run_sweep

PAPER = Path(__file__).resolve().parents[1] / "configs" / "paper"


def _reduced(name: str, **changes) -> dict:
    """The raw TOML of ``configs/paper/NAME.toml`` with ``changes`` (dotted keys) applied."""
    raw = tomllib.loads((PAPER / f"{name}.toml").read_text())
    for key, value in changes.items():
        *parents, leaf = key.split(".")
        node = raw
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return raw


def _run(raw: dict, tmp_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    cfg = parse_sweep(raw, source="reduced")
    outcome = run_sweep(cfg, out=tmp_path, workers=2, progress=False)
    assert outcome.n_failed == 0
    folder = tmp_path / cfg.name
    return (pd.read_parquet(folder / "results.parquet"),
            pd.read_parquet(folder / "sample_complexity.parquet"))


def _at_n(results: pd.DataFrame, n: int, metric: str) -> pd.Series:
    """Median over seeds of ``metric`` at ``n`` per learner setting (validation-chosen lr)."""
    lc = tables.learning_curves(results, metric=metric)
    return lc[lc["n"] == n].set_index("setting")["median"]


def test_azl_resnet_networks_beat_their_ntks_which_beat_their_last_layers(tmp_path):
    """Reproduction 1 reduced (m = 100, N = 500, 40 epochs, 2 seeds, one step size, the cyclic
    G): as in the paper at every width, each SGD-trained network has a lower test error than
    every finite-width NTK, and each NTK than its own last-layer readout."""
    raw = _reduced("azl-resnet", seeds=[0, 1], **{
        "base.model.m": 100, "base.train.epochs": 40, "base.train.lr": 0.8,  # mse units
        "base.concept.g": "cyclic",
        "base.train.n_val": 200, "base.train.n_test": 500,
        "target.n_min": 500, "target.n_max": 500})
    del raw["grid"]["model.m"], raw["grid"]["concept.g"]
    results, _ = _run(raw, tmp_path)
    err = _at_n(results, 500, "test_sse")
    nets = err[["resnet", "mlp3", "mlp2"]]
    ntks = err[[f"entk(net={n})" for n in ("resnet", "mlp3", "mlp2")]]
    assert nets.max() < ntks.min(), err.to_dict()
    for net in ("resnet", "mlp3", "mlp2"):
        assert err[f"entk(net={net})"] < err[f"random_features(net={net})"], err.to_dict()


def test_azll_three_layers_beat_two_layers_and_the_kernels(tmp_path):
    """Reproduction 2 reduced (m = 100, N = 1000, 100 epochs, 2 seeds): the three-layer net has
    the lowest test error, below the two-layer net and the three-layer net's NTK and
    last-layer readout (paper at N = 1000: 0.12 / 2.1 / 2.4 / 8.9)."""
    raw = _reduced("azll", seeds=[0, 1], **{
        "base.model.m": 100, "base.train.epochs": 100, "base.train.lr": 0.005,  # mse units
        "base.train.n_val": 200, "base.train.n_test": 500,
        "target.n_min": 1000, "target.n_max": 1000})
    results, _ = _run(raw, tmp_path)
    err = _at_n(results, 1000, "test_mse")
    assert err["mlp3"] < err.drop("mlp3").min(), err.to_dict()
    assert err["entk"] < err["random_features(net=mlp3)"], err.to_dict()


def test_azl_length_n_eps_grows_with_l(tmp_path):
    """Reproduction 3 reduced (L = 4 and 8, sin link, m = 64, 2 seeds, n_max = 8192): no
    learner needs fewer samples at L = 8 than at L = 4 (censored counts as more), the RNN
    needs strictly more, and the RNN trained by online SGD needs more samples than the recurrent
    NTK, the FC NTK and the two-layer net on the concatenated sequence (docs/experiments.md)."""
    raw = _reduced("azl-length", seeds=[0, 1], **{"base.train.lr": 1.0, "target.n_max": 8192})
    raw["grid"].update({"concept.L": [4, 8], "concept.links": [["sin"]]})
    raw["grid"]["model"] = [t for t in raw["grid"]["model"] if t["kind"] != "rnn" or t["m"] == 64]
    _, sc = _run(raw, tmp_path)
    sc["kind"] = sc["model"].str.split("(").str[0]
    n = sc.set_index(["kind", "concept.L"])["n_eps"].fillna(float("inf"))
    for kind in sc["kind"].unique():
        assert n[(kind, 4)] <= n[(kind, 8)], n.to_dict()
    assert n[("rnn", 4)] < n[("rnn", 8)], n.to_dict()
    for other in ("rntk", "ntk", "mlp2"):
        assert n[(other, 4)] < n[("rnn", 4)], n.to_dict()
