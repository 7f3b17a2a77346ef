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
    """A real sweep: the ntk and random_features kernels and an SGD rnn (m = 8) on AZL,
    L in {3, 4}, n up to 64, 2 seeds."""
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
    assert set(kinds) == {"ntk", "random_features", "rnn"}
    sgd = th[th["model.kind"] == "rnn"]
    assert (sgd["note"].str.contains("SGD learner")).all() and sgd["pred"].isna().all()
    pred = th[th["note"] == ""]
    # one chosen ridge per (cell, seed, n): the ridge the run chose there
    chosen = pred[pred["chosen"]]
    assert chosen.groupby(["cell", "seed", "n"]).size().eq(1).all()
    kernel_rows = results[results["model.kind"] != "rnn"]
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
    rows = [ln for ln in section.splitlines() if ln.startswith("| ntk") or
            ln.startswith("| random_features") or ln.startswith("| rnn")]
    assert len(rows) == 6
    assert all("none: SGD learner" in ln for ln in rows if ln.startswith("| rnn"))
    assert "measured / predicted" in section


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
