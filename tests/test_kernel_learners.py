"""The closed-form (kernel) learners of :mod:`pacsim.learners` (``ntk``, ``nngp``, ``rntk``,
``entk``, ``random_features``, ``poly``, ``gaussian``, ``linear``).

* every kind fits and predicts ``(n, S, d)`` float64 on tiny sequence and vector concepts (and
  refuses the concept kinds it cannot read, at config validation);
* an SGD RNN and the ``rntk`` and ``ntk`` learners run side by side in one sweep, each with
  its N_eps row, their chosen ridges recorded as ``learner_info.ridge``;
* ``fit`` receives exactly the first ``n`` training samples, and replacing the test labels by
  garbage changes neither the predictions nor the chosen hyper-parameters;
* the ``rntk`` learner is :func:`pacsim.kernels.krr.fit` with :func:`pacsim.kernels.rntk.rntk`
  (per position, and jointly with ``blocks = "full"``; d > 1 output coordinates independent);
* ``random_features`` with ridge 0 is least squares on :func:`pacsim.models.rnn.states`, and
  ``entk`` / ``random_features`` draw the SGD learners' initial networks;
* more than ``max_n`` training samples is a :class:`LearnerError`; in a sweep ``max_n`` (for
  ``linear`` also its feature-matrix limit) caps and censors the cell instead;
* the learners with an RNN view check, like the ``rnn`` learner, that a pg21 mode scores the
  concept's positions, and a feed-forward ``init`` is allowed with ``net = "auto"`` (vector
  concepts) and not carried over from an rnn base section.

Everything is tiny (n <= 80, m <= 24); every test is seeded.
"""

from __future__ import annotations

import numpy as np
import numpy.testing as npt
import pandas as pd
import pytest
from tolerance import assert_close

from pacsim import concepts, learners, train
from pacsim.config import RunSpec, parse_sweep
from pacsim.kernels import krr, rntk
from pacsim.learners import LearnerError
from pacsim.learners._kernel import KernelLearner
from pacsim.learners.gaussian import BANDWIDTHS
from pacsim.models import rnn
from pacsim.seeding import streams
from pacsim.sweep import run_sweep

#: The kernel kinds and the settings that keep them tiny here.
KINDS = {"ntk": {"depth": 2, "bias": 0.1}, "nngp": {}, "rntk": {}, "entk": {"m": 12},
         "random_features": {"m": 12}, "poly": {"degree": 3}, "gaussian": {},
         "linear": {"degree": 2}}
SEQUENCE_ONLY = {"rntk"}


def _sequence(rng, d=2, L=5):
    return concepts.make(concepts.azl.Config(L=L, d_x=3, d=d), rng)


def _vector(rng):
    return concepts.make(concepts.FAMILIES["resnet"].Config(d_in=4, d=2), rng)


def _cfg(kind, **kw):
    return learners.LEARNERS[kind].Config(**{**KINDS[kind], **kw})


def _fit(learner, concept, n, rng, seed=0):
    X, Y = concept.sample(n, rng)
    learner.fit(learner.encode(X), Y, np.random.default_rng(seed))
    return X, Y


def test_the_registry_lists_every_kernel_kind_as_closed_form():
    for kind in KINDS:
        mod = learners.LEARNERS[kind]
        assert mod.SGD is False and mod.Config().kind == kind
        assert mod.Config().max_n >= 1024


@pytest.mark.parametrize("concept_kind", ["sequence", "vector"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_fits_and_predicts_scored_outputs(kind, concept_kind, rng):
    concept = _sequence(rng) if concept_kind == "sequence" else _vector(rng)
    if concept_kind == "vector" and kind in SEQUENCE_ONLY:
        with pytest.raises(LearnerError, match="cannot learn a vector concept"):
            learners.make(_cfg(kind), concept, rng)
        return
    learner = learners.make(_cfg(kind), concept, rng)
    assert learner.sgd is False
    _fit(learner, concept, 40, rng)
    Xt, Yt = concept.sample(25, rng)
    P = learner.predict(learner.encode(Xt))
    S = len(concept.positions) if concept_kind == "sequence" else 1
    assert P.shape == (25, S, concept.d) and P.dtype == np.float64
    assert np.all(np.isfinite(P))
    info = learner.info()
    assert info["ridge"] in krr.RIDGES and np.isfinite(info["val_mse"])
    if kind == "gaussian":
        assert info["bandwidth_factor"] in BANDWIDTHS
        # one product of the recorded factors: a rounding or two
        assert_close(info["bandwidth"], info["bandwidth_factor"] * info["median_distance"], 1e-14)


@pytest.mark.parametrize("kind", ["entk", "random_features"])
@pytest.mark.parametrize("net", ["mlp2", "mlp3", "resnet"])
def test_finite_width_kinds_on_every_feed_forward_net(kind, net, rng):
    for concept in (_sequence(rng), _vector(rng)):
        learner = learners.make(_cfg(kind, net=net), concept, rng)
        _fit(learner, concept, 30, rng)
        P = learner.predict(learner.encode(concept.sample(7, rng)[0]))
        assert P.shape[0] == 7 and P.shape[2] == concept.d and np.all(np.isfinite(P))
        assert learner.info()["net"] == net


def test_concept_kinds_are_checked_at_config_validation():
    with pytest.raises(ValueError, match="cannot learn a vector concept"):
        RunSpec.model_validate({"concept": {"family": "resnet"}, "model": {"kind": "rntk"}})
    with pytest.raises(ValueError, match="with these settings cannot learn a vector"):
        RunSpec.model_validate({"concept": {"family": "resnet"},
                                "model": {"kind": "entk", "net": "rnn"}})
    spec = RunSpec.model_validate({"concept": {"family": "resnet"},
                                   "model": {"kind": "random_features", "ridges": [0, 1e-3]}})
    assert spec.model.ridges == (0.0, 1e-3)


def test_sweep_runs_sgd_rnn_and_kernels_side_by_side(tmp_path):
    """One cell per learner, the same test set per seed, an N_eps row per cell, and the chosen
    ridges in the results table (per checkpoint as fit.*, the last as learner_info.*)."""
    cfg = parse_sweep({
        "name": "rnn-vs-kernels",
        "seeds": [0, 1],
        "base": {"concept": {"L": 4, "d_x": 3},
                 "model": {"m": 16, "eps_x": 0.5},
                 "train": {"lr": 1.0, "n_test": 60}},
        "grid": {"model": [{"kind": "rnn"}, {"kind": "rntk"}, {"kind": "ntk", "depth": 2}]},
        "target": {"eps": 0.5, "n_min": 8, "n_max": 128, "points_per_doubling": 1,
                   "n_boot": 100},
    })
    outcome = run_sweep(cfg, out=tmp_path, workers=1, progress=False)
    assert outcome.n_failed == 0 and outcome.n_cells == 3, outcome.failures
    res = pd.read_parquet(tmp_path / "rnn-vs-kernels" / "results.parquet")
    assert set(res["model.kind"]) == {"rnn", "rntk", "ntk"}
    assert set(res.loc[res["model.kind"] == "rntk", "model.eps_x"]) == {0.5}
    per_seed = res.groupby(["seed", "model.kind"])["test_label_var"].first().unstack()
    # bit-exact: one seed's test set is drawn and its variance computed by the same code
    npt.assert_array_equal(per_seed["rnn"], per_seed["rntk"])  # the same test set
    npt.assert_array_equal(per_seed["rnn"], per_seed["ntk"])
    kernel_rows = res[res["model.kind"] != "rnn"]
    assert kernel_rows["learner_info.ridge"].notna().all()
    assert kernel_rows["learner_info.ridge"].isin(krr.RIDGES).all()
    assert (kernel_rows["steps"] == 0).all()
    assert set(kernel_rows["n"]) == {8, 16, 32, 64, 128}  # refitted at every checkpoint
    assert kernel_rows["fit.ridge"].isin(krr.RIDGES).all()  # each checkpoint's own choice
    assert kernel_rows["fit.val_mse"].notna().all()
    assert res.loc[res["model.kind"] == "rnn", "fit.ridge"].isna().all()
    last = kernel_rows[kernel_rows["n"] == 128]  # learner_info: the last fit's
    npt.assert_array_equal(last["fit.ridge"], last["learner_info.ridge"])  # a grid value, copied
    sc = pd.read_parquet(tmp_path / "rnn-vs-kernels" / "sample_complexity.parquet")
    assert sorted(sc["model"]) == ["ntk(depth=2)", "rnn", "rntk"]  # one N_eps row per cell
    assert (sc["n_eps"].notna() | sc["censored"]).all()


@pytest.mark.parametrize("kind", ["rntk", "gaussian", "random_features"])
def test_fit_sees_only_training_samples_and_never_test_labels(kind, monkeypatch):
    """``fit`` gets exactly the first n training samples of the run's data stream; test labels
    replaced by garbage leave every prediction and every chosen hyper-parameter unchanged."""
    spec = RunSpec.model_validate({"concept": {"L": 4, "d_x": 3, "d": 2},
                                   "model": {"kind": kind, **KINDS[kind]},
                                   "train": {"n_test": 40}})
    seed, checkpoints = 3, [16, 48]
    fits, preds = [], []
    fit, predict = KernelLearner.fit, KernelLearner.predict

    def spy_fit(self, inputs, Y, rng):
        fits.append((np.array(inputs), np.array(Y)))
        return fit(self, inputs, Y, rng)

    def spy_predict(self, inputs):
        out = predict(self, inputs)
        preds.append(out.copy())
        return out

    monkeypatch.setattr(KernelLearner, "fit", spy_fit)
    monkeypatch.setattr(KernelLearner, "predict", spy_predict)
    clean = train.run(spec, seed, 0.0, checkpoints)

    s = streams(seed)
    concept = concepts.make(spec.concept, s.concept)
    learner = learners.make(spec.model, concept, s.init)
    X, Y = concept.sample(max(checkpoints), s.data)
    assert len(fits) == len(checkpoints)
    for (inputs, labels), n in zip(fits, checkpoints, strict=True):  # exact: the same draws
        npt.assert_array_equal(labels, Y[:n])
        npt.assert_array_equal(inputs, learner.encode(X[:n]))

    clean_preds, fits[:], preds[:] = list(preds), [], []
    init = train._EvalSet.__init__

    def garbage_labels(self, X, Y, concept, learner):
        init(self, X, Y, concept, learner)
        self.Y = np.random.default_rng(0).standard_normal(self.Y.shape) * 1e6

    monkeypatch.setattr(train._EvalSet, "__init__", garbage_labels)
    poisoned = train.run(spec, seed, 0.0, checkpoints)
    for a, b in zip(clean_preds, preds, strict=True):  # exact: the same fit on the same data
        npt.assert_array_equal(a, b)
    assert {k: v for k, v in clean.info.items() if k.startswith("learner_info.")} == \
        {k: v for k, v in poisoned.info.items() if k.startswith("learner_info.")}
    assert poisoned.rows[-1]["test_nmse"] != clean.rows[-1]["test_nmse"]


@pytest.mark.parametrize("d", [1, 2])
def test_rntk_learner_is_krr_with_the_recurrent_ntk(d, rng):
    """Per position (``blocks = "diag"``, the grid and the split of krr.fit), and jointly
    (``"full"``, one fixed ridge): every output coordinate is its own regression."""
    concept = _sequence(rng, d=d, L=6)
    pos = concept.positions
    X, Y = concept.sample(60, rng)
    Xt = concept.sample(20, rng)[0]
    E, Et = rnn.azl_inputs(X, 0.2), rnn.azl_inputs(Xt, 0.2)
    split_seed = int(np.random.default_rng(7).integers(2**63))

    learner = learners.make(learners.rntk.Config(eps_x=0.2), concept, rng)
    learner.fit(learner.encode(X), Y, np.random.default_rng(7))
    if d == 1:
        model = krr.fit(lambda A, B: rntk.rntk(A, B, pos, blocks="diag"), E, Y[:, pos, 0],
                        seed=split_seed)
        assert learner.info()["ridge"] == model.ridge
        # the same kernel and solve reached through the learner (its own encoding of the
        # inputs): rounding of the kernel times cond of the ridged system, relative to the scale
        assert_close(learner.predict(learner.encode(Xt))[:, :, 0], model.predict(Et), 1e-10)

    for blocks in ("diag", "full"):
        learner = learners.make(learners.rntk.Config(eps_x=0.2, blocks=blocks, ridges=[1e-3]),
                                concept, rng)
        learner.fit(learner.encode(X), Y, np.random.default_rng(7))
        P = learner.predict(learner.encode(Xt))
        for s in range(d):
            model = krr.fit(lambda A, B, b=blocks: rntk.rntk(A, B, pos, blocks=b), E,
                            Y[:, pos, s], ridges=(1e-3,))
            # joint or per-output systems against one krr.fit per output coordinate, ridge
            # 1e-3 of trace / n (cond <= ~1e4): 1e-9 of the predictions' scale
            assert_close(P[:, :, s], model.predict(Et), 1e-9)


@pytest.mark.parametrize("readout", ["per-position", "shared"])
def test_random_features_with_ridge_zero_is_least_squares_on_rnn_states(readout, rng):
    concept = _sequence(rng, d=2, L=5)
    pos, m = concept.positions, 10
    X, Y = concept.sample(40, rng)
    Xt = concept.sample(15, rng)[0]
    cfg = learners.random_features.Config(m=m, eps_x=0.3, ridges=[0.0], readout=readout)
    learner = learners.make(cfg, concept, np.random.default_rng(5))
    learner.fit(learner.encode(X), Y, np.random.default_rng(0))

    p = learners.make(learners.rnn.Config(m=m, eps_x=0.3), concept,
                      np.random.default_rng(5)).params  # the SGD learner's initial network
    npt.assert_array_equal(learner.params.W, p.W)  # exact: the same draws
    H = rnn.states(p, rnn.azl_inputs(X, 0.3))[:, pos]
    Ht = rnn.states(p, rnn.azl_inputs(Xt, 0.3))[:, pos]
    T = Y[:, pos]
    if readout == "per-position":
        want = np.stack([Ht[:, j] @ np.linalg.lstsq(H[:, j], T[:, j], rcond=None)[0]
                         for j in range(len(pos))], axis=1)
    else:
        coef = np.linalg.lstsq(H.reshape(-1, m), T.reshape(-1, concept.d), rcond=None)[0]
        want = Ht @ coef
    # least squares two ways (the learner's solve against lstsq's SVD) on 40 x 10 states,
    # cond(H) ~ 1e2 (squared if normal equations are used: ~1e4 * eps): 1e-8 of the scale
    assert_close(learner.predict(learner.encode(Xt)), want, 1e-8)
    assert learner.info()["ridge"] == 0.0


def test_finite_width_kinds_draw_the_sgd_learners_networks(rng):
    seq, vec = _sequence(rng), _vector(rng)
    for kind in ("entk", "random_features"):
        # exact: the same generator state and the same drawing code
        a = learners.make(_cfg(kind, m=12), seq, np.random.default_rng(9)).params
        b = learners.make(learners.rnn.Config(m=12), seq, np.random.default_rng(9)).params
        npt.assert_array_equal(a.W, b.W)
        npt.assert_array_equal(a.B, b.B)
        for net in ("mlp2", "mlp3", "resnet"):
            a = learners.make(_cfg(kind, m=12, net=net), vec, np.random.default_rng(9)).params
            b = learners.make(learners.LEARNERS[net].Config(m=12), vec,
                              np.random.default_rng(9)).params
            for name in ("W", "b1", "V", "b2", "A"):
                npt.assert_array_equal(getattr(a, name), getattr(b, name))


@pytest.mark.parametrize("kind", list(KINDS))
def test_more_than_max_n_training_samples_is_refused(kind, rng):
    concept = _sequence(rng)
    learner = learners.make(_cfg(kind, max_n=10), concept, rng)
    _fit(learner, concept, 10, rng)  # at the cap: fine
    with pytest.raises(LearnerError, match=r"fit 11 training samples, more than model.max_n = 10"):
        _fit(learner, concept, 11, rng)


def test_finite_width_learners_draw_the_sgd_learners_init_preset():
    """``init`` gives entk / random_features the same network as the SGD learner with that
    preset (AZL-ResNet's experiment init), and a preset the net lacks is refused at load."""
    from pacsim.config import parse_sweep
    from pacsim.errors import ConfigError

    base = {"concept": {"family": "resnet-parity", "version": "v2"}}
    for kind in ("entk", "random_features"):
        cfg = parse_sweep({"name": "t", "seeds": [0], "base": {**base, "model": {
            "kind": kind, "net": "resnet", "m": 16, "init": "experiment"}}})
        (_, spec), = cfg.cells()
        sgd = parse_sweep({"name": "t", "seeds": [0], "base": {**base, "model": {
            "kind": "resnet", "m": 16, "init": "experiment"}}})
        (_, sgd_spec), = sgd.cells()
        c = concepts.make(spec.concept, np.random.default_rng(1))
        k = learners.make(spec.model, c, np.random.default_rng(7))
        s = learners.make(sgd_spec.model, c, np.random.default_rng(7))
        np.testing.assert_array_equal(k.params.W, s.params.W)  # exact: same draws
        np.testing.assert_array_equal(k.params.V, s.params.V)
        with pytest.raises(ConfigError, match="is not a preset of net = 'resnet'; allowed: theory"):
            parse_sweep({"name": "t", "seeds": [0], "base": {**base, "model": {
                "kind": kind, "net": "resnet", "init": "azll"}}})
        with pytest.raises(ConfigError, match="applies to a feed-forward net"):
            parse_sweep({"name": "t", "seeds": [0], "base": {"model": {
                "kind": kind, "net": "rnn", "init": "azll"}}})


def test_a_kernels_max_n_caps_and_censors_its_cell_in_a_sweep(tmp_path):
    """target.n_max above model.max_n: the kernel cell is searched up to max_n only, and if it
    does not get there it is censored by "max_n" (not failed)."""
    cfg = parse_sweep({
        "name": "cap", "seeds": [0],
        "base": {"concept": {"L": 4, "d_x": 3}, "train": {"n_test": 40}},
        "grid": {"model": [{"kind": "ntk", "max_n": 16}]},
        "target": {"eps": 1e-6, "n_min": 8, "n_max": 64, "points_per_doubling": 1,
                   "n_boot": 100},
    })
    outcome = run_sweep(cfg, out=tmp_path, workers=1, progress=False)
    assert outcome.n_failed == 0
    res = pd.read_parquet(tmp_path / "cap" / "results.parquet")
    sc = pd.read_parquet(tmp_path / "cap" / "sample_complexity.parquet")
    assert res["n"].max() == 16
    assert sc.loc[0, "censored"] and sc.loc[0, "censored_by"] == "max_n"
    assert sc.loc[0, "n_cap"] == 16


@pytest.mark.parametrize("kind", ["rntk", "entk", "random_features"])
def test_rnn_view_kernels_check_the_pg21_modes_positions(kind):
    """pg21 scores only position L-1: with an AZL concept (positions 2..L-1) the config is
    refused at load and the learner at make, as for the rnn learner; with a pg21 concept, or
    a feed-forward net (mode unused), it is fine."""
    from pacsim.errors import ConfigError

    model = {"kind": kind, "mode": "pg21", **KINDS[kind]}
    azl = {"family": "azl", "L": 4, "d_x": 3}
    msg = 'model.mode = "pg21" scores only the end position L-1'
    with pytest.raises(ConfigError, match=msg):
        parse_sweep({"name": "t", "seeds": [0], "base": {"concept": azl, "model": model}})
    concept = concepts.make(concepts.azl.Config(**{k: v for k, v in azl.items()
                                                   if k != "family"}), np.random.default_rng(0))
    with pytest.raises(LearnerError, match=msg):
        learners.make(_cfg(kind, mode="pg21"), concept, np.random.default_rng(0))
    parse_sweep({"name": "t", "seeds": [0],
                 "base": {"concept": {"family": "pg21", "L": 4}, "model": model}})
    if kind != "rntk":
        parse_sweep({"name": "t", "seeds": [0],
                     "base": {"concept": azl, "model": {**model, "net": "mlp2"}}})


def test_linear_learners_feature_limit_caps_and_censors_the_cell(tmp_path, monkeypatch):
    """linear's feature matrix (samples x monomials) must stay within MAX_ENTRIES: the sweep
    caps the cell where it would not (censored by "max_n"), instead of failing the run there
    and losing its checkpoints."""
    from pacsim.learners import linear

    monkeypatch.setattr(linear, "MAX_ENTRIES", 1000)  # 9 inputs, degree 2: 55 monomials
    cfg = parse_sweep({
        "name": "lin", "seeds": [0],
        "base": {"concept": {"L": 4, "d_x": 3}, "train": {"n_test": 40},
                 "model": {"kind": "linear", "degree": 2}},
        "target": {"eps": 1e-6, "n_min": 8, "n_max": 64, "points_per_doubling": 1,
                   "n_boot": 100},
    })
    (_, spec), = cfg.cells()
    assert learners.max_n(spec.model, spec.concept) == 1000 // 55
    outcome = run_sweep(cfg, out=tmp_path, workers=1, progress=False)
    assert outcome.n_failed == 0, outcome.failures
    res = pd.read_parquet(tmp_path / "lin" / "results.parquet")
    sc = pd.read_parquet(tmp_path / "lin" / "sample_complexity.parquet")
    assert res["n"].max() <= 18 and set(res["status"]) == {"ok"}
    assert sc.loc[0, "censored"] and sc.loc[0, "censored_by"] == "max_n"
    assert sc.loc[0, "n_cap"] == 18


def test_feed_forward_init_with_net_auto_and_grid_tables_of_other_kinds():
    """``init`` with net = "auto" means mlp2's presets (vector concepts) and is refused where
    auto means the RNN; an rnn base's ``init = "azl"`` is not carried into entk /
    random_features grid tables (a different key of the same name), but ``m`` is, and an
    out-of-range value is carried and refused, not dropped."""
    from pacsim.errors import ConfigError

    vec = {"family": "resnet-parity", "version": "v2"}
    for kind in ("entk", "random_features"):
        cfg = parse_sweep({"name": "t", "seeds": [0],
                           "base": {"concept": vec, "model": {"kind": kind, "m": 8,
                                                              "init": "experiment"}}})
        (_, spec), = cfg.cells()
        c = concepts.make(spec.concept, np.random.default_rng(1))
        k = learners.make(spec.model, c, np.random.default_rng(7))
        sgd = learners.make(learners.LEARNERS["mlp2"].Config(m=8, init="experiment"), c,
                            np.random.default_rng(7))
        np.testing.assert_array_equal(k.params.W, sgd.params.W)  # exact: same draws
        with pytest.raises(ConfigError, match=r"not a preset of net = auto \(mlp2 on vector"):
            parse_sweep({"name": "t", "seeds": [0], "base": {"concept": vec, "model": {
                "kind": kind, "init": "theory"}}})
        with pytest.raises(ConfigError, match="this .* learner's net is the RNN"):
            parse_sweep({"name": "t", "seeds": [0], "base": {"model": {
                "kind": kind, "init": "azll"}}})
    cfg = parse_sweep({"name": "t", "seeds": [0],
                       "base": {"concept": {"L": 4, "d_x": 3},
                                "model": {"kind": "rnn", "init": "azl", "m": 16}},
                       "grid": {"model": [{"kind": "rnn"}, {"kind": "entk"},
                                          {"kind": "random_features"}]}})
    models = [spec.model for _, spec in cfg.cells()]
    assert [mdl.init for mdl in models] == ["azl", None, None]
    assert [mdl.m for mdl in models] == [16, 16, 16]
    with pytest.raises(ConfigError, match="degree = 20: Input should be less than or equal to 16"):
        parse_sweep({"name": "t", "seeds": [0],
                     "base": {"concept": vec, "model": {"kind": "poly", "degree": 20}},
                     "grid": {"model": [{"kind": "poly"}, {"kind": "linear"}]}})
