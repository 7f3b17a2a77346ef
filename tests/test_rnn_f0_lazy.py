"""The RNN learner's initial-function options (f0), eps_x rules, lam scaling and the laziness
diagnostics (issue 14, items 2, 3 and 5)."""

import math

import numpy as np
import numpy.testing as npt
import pytest
from pydantic import ValidationError

from pacsim import concepts, train
from pacsim.config import RunSpec
from pacsim.learners import LearnerError, _lazy, _scale
from pacsim.learners import rnn as rnn_learner
from pacsim.models import rnn, rnn_sym


def _concept(family="azl", L=5, d_x=4, seed=0):  # noqa: N803
    cfg = concepts.FAMILIES[family].Config(L=L, d_x=d_x)
    return concepts.make(cfg, np.random.default_rng(seed))


def _learner(concept, seed=1, **cfg):
    return rnn_learner.make(rnn_learner.Config(**cfg), concept, np.random.default_rng(seed))


# eps_x rules


@pytest.mark.parametrize(("rule", "L", "value"), [
    ("1/sqrt(L)", 16, 0.25), ("0.5 / sqrt(L)", 4, 0.25), ("0.3*L^-0.5", 9, 0.1),
    ("L^-1", 8, 0.125), ("2*L^-1", 8, 0.25),
])  # fmt: skip
def test_eps_x_rules_resolve_against_L(rule, L, value):  # noqa: N803
    assert _scale.resolve(rule, L) == pytest.approx(value, rel=1e-15)  # one pow: rounding only


@pytest.mark.parametrize("bad", ["sqrt(L)", "0.1", "-1/sqrt(L)", "L**2", "0*L^1", "1/sqrt(n)"])
def test_eps_x_rejects_other_strings_naming_the_allowed_forms(bad):
    with pytest.raises(ValidationError, match="allowed: a number in"):
        rnn_learner.Config(eps_x=bad)


def test_eps_x_rule_is_resolved_recorded_and_checked_at_the_concept_L():
    c = _concept(L=9)
    info = _learner(c, m=16, eps_x="1/sqrt(L)").info()
    assert info["token_scale"] == pytest.approx(1 / 3, rel=1e-15)
    assert info["eps_x_rule"] == "1/sqrt(L)"
    assert _learner(c, m=16).info()["eps_x_rule"] == "fixed"
    X = c.sample(3, np.random.default_rng(0))[0]
    enc = _learner(c, m=16, eps_x="1/sqrt(L)").encode(X)
    npt.assert_array_equal(enc, _learner(c, m=16, eps_x=1 / 3).encode(X))
    with pytest.raises(LearnerError, match=r"model.eps_x = '4\*L\^-0.5' gives 1.333 at L = 9"):
        rnn_learner.check_concept(rnn_learner.Config(eps_x="4*L^-0.5"),
                                  concepts.FAMILIES["azl"].Config(L=9, d_x=4))
    rnn_learner.check_concept(rnn_learner.Config(eps_x="3*L^-0.5"),  # 0.866: allowed
                              concepts.FAMILIES["azl"].Config(L=12, d_x=4))


# lam: the step size in NTK units scales as 1/lam^2


@pytest.mark.parametrize("cell", ["relu", "tanh"])  # closed-form and measured trace
def test_ntk_step_size_scales_eta_by_one_over_lam_squared(cell):
    c = _concept()
    a = _learner(c, m=16, cell=cell, lam=1.0)
    b = _learner(c, m=16, cell=cell, lam=0.1)
    # T is lam^2 times a lam-free sum (closed form) or sum of squared gradients that are
    # lam times those at lam = 1 (measured): equal up to rounding of a few products
    assert b.step_size(1.0, "ntk") == pytest.approx(100.0 * a.step_size(1.0, "ntk"), rel=1e-12)
    assert b.step_size(1.0, "raw") == a.step_size(1.0, "raw") == 1.0


# f0 = "subtract"


def test_subtract_is_keep_on_the_centred_labels():
    """f - f0 trained on y has the gradients (and SGD path) of f trained on y + f0."""
    c = _concept()
    X, Y = c.sample(12, np.random.default_rng(5))
    keep = _learner(c, m=24, f0="keep")
    sub = _learner(c, m=24, f0="subtract")
    inputs = keep.encode(X)
    npt.assert_array_equal(sub.predict(inputs), 0.0)  # f - f0 at init: exactly zero
    f0 = rnn.forward(keep.params, inputs, 1.0)  # batched BLAS, not the learner's kernel
    pos = c.positions
    # per-sample kernel against BLAS: sums of m = 24 products of O(1): rounding ~1e-15
    npt.assert_allclose(rnn_sym.outputs(keep.params, inputs, 1.0, pos)[:, pos], f0[:, pos],
                        rtol=0, atol=1e-13)
    lk, gk = keep.batch_grad(inputs, Y + f0)
    ls, gs = sub.batch_grad(inputs, Y)
    # the two f0 differ by rounding only (above): so do the residuals, losses and gradients
    assert ls == pytest.approx(lk, rel=1e-12)
    for a, b in zip(gs, gk, strict=True):
        npt.assert_allclose(a, b, rtol=0, atol=1e-12 * np.abs(b).max())
    eta = keep.step_size(0.5, "ntk")
    keep.sgd_chunk(inputs, Y + f0, eta, None)
    sub.sgd_chunk(inputs, Y, eta, None)
    npt.assert_allclose(sub.params.W, keep.params.W, rtol=0, atol=1e-13)  # 12 steps, as above
    npt.assert_allclose(sub.predict(inputs), keep.predict(inputs) - f0[:, pos], rtol=0,
                        atol=1e-12)
    assert sub.info()["f0"] == "subtract" and sub.info()["ntk_trace"] == keep.info()["ntk_trace"]


# f0 = "symmetric"


@pytest.mark.parametrize("cell", ["relu", "tanh", "minimal"])
def test_symmetric_output_is_exactly_zero_at_init_with_one_copys_ntk(cell):
    c = _concept()
    X, _ = c.sample(6, np.random.default_rng(5))
    sym = _learner(c, m=16, cell=cell, f0="symmetric")
    one = _learner(c, m=16, cell=cell, f0="keep")
    inputs = sym.encode(X)
    assert np.all(sym.predict(inputs) == 0.0)
    assert sym.info()["ntk_trace"] == one.info()["ntk_trace"]
    # the model's kernel from its gradients: residual e_j at one position (f = 0, Y = -e_j)
    j = int(c.positions[-1])

    def grads(learner, k):
        Y = np.zeros((1, c.L, 1))
        Y[0, j, 0] = -1.0
        if learner.params2 is None:  # plain network: residual f - Y = f + e_j, shift it away
            Y = Y + rnn.forward(learner.params, inputs[k : k + 1], 1.0)
        _, g = learner.batch_grad(inputs[k : k + 1], Y)
        return np.concatenate([a.ravel() for a in g])

    Js = np.stack([grads(sym, k) for k in range(len(X))])
    J1 = np.stack([grads(one, k) for k in range(len(X))])
    # sums of ~m^2 products of O(1/m) terms: rounding ~1e-15 relative to the entries
    npt.assert_allclose(Js @ Js.T, J1 @ J1.T, rtol=1e-10, atol=1e-12 * np.abs(J1 @ J1.T).max())


def _model_loss(p1, p2, x, y, lam, pos):
    f = rnn_sym.forward(p1, p2, x, lam)
    return 0.5 * float(np.sum((f[0, pos] - y[0, pos]) ** 2))


@pytest.mark.parametrize(("cell", "trained"), [("relu", ("W",)), ("relu", ("W", "A", "B")),
                                               ("tanh", ("W", "A")), ("minimal", ("W", "B"))])
def test_symmetric_sgd_step_matches_finite_differences(cell, trained):
    """One jitted step of each copy is -eta times the central finite difference of the
    symmetric model's loss 0.5 ||(f1 - f2)/sqrt(2) - y||^2 (copies made unequal first)."""
    rng = np.random.default_rng(3)
    m, L, d_in, d, lam, eta = 12, 5, 3, 2, 0.7, 1e-3  # noqa: N806
    p1 = rnn.init_params(m, d_in, d, rng, cell=cell, mode="plain")
    p2 = p1.copy()
    for a in (p2.W, p2.A, p2.B):
        a += 0.05 * rng.standard_normal(a.shape) / math.sqrt(m)
    x = rng.standard_normal((1, L, d_in))
    y = rng.standard_normal((1, L, d))
    pos = [2, 4]
    before = (p1.copy(), p2.copy())
    n, losses = rnn_sym.sgd_chunk(p1, p2, x, y, eta, lam, pos, trained=trained)
    assert n == 1
    assert losses[0] == pytest.approx(_model_loss(*before, x, y, lam, pos), rel=1e-12)
    h = 1e-6
    for which, (q1, q2) in enumerate([before, before]):
        after = (p1, p2)[which]
        for name in trained:
            q = (q1, q2)[which]
            M = getattr(q, name)  # noqa: N806
            for idx in [(0, 0), (1, 2), tuple(s - 1 for s in M.shape)]:
                old = M[idx]
                M[idx] = old + h
                up = _model_loss(q1, q2, x, y, lam, pos)
                M[idx] = old - h
                down = _model_loss(q1, q2, x, y, lam, pos)
                M[idx] = old
                fd = (up - down) / (2 * h)
                step = (getattr(after, name)[idx] - old) / -eta
                # central difference: O(h^2) truncation plus ~1e-16/h rounding, ~1e-10 absolute
                assert step == pytest.approx(fd, rel=1e-5, abs=1e-8), (which, name, idx)


def test_symmetric_chunk_matches_the_numpy_twin_over_several_steps():
    """The jitted chunk against per-sample steps with rnn_sym.loss_and_grad (BLAS forward)."""
    rng = np.random.default_rng(4)
    p1 = rnn.init_params(10, 3, 1, rng, cell="relu", mode="plain")
    p2 = p1.copy()
    X = rng.standard_normal((6, 4, 3))
    Y = rng.standard_normal((6, 4, 1))
    q1, q2 = p1.copy(), p2.copy()
    eta, pos = 0.05, [2, 3]
    order = np.array([0, 3, 5, 1, 1, 2])
    rnn_sym.sgd_chunk(p1, p2, X, Y, eta, 1.0, pos, order, trained=("W", "B"))
    for k in order:
        _, g1, g2 = rnn_sym.loss_and_grad(q1, q2, X[k : k + 1], Y[k : k + 1], 1.0, pos,
                                          trained=("W", "B"))
        for q, g in ((q1, g1), (q2, g2)):
            q.W[...] -= eta * g.W
            q.B[...] -= eta * g.B
    for a, b in ((p1.W, q1.W), (p2.W, q2.W), (p1.B, q1.B), (p2.B, q2.B)):
        # six steps of O(1) sums in different orders: rounding ~1e-15
        npt.assert_allclose(a, b, rtol=0, atol=1e-12)


# laziness


@pytest.mark.parametrize("cell", ["relu", "tanh"])
@pytest.mark.parametrize("trained", [("W",), ("W", "A"), ("A", "B"), ("W", "A", "B")])
@pytest.mark.parametrize("K", [7, 3])
def test_batched_probe_kernel_and_trace_match_the_slow_forms(cell, trained, K):  # noqa: N803
    """_lazy.rnn_tangent (batched BLAS) against per-input gradients from rnn.loss_and_grad
    (kernel), pacsim.kernels.entk (ReLU, full BPTT) and rnn.empirical_ntk_trace (trace)."""
    from pacsim.kernels import entk

    rng = np.random.default_rng(0)
    p = rnn.init_params(12, 3, 2, rng, cell=cell, mode="plain")
    X = rng.standard_normal((5, 7, 3))
    pos, lam = [2, 4, 6], 0.7
    signs, gram, trace = _lazy.rnn_tangent(p, X, pos, lam, trained, K, 3)
    slow = _lazy.rnn_gram(p, X, pos, lam, trained, K)
    if cell == "relu" and K == 7:
        slow = entk.rnn(p, X, positions=pos, lam=lam, train=trained, blocks="sum")
    # sums of O(L^2 m) products of O(1): rounding ~1e-15 relative (measured <= 1e-14)
    npt.assert_allclose(gram, slow, rtol=1e-11, atol=1e-11 * np.abs(slow).max())
    assert trace == pytest.approx(rnn.empirical_ntk_trace(p, X[:3], pos, lam, trained=trained,
                                                          K=K), rel=1e-11)
    assert (signs is None) == (cell == "tanh")


@pytest.mark.parametrize(("cell", "f0"), [("relu", "keep"), ("relu", "subtract"),
                                          ("relu", "symmetric"), ("tanh", "keep"),
                                          ("minimal", "symmetric")])
def test_laziness_is_zero_with_a_zero_step(cell, f0):
    c = _concept()
    X, Y = c.sample(20, np.random.default_rng(5))
    learner = _learner(c, m=16, cell=cell, f0=f0)
    at_init = learner.laziness()
    assert at_init["ntk_align"] == pytest.approx(1.0, rel=1e-14)  # <K,K>/||K||^2: rounding
    learner.sgd_chunk(learner.encode(X), Y, 0.0, None)
    lazy = learner.laziness()
    assert lazy["move_W"] == 0.0
    assert lazy["ntk_align"] == pytest.approx(1.0, rel=1e-14)
    assert lazy["ntk_align_c"] == pytest.approx(1.0, rel=1e-12)  # centring: a few more sums
    assert lazy["trace"] == lazy["trace0"] > 0
    if cell == "relu":
        assert lazy["sign_flip"] == 0.0
    else:
        assert math.isnan(lazy["sign_flip"])  # no ReLU in the tanh and minimal cells
    learner.sgd_chunk(learner.encode(X), Y, learner.step_size(1.0, "ntk"), None)
    moved = learner.laziness()
    assert moved["move_W"] > 0 and moved["ntk_align"] < 1.0


def test_laziness_probe_set_leaves_the_weights_alone():
    """The probe inputs come from the trace probe's generator: the weights are those of a
    learner built without them (same init stream)."""
    c = _concept()
    a = _learner(c, m=16)
    p = rnn.init_params(16, c.d_x + 1, 1, np.random.default_rng(1))
    npt.assert_array_equal(a.params.W, p.W)
    assert a.probe.shape == (rnn_learner.N_PROBE_LAZY, c.L, c.d_x + 1)


def test_movement_shrinks_with_width_as_the_kernel_regime_predicts():
    """Fixed data and steps, lr in NTK units, f0 subtracted (the same residual -y at every m).

    ||grad_W f||_F^2 = T grows like m and eta = lr/T, so a step moves W by ~ 1/sqrt(m) in
    Frobenius norm, and A (m x d_in) alike. ||W0||_F ~ sqrt(2 m) (m^2 entries of variance 2/m)
    but ||A0||_F ~ sqrt(2 d_in) (m d_in entries of variance 2/m): the relative movement of
    the recurrent matrix falls like 1/m, that of the input matrix like 1/sqrt(m) (the
    operator norm of W0 is O(1), so ||W - W0||_op / ||W0||_op also falls like 1/sqrt(m)).
    Measured slopes over m in {64, 256, 1024}, 4 seeds each: W -0.97 (-0.88..-1.0 per seed),
    A -0.46 (-0.41..-0.49 per seed); the bands below are +-0.2 around the prediction.
    """
    c = _concept("pg21", L=5, d_x=4)
    X, Y = c.sample(64, np.random.default_rng(2))
    widths = [64, 256, 1024]
    moves = []
    for m in widths:
        per_seed = []
        for seed in (0, 1):
            learner = _learner(c, seed=seed, m=m, mode="pg21", f0="subtract")
            learner.sgd_chunk(learner.encode(X), Y, learner.step_size(0.5, "ntk"), None)
            per_seed.append([_lazy.rel_move([getattr(learner.params, n)],
                                            [getattr(learner.params0, n)]) for n in "WA"])
        moves.append(np.mean(per_seed, axis=0))
    slopes = np.polyfit(np.log(widths), np.log(np.array(moves)), 1)[0]
    assert -1.2 < slopes[0] < -0.8, slopes  # W: 1/m
    assert -0.7 < slopes[1] < -0.3, slopes  # A: 1/sqrt(m)


def test_every_sgd_row_records_the_lazy_columns():
    raw = {"concept": {"L": 4, "d_x": 3}, "model": {"m": 8, "f0": "symmetric"},
           "train": {"n_test": 30}}
    res = train.run(RunSpec.model_validate(raw), seed=0, lr=0.5, checkpoints=[4, 32])
    assert res.status == "ok" and len(res.rows) == 2
    for row in res.rows:
        assert {"lazy.move_W", "lazy.sign_flip", "lazy.ntk_align", "lazy.ntk_align_c",
                "lazy.trace", "lazy.trace0"} <= set(row)
    assert 0 < res.rows[0]["lazy.move_W"] < res.rows[1]["lazy.move_W"]
    assert res.info["learner_info.f0"] == "symmetric"
    kernel = {"concept": {"L": 4, "d_x": 3}, "model": {"kind": "rntk"}, "train": {"n_test": 30}}
    rows = train.run(RunSpec.model_validate(kernel), seed=0, lr=0.5, checkpoints=[8]).rows
    assert not any(k.startswith("lazy.") for k in rows[0])  # closed-form fits: no SGD path


@pytest.mark.parametrize("family", ["azl", "pg21"])
def test_link_argument_at_the_data_scale_matches_monte_carlo(family):
    """concept_info.link_arg_rms = a sqrt(E <w, x>^2) (closed form) against 100k draws."""
    c = concepts.make(concepts.FAMILIES[family].Config(L=6, d_x=8, scale=3.0, p=2),
                      np.random.default_rng(0))
    info = c.info()
    assert info["link_scale"] == 3.0
    X, _ = c.sample(100_000, np.random.default_rng(1))
    if family == "azl":
        Z = np.stack([X[:, i] @ c.w[k].reshape(-1, c.d_x).T for k, (_, i) in enumerate(c.pairs)])
    else:
        Z = np.einsum("nik,rsik->nrs", X[:, 1:-1], c.w)
    mc = 3.0 * math.sqrt(float(np.mean(Z**2)))
    # mean of 1e5 squares of O(1) terms: relative standard error ~ sqrt(2/1e5) / 2 ~ 0.2%
    assert info["link_arg_rms"] == pytest.approx(mc, rel=1e-2)


def test_plot_draws_the_laziness_of_a_chosen_cell(tmp_path):
    """A tiny sweep with two step sizes and an eps_x rule, then `pacsim plot --cell 1`."""
    import textwrap

    import pandas as pd
    from click.testing import CliRunner

    from pacsim.cli import main

    cfg = tmp_path / "lazy.toml"
    cfg.write_text(textwrap.dedent("""
        name = "lazy"
        seeds = [0, 1]
        [base.concept]
        d_x = 3
        [base.model]
        m = 8
        eps_x = "1/sqrt(L)"
        f0 = "subtract"
        [base.train]
        n_test = 40
        lr = [0.5, 1.0]
        [grid]
        "concept.L" = [3, 4]
        [target]
        eps = 0.9
        n_min = 8
        n_max = 64
        n_boot = 100
        """))
    run = CliRunner().invoke(main, ["sweep", str(cfg), "--out", str(tmp_path / "runs"),
                                    "--workers", "1", "--no-progress"], catch_exceptions=False)
    assert run.exit_code == 0, run.output
    run_dir = tmp_path / "runs" / "lazy"
    res = pd.read_parquet(run_dir / "results.parquet")
    assert res["lazy.move_W"].notna().all() and (res["lazy.ntk_align"] <= 1 + 1e-12).all()
    assert set(res["learner_info.token_scale"].round(12)) == {round(3**-0.5, 12), 0.5}
    r = CliRunner().invoke(main, ["plot", str(run_dir), "--cell", "1"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert (run_dir / "figures" / "laziness_cell1.png").stat().st_size > 1000
    r = CliRunner().invoke(main, ["plot", str(run_dir), "--cell", "7"])
    assert r.exit_code != 0 and "cell = 7 is not in the results; allowed: 0, 1" in r.output


@pytest.mark.parametrize("kind", ["rntk", "entk", "random_features"])
def test_rnn_view_kernels_resolve_the_eps_x_rule_as_the_rnn_learner(kind):
    """The recurrent kernels see the inputs the RNN sees, rule included, and refuse the same
    out-of-range rules when the config is read."""
    from pacsim import learners

    c = _concept(L=9)
    X = c.sample(4, np.random.default_rng(0))[0]
    cfg = learners.LEARNERS[kind].Config(eps_x="1/sqrt(L)")
    k = learners.make(cfg, c, np.random.default_rng(1))
    npt.assert_array_equal(k.encode(X), _learner(c, m=8, eps_x="1/sqrt(L)").encode(X))
    with pytest.raises(LearnerError, match=r"model.eps_x = '4\*L\^-0.5' gives 1.333 at L = 9"):
        learners.check_concept(learners.LEARNERS[kind].Config(eps_x="4*L^-0.5"),
                               concepts.FAMILIES["azl"].Config(L=9, d_x=4))


@pytest.mark.parametrize("model", [{"kind": "rnn", "m": 16}, {"kind": "mlp2", "m": 16}])
@pytest.mark.parametrize("f0", ["subtract", "symmetric"])
def test_momentum_optimiser_trains_every_f0(model, f0):
    """The mini-batch optimiser steps every array of trained() with batch_grad's gradients
    (both copies for the symmetric model) and lowers the training loss."""
    raw = {"concept": {"L": 4, "d_x": 3}, "model": {**model, "f0": f0},
           "train": {"n_test": 30, "protocol": "finite", "optimizer": "momentum",
                     "epochs": 6, "batch": 8}}
    spec = RunSpec.model_validate(raw)
    res = train.run(spec, seed=0, lr=0.05, checkpoints=[64])
    assert res.status == "ok" and len(res.rows) == 1
    row = res.rows[0]
    assert row["lazy.move_W"] > 0 and np.isfinite(row["test_nmse"])
    start = train.run(spec, seed=0, lr=0.0, checkpoints=[64]).rows[0]
    assert start["lazy.move_W"] == 0.0
    assert row["train_loss"] < start["train_loss"]


def test_centred_alignment_ignores_a_constant_part_the_plain_one_does_not():
    rng = np.random.default_rng(0)
    G = rng.standard_normal((6, 6))
    K0, K = G @ G.T, (G + 0.5 * rng.standard_normal((6, 6))) @ (G.T + 0)
    K = K + K.T
    big = 1e3 * np.ones((6, 6))  # a constant part common to every pair of inputs
    c = _lazy.centred_alignment(K0, K)
    # the centring removes the constant exactly up to rounding of O(1e3) entries: ~1e-12
    assert _lazy.centred_alignment(K0 + big, K + big) == pytest.approx(c, abs=1e-9)
    assert _lazy.alignment(K0 + big, K + big) > 0.999 > c
    assert _lazy.alignment(K0, 3.0 * K0) == pytest.approx(1.0, rel=1e-15)  # scale-free
