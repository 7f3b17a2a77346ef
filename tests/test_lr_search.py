"""The step-size search (train.lr = "auto") finds the stability edge, and the sweep records
how it was found; divergent cells are censored as diverged; early stopping reads only the
validation split."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pacsim import sweep, train
from pacsim.config import RunSpec, parse_sweep
from pacsim.sweep import run_sweep


def _gd_on_quadratic(eigs: np.ndarray, lr: float, steps: int = 1000) -> tuple[str, float]:
    """Gradient descent on the quadratic 1/2 sum_i eig_i w_i^2 from w = 1: stable iff
    lr * max(eig) < 2 (each coordinate is multiplied by 1 - lr eig_i per step)."""
    w = np.ones_like(eigs)
    for _ in range(steps):
        w = w - lr * eigs * w
        if not np.isfinite(w).all() or np.abs(w).max() > 1e50:  # past the edge: growth >= 1.5^1000
            return "diverged", math.inf
    return "ok", float(0.5 * np.sum(eigs * w * w))


def _search(spec: RunSpec, eigs: np.ndarray) -> tuple[list[float], float | None]:
    """Drive sweep._next_lr as the sweep does, with runs replaced by GD on the quadratic."""
    records: dict[str, dict] = {}
    batch: list[sweep.Unit] = []

    def add(lr):
        status, loss = _gd_on_quadratic(eigs, lr)
        for seed in (0, 1, 2):
            u = sweep.Unit(0, spec, seed, lr, (64,), True, id=f"{lr}-{seed}")
            rows = [] if status == "diverged" else [{"n": 64, "val_nmse": loss + 1e-3 * seed}]
            records[u.id] = {"result": {"status": status, "rows": rows}}
            batch.append(u)

    add(spec.train.lrs[0])
    while (lr := sweep._next_lr(spec, batch, records)) is not None:
        add(lr)
    tried = sorted({u.lr for u in batch})
    bad = [lr for lr in tried if records[f"{lr}-0"]["result"]["status"] == "diverged"]
    return tried, (min(bad) if bad else None)


@pytest.mark.parametrize("lam_max", [0.37, 3.0, 41.0])
def test_search_finds_the_edge_of_a_quadratic(lam_max):
    """GD on a quadratic diverges exactly above 2 / lambda_max: the search climbs the grid
    lr_start * 2^k until the first value past that edge, and stops there."""
    spec = RunSpec.model_validate({"train": {"lr_start": 0.01, "lr_max": 1e4}})
    eigs = np.array([0.01, 0.1, lam_max])
    tried, edge = _search(spec, eigs)
    k_edge = math.floor(math.log2(2 / lam_max / 0.01)) + 1  # first grid point past 2/lam_max
    assert edge == pytest.approx(0.01 * 2**k_edge, rel=1e-12)
    assert max(tried) == edge  # nothing tried beyond the first divergent value
    assert 2 / lam_max < edge <= 4 / lam_max
    assert min(tried) == 0.01  # the start was not the best, so the search did not go down


def test_search_goes_down_when_the_smallest_step_is_best():
    """Every value from lr_start up diverges: the search goes down to the stable side."""
    spec = RunSpec.model_validate({"train": {"lr_start": 8.0, "lr_min": 1e-3}})
    tried, edge = _search(spec, np.array([1.0, 10.0]))  # edge at 2 / 10 = 0.2
    stable = [lr for lr in tried if lr < 0.2]
    assert edge == 0.25 and stable and max(stable) == 0.125
    assert min(tried) >= 1e-3


def test_search_stops_at_lr_max_and_says_so():
    spec = RunSpec.model_validate({"train": {"lr_start": 0.25, "lr_max": 2.0}})
    tried, edge = _search(spec, np.array([1e-3]))  # edge at 2000: never reached
    assert tried == [0.25, 0.5, 1.0, 2.0] and edge is None


TINY = {
    "name": "search",
    "seeds": [0, 1],
    "base": {"concept": {"L": 6, "d_x": 4}, "model": {"m": 32},
             "train": {"n_test": 100, "n_val": 50, "lr_start": 1.0}},
    "target": {"eps": 0.9, "n_min": 16, "n_max": 256, "points_per_doubling": 1, "n_boot": 100},
}


def test_sweep_with_lr_auto_records_the_edge_and_the_choice(tmp_path):
    cfg = parse_sweep(TINY)  # no lr: the search is the default
    assert cfg.base.train.lr == "auto"
    out = run_sweep(cfg, out=tmp_path, workers=1, progress=False)
    res = pd.read_parquet(tmp_path / "search" / "results.parquet")
    lrs = sorted(res["train.lr"].unique())
    assert lrs[0] == 1.0 and all(b == 2 * a for a, b in zip(lrs, lrs[1:], strict=False))
    assert set(res["lr_search"]) == {"auto"}
    edge = res["lr_edge"].iloc[0]
    diverged = res.loc[res["status"] == "diverged", "train.lr"]
    if len(diverged):  # stopped at the edge: the largest value tried, the first divergent one
        assert edge == diverged.min() == max(lrs) and out.n_diverged >= 1
    else:  # stopped because the validation error turned back up
        assert np.isnan(edge)
    # the choice reads validation errors only: per n, the lr with the smallest median val_nmse
    for n, at_n in res.groupby("n"):
        med = at_n.groupby("train.lr")["val_nmse"].median()
        chosen = at_n.loc[at_n["lr_chosen"], "train.lr"].unique()
        assert len(chosen) == 1 and chosen[0] == med.idxmin()
        assert (at_n["lr_selected"] == chosen[0]).all()


def test_cell_whose_every_step_size_diverges_is_censored_as_diverged(tmp_path):
    raw = {
        "name": "boom",
        "seeds": [0, 2],  # at lr = 100 these two blow up (others kill every ReLU instead)
        "base": {"concept": {"L": 16, "d_x": 3}, "model": {"m": 8, "eps_x": 1.0},
                 "train": {"n_test": 20, "lr": 100.0}},
        "target": {"eps": 0.9, "n_min": 2, "n_max": 32, "n_boot": 100},
    }
    run_sweep(parse_sweep(raw), out=tmp_path, workers=1, progress=False)
    sc = pd.read_parquet(tmp_path / "boom" / "sample_complexity.parquet")
    assert bool(sc["censored"].iloc[0]) and sc["censored_by"].iloc[0] == "diverged"


SPEC = {"concept": {"L": 4, "d_x": 3}, "model": {"m": 16},
        "train": {"protocol": "finite", "n_test": 50, "n_val": 40, "epochs": 60,
                  "patience": 3}}


def test_early_stopping_reads_the_validation_split_only():
    a = train.run(RunSpec.model_validate(SPEC), seed=4, lr=1.0, checkpoints=[24])
    other_test = {**SPEC, "train": {**SPEC["train"], "n_test": 80}}
    b = train.run(RunSpec.model_validate(other_test), seed=4, lr=1.0, checkpoints=[24])
    ra, rb = a.rows[0], b.rows[0]
    assert ra["best_epoch"] == rb["best_epoch"] and ra["epochs"] == rb["epochs"]
    assert ra["val_nmse"] == rb["val_nmse"] and ra["train_nmse"] == rb["train_nmse"]
    assert ra["test_nmse"] != rb["test_nmse"]  # another test set, the same training
    # it stopped early, patience epochs after its best one, and kept the best weights
    assert ra["epochs"] < 60 and ra["epochs"] - ra["best_epoch"] == 3
    assert ra["steps"] == ra["epochs"] * 24
    # the kept weights are the best epoch's: a run capped at that epoch ends with them
    capped = {**SPEC, "train": {**SPEC["train"], "epochs": max(ra["best_epoch"], 1),
                                "patience": None}}
    c = train.run(RunSpec.model_validate(capped), seed=4, lr=1.0, checkpoints=[24],
                  validate=True)
    if ra["best_epoch"] > 0:
        assert c.rows[0]["val_nmse"] == pytest.approx(ra["val_nmse"], rel=1e-12)


def test_patience_is_for_vanilla_sgd():
    from pacsim.errors import ConfigError

    with pytest.raises(ConfigError, match="patience"):
        parse_sweep({"name": "x", "seeds": [0], "base": {"train": {
            "patience": 2, "protocol": "finite", "optimizer": "momentum"}}})
    online = RunSpec.model_validate({**SPEC, "train": {**SPEC["train"], "protocol": "online"}})
    res = train.run(online, seed=0, lr=1.0, checkpoints=[8, 16])  # ignored, like epochs
    assert "best_epoch" not in res.rows[0] and np.isnan(res.rows[0]["val_nmse"])


WD = {
    "name": "wd",
    "seeds": [0, 1, 2],
    "base": {"concept": {"family": "resnet", "d_in": 6, "d": 2},
             "model": {"kind": "mlp2", "m": 16},
             "train": {"protocol": "finite", "optimizer": "momentum", "lr_units": "raw",
                       "lr": [0.02, 0.1], "weight_decay": [0.0, 1e-3, 0.05], "epochs": 4,
                       "batch": 8, "n_test": 60, "n_val": 40}},
    "target": {"eps": 0.05, "n_min": 64, "n_max": 64, "n_boot": 100},
}


def _wd_choice(tmp_path, n_test):
    raw = {**WD, "base": {**WD["base"], "train": {**WD["base"]["train"], "n_test": n_test}}}
    run_sweep(parse_sweep(raw), out=tmp_path / str(n_test), workers=1, progress=False)
    return pd.read_parquet(tmp_path / str(n_test) / "wd" / "results.parquet")


def test_lr_and_weight_decay_are_chosen_jointly_on_validation_only(tmp_path):
    a = _wd_choice(tmp_path, 60)
    assert len(a) == 2 * 3 * 3 and set(a["train.weight_decay"]) == {0.0, 1e-3, 0.05}
    med = a.groupby(["train.lr", "train.weight_decay"])["val_nmse"].median()
    best = med.idxmin()
    chosen = a[a["lr_chosen"]]
    assert set(zip(chosen["train.lr"], chosen["train.weight_decay"])) == {best}
    assert (a["lr_selected"] == best[0]).all() and (a["wd_selected"] == best[1]).all()
    # the papers' rule (best by test) is its own column, flagged by its name
    by_test = a.groupby(["train.lr", "train.weight_decay"])["test_nmse"].median().idxmin()
    flagged = a[a["papers_rule_best_by_test"]]
    assert set(zip(flagged["train.lr"], flagged["train.weight_decay"])) == {by_test}
    # another test set changes the test errors, never the choice
    b = _wd_choice(tmp_path, 90)
    key = ["train.lr", "train.weight_decay", "seed"]
    assert not np.allclose(a.sort_values(key)["test_nmse"], b.sort_values(key)["test_nmse"])
    npt_val = a.sort_values(key)["val_nmse"].to_numpy(), b.sort_values(key)["val_nmse"].to_numpy()
    assert np.array_equal(*npt_val)  # same code path, same validation set: bit for bit
    assert (b["lr_selected"] == best[0]).all() and (b["wd_selected"] == best[1]).all()


def test_weight_decay_belongs_to_the_momentum_preset():
    from pacsim.errors import ConfigError

    with pytest.raises(ConfigError, match="weight_decay belongs to"):
        parse_sweep({"name": "x", "seeds": [0], "base": {"train": {"weight_decay": [0.0, 0.1]}}})


def test_lr_warmup_rescales_the_step_by_the_trace_after_warm_up():
    spec = {"concept": {"L": 6, "d_x": 4}, "model": {"m": 32},
            "train": {"n_test": 60, "n_val": 20}}
    plain = train.run(RunSpec.model_validate(spec), seed=1, lr=2.0, checkpoints=[16, 64, 256])
    warm = train.run(RunSpec.model_validate(
        {**spec, "train": {**spec["train"], "lr_warmup": 64}}), seed=1, lr=2.0,
        checkpoints=[16, 64, 256])
    # identical up to the warm-up step (same samples, same step), different after it
    assert warm.rows[0]["test_nmse"] == plain.rows[0]["test_nmse"]
    assert warm.rows[1]["test_nmse"] == plain.rows[1]["test_nmse"]
    assert warm.rows[2]["test_nmse"] != plain.rows[2]["test_nmse"]
    scale = warm.info["train_info.lr_rescale"]
    lazy = warm.rows[1]  # the laziness at the warm-up checkpoint: the same weights
    assert scale == pytest.approx(lazy["lazy.trace0"] / lazy["lazy.trace"], rel=1e-12)
    assert warm.info["train_info.eta_after_warmup"] == pytest.approx(warm.eta * scale,
                                                                     rel=1e-12)
    assert "train_info.lr_rescale" not in plain.info


def test_a_weight_decay_list_does_not_multiply_closed_form_cells(tmp_path):
    raw = {**WD, "name": "wdk", "grid": {"model": [{"kind": "mlp2", "m": 16}, {"kind": "ntk"}]}}
    out = run_sweep(parse_sweep(raw), out=tmp_path, workers=1, progress=False)
    res = pd.read_parquet(tmp_path / "wdk" / "results.parquet")
    assert (res["model.kind"] == "ntk").sum() == 3  # one run per seed, whatever the list
    assert out.n_runs == 3 + 2 * 3 * 3


def test_early_stopping_keeps_the_best_epoch_when_a_later_one_diverges(monkeypatch):
    from pacsim.learners import rnn as rnn_learner

    real = rnn_learner.RNNLearner.sgd_chunk
    calls = []

    def third_epoch_blows_up(self, inputs, Y, eta, order):
        calls.append(1)
        n_steps, losses = real(self, inputs, Y, eta, order)
        if len(calls) == 3:  # as if the loss were not finite at its first step
            return 0, losses[:0]
        return n_steps, losses

    monkeypatch.setattr(rnn_learner.RNNLearner, "sgd_chunk", third_epoch_blows_up)
    res = train.run(RunSpec.model_validate(SPEC), seed=4, lr=1.0, checkpoints=[24])
    assert res.status == "diverged" and res.diverged_step == 2 * 24 + 1
    (row,) = res.rows  # scored at its best epoch, before the blow-up
    assert row["epochs"] == 2 and 0 <= row["best_epoch"] <= 2
    assert np.isfinite(row["test_nmse"]) and np.isfinite(row["val_nmse"])
