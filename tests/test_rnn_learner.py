"""The ``rnn`` learner: every mode, cell, init and BPTT option from a config, through a run."""

import itertools

import numpy as np
import numpy.testing as npt
import pytest

from pacsim import concepts, learners, train
from pacsim.config import RunSpec, parse_sweep
from pacsim.errors import ConfigError
from pacsim.learners import LearnerError
from pacsim.learners import rnn as rnn_learner
from pacsim.models import rnn

AZL = {"family": "azl", "L": 4, "d_x": 3}
PG21 = {"family": "pg21", "L": 4, "d_x": 3}


def _spec(model, concept=None, **train_keys):
    concept = concept or (PG21 if model.get("mode") == "pg21" else AZL)
    return RunSpec.model_validate({"concept": concept, "model": {"m": 16, **model},
                                   "train": {"n_test": 20, "n_val": 20, **train_keys}})


def _learner(model, concept=None, seed=0):
    spec = _spec(model, concept)
    c = concepts.make(spec.concept, np.random.default_rng(1))
    return learners.make(spec.model, c, np.random.default_rng(seed)), c


COMBOS = list(itertools.product(("azl", "pg21", "plain"), rnn.CELLS, rnn.INITS, (None, 2)))


@pytest.mark.parametrize("mode, cell, init, bptt", COMBOS, ids=["-".join(map(str, c)) for c in COMBOS])
def test_every_combination_builds_and_runs(mode, cell, init, bptt):
    spec = _spec({"mode": mode, "cell": cell, "init": init, "bptt": bptt})
    res = train.run(spec, seed=0, lr=0.5, checkpoints=[8])
    assert res.status == "ok" and np.isfinite(res.rows[0]["test_nmse"]) and res.eta > 0
    info = {k.removeprefix("learner_info."): v for k, v in res.info.items()
            if k.startswith("learner_info.")}
    md = rnn.mode_spec(mode)
    assert info["cell"] == cell and info["init"] == init
    assert info["trained"] == ",".join(md.trained)
    assert info["bptt_K"] == (2 if bptt else 4)
    assert (info["start_token"], info["end_token"]) == (md.start_token, md.end_token)
    assert info["token_scale"] == (0.1 if md.scale_tokens else 1.0)
    assert (info["a_var"], info["b_var"]) == (md.a_var, md.b_var)
    closed = cell == "relu" and bptt is None
    assert info["ntk_trace_method"] == ("closed-form" if closed else "empirical")
    assert ("sigma_v" in info) == (cell == "minimal")


def test_defaults_are_azl_and_match_the_array_level_model():
    learner, c = _learner({})
    p = rnn.init_params(16, c.d_x + 1, c.d, np.random.default_rng(0))
    for name in ("W", "A", "B"):  # exact: the same draws
        npt.assert_array_equal(getattr(learner.params, name), getattr(p, name))
    T = rnn.ntk_trace(16, c.L, 0.1, c.positions, 1.0)
    # the same closed form (positive terms) and one division: a few roundings
    npt.assert_allclose(learner.step_size(0.7, "ntk"), 0.7 / T, rtol=1e-12)
    assert learner.step_size(0.7, "raw") == 0.7
    assert learner.names == ("W",) and learner.K == c.L and learner.sigma_w == np.sqrt(2)


def _chunk(learner, c, n=6):
    X, Y = c.sample(n, np.random.default_rng(2))
    before = learner.params.copy()
    n_steps, _ = learner.sgd_chunk(learner.encode(X), Y, 0.05, None)
    assert n_steps == n
    return {k: not np.array_equal(getattr(before, k), getattr(learner.params, k)) for k in "WAB"}


def test_pg21_mode_trains_w_and_a_only():
    learner, c = _learner({"mode": "pg21"})
    assert _chunk(learner, c) == {"W": True, "A": True, "B": False}


def test_plain_mode_trains_the_chosen_matrices():
    learner, c = _learner({"mode": "plain", "trained": ["B"]})
    assert _chunk(learner, c) == {"W": False, "A": False, "B": True}
    learner, c = _learner({"mode": "plain", "trained": ["A", "W"]})
    assert learner.names == ("W", "A")
    assert _chunk(learner, c) == {"W": True, "A": True, "B": False}


def test_tanh_step_size_is_lr_over_the_measured_trace():
    learner, c = _learner({"cell": "tanh", "init": "critical"}, seed=5)
    (probe_rng,) = np.random.default_rng(5).spawn(1)
    tokens = c.sample(rnn_learner.N_PROBE, probe_rng)[0][: rnn_learner.N_PROBE_EMPIRICAL]
    T = rnn.empirical_ntk_trace(learner.params, learner.encode(tokens), c.positions, 1.0)
    assert learner.trace_method == "empirical"
    # the same trace (sums of squares, same inputs and code) and one division
    npt.assert_allclose(learner.step_size(0.5, "ntk"), 0.5 / T, rtol=1e-12)
    sigma_w = np.sqrt(rnn.w_var("tanh", "critical", 16, x_sq_norm=0.01))
    npt.assert_allclose(learner.sigma_w, sigma_w, rtol=1e-12)  # the same deterministic root


def test_truncated_bptt_reaches_the_gradients():
    learner, c = _learner({"bptt": 1})
    X, Y = c.sample(5, np.random.default_rng(3))
    inputs = learner.encode(X)
    loss, (gW,) = learner.batch_grad(inputs, Y)
    want_loss, want = rnn.loss_and_grad(learner.params, inputs, Y, 1.0, c.positions, K=1)
    _, full = rnn.loss_and_grad(learner.params, inputs, Y, 1.0, c.positions)
    assert loss == want_loss  # bit-exact: the learner makes this very call
    npt.assert_array_equal(gW, want.W)
    assert not np.allclose(gW, full.W)


def test_run_records_the_resolved_choices():
    res = train.run(_spec({"mode": "pg21", "lam": 0.5}), seed=0, lr=0.5, checkpoints=[8])
    got = {k: res.info[f"learner_info.{k}"] for k in
           ("trained", "start_token", "end_token", "lam", "bptt_K", "sigma_w")}
    assert got == {"trained": "W,A", "start_token": 1, "end_token": 1, "lam": 0.5, "bptt_K": 4,
                   "sigma_w": np.sqrt(2)}


def test_momentum_optimiser_in_pg21_mode_is_vanilla_sgd_at_batch_1():
    common = {"protocol": "finite", "epochs": 2}
    sgd = train.run(_spec({"mode": "pg21"}, **common), seed=4, lr=0.5, checkpoints=[12])
    mom = train.run(_spec({"mode": "pg21"}, **common, optimizer="momentum", batch=1,
                          momentum=0.0, decay_factor=1.0), seed=4, lr=0.5, checkpoints=[12])
    assert mom.status == "ok" and sgd.eta == mom.eta
    # two code paths, the same arithmetic up to summation order (measured 7e-16): 1e-10
    npt.assert_allclose(mom.rows[0]["test_mse"], sgd.rows[0]["test_mse"], rtol=1e-10)
    batched = train.run(_spec({"mode": "pg21"}, **common, optimizer="momentum", batch=4),
                        seed=4, lr=0.5, checkpoints=[12])
    assert batched.status == "ok" and np.isfinite(batched.rows[0]["test_mse"])


def test_pg21_mode_needs_a_concept_labelled_at_the_end():
    model = rnn_learner.Config(mode="pg21", m=16)
    concept = concepts.FAMILIES["azl"].Config(**{k: v for k, v in AZL.items() if k != "family"})
    c = concepts.make(concept, np.random.default_rng(1))
    with pytest.raises(LearnerError, match='mode = "pg21" scores only the end position') as e:
        learners.make(model, c, np.random.default_rng(0))
    assert "\n" not in str(e.value)
    with pytest.raises(LearnerError, match="also scores 2"):
        rnn_learner.check_concept(model, concept)
    with pytest.raises(ValueError, match="also scores 2"):  # the config loader runs it too
        _spec({"mode": "pg21"}, concept=AZL)
    for concept in (PG21, {"family": "regular", "L": 4}):  # azl mode reads them too
        s = _spec({"mode": "pg21"}, concept=concept)
        rnn_learner.check_concept(s.model, s.concept)
        rnn_learner.check_concept(_spec({}, concept=concept).model, s.concept)


def _sweep(model):
    return {"name": "t", "seeds": [0], "base": {"model": model}}


@pytest.mark.parametrize(
    "model, message",
    [
        ({"trained": ["W", "B"]}, 'base.model: trained can only be set in mode "plain"; mode '
                                  '"azl" trains W'),
        ({"mode": "pg21", "trained": ["B"]}, 'mode "pg21" trains W, A'),
        ({"cell": "gru"}, "base.model.cell = 'gru': Input should be 'relu', 'tanh' or 'minimal'"),
        ({"init": "xavier"}, "base.model.init = 'xavier': Input should be 'azl', 'critical' or"),
        ({"mode": "plain", "trained": ["B", "B"]}, "base.model.trained = ['B', 'B']: allowed: "
                                                   'a non-empty list of "W", "A", "B", each at '
                                                   "most once"),
        ({"mode": "plain", "trained": []}, "base.model.trained = []: allowed: a non-empty"),
        ({"mode": "plain", "trained": ["V"]}, "Input should be 'W', 'A' or 'B'"),
        ({"mode": "plain", "lam": 2.0}, 'lam is fixed to 1.0 in mode "plain"'),
        ({"init": "critical", "sigma_w": 1.2}, 'sigma_w cannot be set with init = "critical"'),
        ({"mu_b": 1.0}, 'mu_b belongs to cell = "minimal"'),
        ({"bptt": 0}, "base.model.bptt = 0: Input should be greater than or equal to 1"),
    ],
)
def test_invalid_options_give_one_line_errors(model, message):
    with pytest.raises(ConfigError) as e:
        parse_sweep(_sweep(model), source="x.toml")
    assert message in str(e.value) and "\n" not in str(e.value)


def test_valid_option_sets_load():
    cfg = parse_sweep(_sweep({"mode": "plain", "trained": ["B", "W"], "cell": "minimal",
                              "init": "orthogonal", "sigma_w": 1.0, "mu_b": 2.0, "bptt": 3}))
    model = cfg.base.model
    assert model.trained == ("B", "W") and model.trained_names == ("W", "B")
    assert (model.cell, model.init, model.sigma_w, model.mu_b, model.bptt) == (
        "minimal", "orthogonal", 1.0, 2.0, 3)
