"""``pacsim theory RUN_DIR`` end to end on a tiny real sweep, then ``plot`` and ``report``."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from pacsim import plots
from pacsim.cli import main
from pacsim.figures import make_figures
from pacsim.rundir import load_analysis
from pacsim.theory import run as theory_run
from pacsim.theory import summary


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A real sweep: the ntk and random_features kernels and the SGD rnn and mlp2 (m = 8,
    online) on AZL, L in {3, 4}, n up to 64, 2 seeds."""
    import tomllib

    from pacsim.config import parse_sweep
    from pacsim.sweep import run_sweep

    cfg = parse_sweep(tomllib.loads(textwrap.dedent("""
        name = "tiny-theory"
        seeds = [0, 1]
        [base.concept]
        d_x = 3
        [base.model]
        m = 8
        [base.train]
        n_test = 200
        [[grid.model]]
        kind = "ntk"
        [[grid.model]]
        kind = "random_features"
        [[grid.model]]
        kind = "rnn"
        [[grid.model]]
        kind = "mlp2"
        [grid]
        "concept.L" = [3, 4]
        [target]
        eps = 0.9
        n_min = 8
        n_max = 64
        n_boot = 100
        """)))
    out = tmp_path_factory.mktemp("runs")
    run_sweep(cfg, out=out, workers=1, progress=False)
    return out / "tiny-theory"


def test_theory_command_writes_predictions(folder):
    r = CliRunner().invoke(main, ["theory", str(folder), "--seeds", "2", "--m-max", "256"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert r.output.strip().splitlines()[-1] == str(folder / "theory.parquet")
    th = pd.read_parquet(folder / "theory.parquet")
    results = pd.read_parquet(folder / "results.parquet")
    kinds = th.groupby("cell")["model.kind"].first()
    assert set(kinds) == {"ntk", "random_features", "rnn", "mlp2"}
    sgd = th[th["model.kind"].isin(["rnn", "mlp2"])]
    assert (sgd["source"] == "oracle").all() and (th.loc[~th.index.isin(sgd.index), "source"]
                                                 == "krr").all()
    _check_online_oracle_rows(sgd, results)
    pred = th[(th["note"] == "") & (th["source"] == "krr")]
    # one chosen ridge per (cell, seed, n): the ridge the run chose there
    chosen = pred[pred["chosen"]]
    assert chosen.groupby(["cell", "seed", "n"]).size().eq(1).all()
    kernel_rows = results[~results["model.kind"].isin(["rnn", "mlp2"])]
    merged = chosen.merge(kernel_rows[["cell", "seed", "n", "fit.ridge"]],
                          on=["cell", "seed", "n"])
    assert len(merged) == len(chosen) and np.allclose(merged["ridge"], merged["fit.ridge"])
    # the prediction is the geometric mean of the in-sample and held-out estimates (which
    # bracket the truth in expectation, either may be the larger in one draw); M = 256
    # or 128 (stopped once tight) reach n <= 64, all of this sweep
    lo, hi = np.minimum(pred["lo"], pred["hi"]), np.maximum(pred["lo"], pred["hi"])
    assert (lo <= pred["pred"] * (1 + 1e-12)).all() and (pred["pred"] <= hi * (1 + 1e-12)).all()
    assert pred["pred"].notna().all() and pred["M"].isin([128, 256]).all()
    # measured and predicted agree roughly where the error is large (the tests of
    # pacsim.theory check the theory itself; here: the right cells, n, ridges and normalisation)
    curves = summary.theory_curves(th)
    med = kernel_rows.groupby(["cell", "n"])["test_nmse"].median().rename("measured")
    both = curves.merge(med.reset_index(), on=["cell", "n"])
    assert (both["basis"] == "chosen ridge").all()
    big = both[both["measured"] > 0.2]
    assert len(big) >= 4
    assert (np.abs(np.log(big["pred"] / big["measured"])) < np.log(2.0)).all(), big


def test_plot_and_report_show_the_theory(folder):
    if not (folder / "theory.parquet").is_file():
        CliRunner().invoke(main, ["theory", str(folder), "--m-max", "256"],
                           catch_exceptions=False)
    th = summary.read_theory(folder)
    _, a = load_analysis(folder)
    figs = make_figures(a, th)
    ax = figs["test_error_vs_N"].axes[0]
    assert any(t.get_text() == plots.THEORY_LABEL for t in ax.get_legend().get_texts())
    dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--" and len(ln.get_xdata())]
    assert len(dashed) >= 2 + 1  # one predicted curve per cell (L = 3, 4), and eps
    texts = [t.get_text() for t in figs["n_eps_vs_L"].axes[0].get_legend().get_texts()]
    assert plots.THEORY_LABEL in texts
    r = CliRunner().invoke(main, ["report", str(folder)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    text = (folder / "report.md").read_text()
    section = text.split("## Theory vs measurement")[1].split("\n## ")[0]
    rows = [ln for ln in section.splitlines()
            if ln.startswith(("| ntk", "| random_features", "| rnn", "| mlp2"))]
    assert len(rows) == 8
    # the SGD cells are predicted by their oracle (online SGD in expectation), not skipped
    sgd_rows = [ln for ln in rows if ln.startswith(("| rnn", "| mlp2"))]
    assert len(sgd_rows) == 4
    assert all(summary.ORACLE_BASIS["online"] in ln and "none:" not in ln for ln in sgd_rows)
    assert "measured / predicted" in section and "linearised" in section


def _check_online_oracle_rows(sgd: pd.DataFrame, results: pd.DataFrame) -> None:
    """One oracle row per (cell, seed, evaluated n), at the step size the run chose there
    (its raw eta), with steps = n (online), M = 128 (the smallest power of two >= 2 max(n)),
    and the prediction between its in-sample and held-out estimates."""
    chosen = results[results["lr_chosen"] & results["model.kind"].isin(["rnn", "mlp2"])]
    merged = sgd.merge(chosen[["cell", "seed", "n", "eta", "lr_selected"]],
                       on=["cell", "seed", "n"], how="outer", indicator=True)
    assert (merged["_merge"] == "both").all()
    assert sgd.groupby(["cell", "seed", "n"]).size().eq(1).all()
    np.testing.assert_array_equal(merged["oracle.eta"], merged["eta"])
    np.testing.assert_array_equal(merged["oracle.lr"], merged["lr_selected"])
    assert (sgd["oracle.steps"] == sgd["n"]).all() and (sgd["oracle.protocol"] == "online").all()
    assert (sgd["M"] == 128).all() and sgd["pred"].notna().all() and sgd["chosen"].all()
    lo, hi = np.minimum(sgd["lo"], sgd["hi"]), np.maximum(sgd["lo"], sgd["hi"])
    assert (lo <= sgd["pred"] * (1 + 1e-12)).all() and (sgd["pred"] <= hi * (1 + 1e-12)).all()


def test_online_oracle_row_is_the_oracle_of_the_runs_network(folder):
    """An oracle row recomputed from the public functions: the run's concept and network
    (rebuilt from its seed streams), M = 128 fresh samples of the oracle's stream, the run's
    test set, oracle.rnn_kernel and oracle.online_expected; the row's held-out estimate is
    that oracle's test_nmse (to 1e-9: the same operations in another order)."""
    from pacsim import concepts, learners
    from pacsim.concepts import scored
    from pacsim.config import parse_sweep
    from pacsim.models import rnn
    from pacsim.seeding import streams
    from pacsim.theory import oracle, oracle_run

    th = theory_run.predict_run(folder, seeds=1, M_max=256, M0=128)
    results = pd.read_parquet(folder / "results.parquet")
    import json

    cfg = parse_sweep(json.loads((folder / "sweep.json").read_text()))
    cell = int(results.loc[(results["model.kind"] == "rnn") & (results["concept.L"] == 4),
                           "cell"].iloc[0])
    spec = cfg.cells()[cell][1]
    row = th[(th["cell"] == cell) & (th["seed"] == 0) & (th["n"] == 32)].iloc[0]
    s = streams(0)
    concept = concepts.make(spec.concept, s.concept)
    learner = learners.make(spec.model, concept, s.init)
    Xt, Yt = concept.sample(spec.train.n_test, s.eval)
    rng = np.random.default_rng(np.random.SeedSequence(0, spawn_key=oracle_run.STREAM))
    X, Y = concept.sample(128, rng)
    A, At = learner.encode(X), learner.encode(Xt)
    p, pos = learner.params0, learner.positions
    o = oracle.online_expected(
        oracle.rnn_kernel(p, A, None, pos), oracle.rnn_kernel(p, At, A, pos),
        rnn.forward(p, A)[:, pos].reshape(128, -1), rnn.forward(p, At)[:, pos].reshape(len(At), -1),
        scored(concept, Y).reshape(128, -1), row["oracle.eta"], [32])
    T = scored(concept, Yt).reshape(len(Yt), -1)
    held = (np.mean((o.test[0] - T) ** 2) + o.var[0]) / np.mean(np.var(T, axis=0))
    assert row["hi"] == pytest.approx(held, rel=1e-9)
    assert len(At) == row["oracle.n_test"] == 200


@pytest.fixture(scope="module")
def finite_folder(tmp_path_factory):
    """A real sweep with the finite protocol and early stopping: a wide mlp2 (m = 1024, NTK
    scaling: lazy), a narrow rnn with f0 = "symmetric", and a tanh rnn (no oracle), on AZL
    L = 3, lr = 0.5 in NTK units, 8 epochs (patience 2), N from 8 to 32, 2 seeds."""
    import tomllib

    from pacsim.config import parse_sweep
    from pacsim.sweep import run_sweep

    cfg = parse_sweep(tomllib.loads(textwrap.dedent("""
        name = "tiny-oracle"
        seeds = [0, 1]
        [base.concept]
        d_x = 3
        L = 3
        [base.train]
        n_test = 200
        protocol = "finite"
        epochs = 8
        patience = 2
        lr = 0.5
        [[grid.model]]
        kind = "mlp2"
        m = 1024
        init = "experiment"
        [[grid.model]]
        kind = "rnn"
        m = 16
        f0 = "symmetric"
        [[grid.model]]
        kind = "rnn"
        m = 16
        cell = "tanh"
        [target]
        eps = 0.5
        n_min = 8
        n_max = 32
        n_boot = 100
        """)))
    out = tmp_path_factory.mktemp("runs")
    run_sweep(cfg, out=out, workers=1, progress=False)
    return out / "tiny-oracle"


def test_finite_oracle_replays_the_runs_sgd(finite_folder):
    """Finite protocol: the oracle replays the run's SGD (its samples, its permutations, its
    step, up to its best epoch) on the linearised network. The wide mlp2 is lazy, so its
    measured test_nmse is within 10% of the oracle's at every seed and N (measured: within
    4%; the remainder is the network's departure from its linearisation); any slip in the
    samples, order, step, steps or normalisation would be far outside that. The tanh rnn has
    no oracle (a note says why); a cap below N skips those N with a note."""
    th = theory_run.predict_run(finite_folder, seeds=2, M_max=256, M0=128)
    results = pd.read_parquet(finite_folder / "results.parquet")
    sgd = th[th["source"] == "oracle"]
    tanh = sgd[sgd["note"].str.contains("ReLU", na=False)]
    assert len(tanh) == 1 and tanh["pred"].isna().all()
    rows = sgd[sgd["note"] == ""]
    assert (rows["oracle.protocol"] == "finite").all() and (rows["M"] == rows["n"]).all()
    runs = results[results["lr_chosen"]]
    m = rows.merge(runs[["cell", "seed", "n", "test_nmse", "best_epoch", "eta"]],
                   on=["cell", "seed", "n"])
    assert len(m) == len(rows) > 0
    np.testing.assert_array_equal(m["oracle.steps"], m["best_epoch"] * m["n"])
    assert (m["best_epoch"] < 8).any()  # early stopping happened somewhere
    wide = m[m["model.kind"] == "mlp2"]
    assert len(wide) >= 6
    assert (np.abs(np.log(wide["pred"] / wide["test_nmse"])) < np.log(1.1)).all(), wide
    narrow = m[m["model.kind"] == "rnn"]
    assert len(narrow) and np.isfinite(narrow["pred"]).all()
    capped = theory_run.predict_run(finite_folder, seeds=1, oracle_max=15)
    over = capped[(capped["source"] == "oracle") & (capped["n"] > 15)]
    assert len(over) and over["note"].str.contains("--oracle-max").all()
    assert over["pred"].isna().all()


def test_theory_needs_a_run_folder(tmp_path):
    r = CliRunner().invoke(main, ["theory", str(tmp_path)])
    assert r.exit_code == 1 and "no results.parquet" in r.output


def test_kernel_of_refuses_joint_kernels():
    from pacsim import concepts, learners
    from pacsim.concepts import azl
    from pacsim.learners import rntk

    concept = concepts.make(azl.Config(L=4, d_x=3), np.random.default_rng(0))
    learner = learners.make(rntk.Config(blocks="full"), concept, np.random.default_rng(0))
    with pytest.raises(theory_run.NoTheory, match="joint kernel"):
        theory_run.kernel_of(learner)


@pytest.mark.parametrize("kind, extra", [
    ("ntk", {"depth": 2}),
    ("nngp", {}),
    ("poly", {"degree": 3}),
    ("gaussian", {"bandwidths": [1.0]}),
    ("linear", {"degree": 2}),
    ("rntk", {}),
    ("entk", {"net": "rnn", "m": 16}),
    ("entk", {"net": "mlp2", "m": 32}),
    ("random_features", {"net": "rnn", "m": 16}),
    ("random_features", {"net": "mlp3", "m": 32}),
])
def test_kernel_of_is_the_kernel_the_learner_fits(kind, extra):
    """KRR with the kernel the theory decomposes and pacsim's relative ridge gives exactly the
    learner's own predictions (one ridge on the grid, so no selection): the spectra, ridges
    and outputs the theory uses are those of the fit it predicts. Tolerance: two Cholesky or
    least-squares solves of 30 x 30 systems, ~1e-12 relative; 1e-8 leaves room for
    conditioning."""
    from pacsim import concepts, learners
    from pacsim.concepts import azl, scored
    from pacsim.kernels import krr

    concept = concepts.make(azl.Config(L=4, d_x=3), np.random.default_rng(0))
    cfg = learners.LEARNERS[kind].Config(kind=kind, ridges=[1e-3], **extra)
    learner = learners.make(cfg, concept, np.random.default_rng(1))
    X, Y = concept.sample(50, np.random.default_rng(2))
    inputs = learner.encode(X)
    tr, te = inputs[:30], inputs[30:]
    learner.fit(tr, Y[:30], np.random.default_rng(3))
    k = theory_run.kernel_of(learner)
    K, Kt = k(tr), k(te, tr)
    T = scored(concept, Y[:30]).reshape(30, -1)
    if K.ndim == 2:
        pred = Kt @ krr.solve(K, T, 1e-3)[0]
    else:
        pred = np.stack([Kt[:, :, c] @ krr.solve(K[:, :, c], T[:, c], 1e-3)[0]
                         for c in range(T.shape[1])], axis=1)
    own = learner.predict(te).reshape(len(te), -1)
    np.testing.assert_allclose(pred, own, rtol=1e-8, atol=1e-8 * np.abs(own).max())
