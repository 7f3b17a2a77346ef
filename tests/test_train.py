"""One run: protocols, seed discipline, divergence."""

import numpy as np
import numpy.testing as npt

from pacsim import train
from pacsim.config import RunSpec

SPEC = {"concept": {"L": 4, "d_x": 3}, "model": {"m": 8}, "train": {"n_test": 50, "n_val": 20}}


def _spec(**over):
    raw = {k: dict(v) for k, v in SPEC.items()}
    for key, value in over.items():
        part, name = key.split("__")
        raw[part][name] = value
    return RunSpec.model_validate(raw)


def test_online_run_records_every_checkpoint_and_learns():
    res = train.run(_spec(model__m=32), seed=0, lr=1.0, checkpoints=[16, 256, 2048])
    assert res.status == "ok" and [r["n"] for r in res.rows] == [16, 256, 2048]
    errs = [r["test_nmse"] for r in res.rows]
    assert errs[-1] < 0.5 * errs[0]
    assert all(np.isnan(r["val_nmse"]) for r in res.rows)


def test_online_run_does_not_depend_on_chunk_size(monkeypatch):
    a = train.run(_spec(), seed=3, lr=0.5, checkpoints=[10, 40])
    monkeypatch.setattr(train, "CHUNK", 7)
    b = train.run(_spec(), seed=3, lr=0.5, checkpoints=[10, 40])
    assert a.rows == b.rows


def test_width_and_budget_keep_target_and_test_set():
    """Changing m or N changes neither the concept nor the test set (separate streams)."""
    a = train.run(_spec(model__m=8), seed=1, lr=0.5, checkpoints=[20])
    b = train.run(_spec(model__m=16), seed=1, lr=0.5, checkpoints=[20, 40])
    c = train.run(_spec(train__protocol="finite"), seed=1, lr=0.5, checkpoints=[30])
    assert a.test_label_var == b.test_label_var == c.test_label_var
    assert a.rows[0]["test_nmse"] != b.rows[0]["test_nmse"]


def test_finite_protocol_trains_epochs_and_validates():
    res = train.run(_spec(train__protocol="finite", train__epochs=3), seed=0, lr=0.5,
                    checkpoints=[30], validate=True)
    assert res.status == "ok" and len(res.rows) == 1
    row = res.rows[0]
    assert row["n"] == 30 and np.isfinite(row["val_nmse"]) and np.isfinite(row["train_loss"])


def test_divergence_is_recorded_with_its_step():
    """A step size 50 times past the stability limit blows the loss up within a few steps."""
    unstable = {"concept__L": 16, "model__eps_x": 1.0}
    res = train.run(_spec(**unstable), seed=0, lr=100.0, checkpoints=[2, 64])
    assert res.status == "diverged" and 3 <= res.diverged_step <= 64
    assert [r["n"] for r in res.rows] == [2]  # rows stop before the blow-up
    assert np.isfinite(res.rows[0]["test_nmse"])
    fin = train.run(_spec(train__protocol="finite", **unstable), seed=0, lr=100.0, checkpoints=[20])
    assert fin.status == "diverged" and fin.rows == [] and fin.diverged_step >= 1
    ok = train.run(_spec(**unstable), seed=0, lr=1.0, checkpoints=[2, 64])
    assert ok.status == "ok" and ok.diverged_step is None


def test_float32_run_tracks_float64():
    a = train.run(_spec(model__eps_x=0.5), seed=2, lr=0.5, checkpoints=[64])
    b = train.run(_spec(model__eps_x=0.5, model__dtype="float32"), seed=2, lr=0.5, checkpoints=[64])
    # float32 (unit roundoff 6e-8) amplified by 1/eps_x and 64 SGD steps; measured 5e-9 here,
    # 1e-3 leaves room for any CPU while a float32 kernel that drops the signal is off by O(1)
    npt.assert_allclose(b.rows[0]["test_nmse"], a.rows[0]["test_nmse"], rtol=1e-3)


def test_momentum_preset_at_batch_1_without_momentum_is_vanilla_finite_sgd():
    common = {"train__protocol": "finite", "train__epochs": 3}
    sgd = train.run(_spec(**common), seed=4, lr=0.5, checkpoints=[40])
    mom = train.run(_spec(**common, train__optimizer="momentum", train__batch=1,
                          train__momentum=0.0, train__decay_factor=1.0), seed=4, lr=0.5,
                    checkpoints=[40])
    assert sgd.eta == mom.eta
    # two code paths (jitted SGD chunk; batch gradient then update), the same arithmetic up to
    # summation order: rounding ~1e-16 per step, amplified by at most the training dynamics
    # over 120 steps (measured 2e-16 relative): 1e-10
    npt.assert_allclose(mom.rows[0]["test_mse"], sgd.rows[0]["test_mse"], rtol=1e-10)


def test_momentum_preset_learns_and_its_knobs_change_the_result():
    base = {"train__protocol": "finite", "train__epochs": 100, "train__optimizer": "momentum",
            "train__batch": 10}
    a = train.run(_spec(**base), seed=1, lr=0.1, checkpoints=[200])
    b = train.run(_spec(**base, train__momentum=0.5), seed=1, lr=0.1, checkpoints=[200])
    c = train.run(_spec(**base, train__decay_at=1.0), seed=1, lr=0.1, checkpoints=[200])
    d = train.run(_spec(**base, train__weight_decay=0.1), seed=1, lr=0.1, checkpoints=[200])
    one = train.run(_spec(**base | {"train__epochs": 1}), seed=1, lr=0.1, checkpoints=[200])
    assert a.status == "ok" and a.rows[0]["test_nmse"] < 0.85 < one.rows[0]["test_nmse"]
    errs = [r.rows[0]["test_mse"] for r in (a, b, c, d)]
    assert len(set(errs)) == 4
    assert a.rows[0]["test_sse"] == a.rows[0]["test_mse"] * 2  # L = 4: two scored outputs, d = 1


def test_momentum_stops_at_a_non_finite_gradient():
    """A finite loss with an Inf gradient diverges at that step: the update would put the Inf
    into the weights, where a ReLU network's loss may not see it (a closed unit's column)."""

    class Stub:
        def __init__(self, bad_at):
            self.w, self.calls, self.bad_at = np.zeros(3), 0, bad_at

        def trained(self):
            return [self.w]

        def batch_grad(self, inputs, Y):
            self.calls += 1
            g = np.ones(3)
            if self.calls == self.bad_at:
                g[1] = np.inf
            return 1.0, [g]

    tc = _spec(train__protocol="finite", train__optimizer="momentum", train__batch=2,
               train__epochs=2).train
    res = train.RunResult()
    stub = Stub(bad_at=3)
    loss = train._momentum(stub, np.zeros((6, 1)), np.zeros(6), 0.1, tc,
                           np.random.default_rng(0), res)
    assert res.status == "diverged" and res.diverged_step == 3 and np.isnan(loss)
    assert np.isfinite(stub.w).all()  # the bad step was not applied
    res = train.RunResult()
    train._momentum(Stub(bad_at=0), np.zeros((6, 1)), np.zeros(6), 0.1, tc,
                    np.random.default_rng(0), res)
    assert res.status == "ok"


def test_minibatch_at_batch_1_is_vanilla_finite_sgd_and_keeps_early_stopping():
    common = {"train__protocol": "finite", "train__epochs": 6, "train__patience": 2}
    sgd = train.run(_spec(**common), seed=5, lr=0.5, checkpoints=[40], validate=True)
    mb = train.run(_spec(**common, train__optimizer="minibatch", train__batch=1), seed=5,
                   lr=0.5, checkpoints=[40], validate=True)
    assert sgd.eta == mb.eta and mb.status == "ok"
    a, b = sgd.rows[0], mb.rows[0]
    assert (a["epochs"], a["best_epoch"], a["steps"]) == (b["epochs"], b["best_epoch"], b["steps"])
    # the jitted SGD chunk against batch gradient then update: the same arithmetic up to
    # summation order (~1e-16 per step, over <= 240 steps; measured 1e-16 relative): 1e-10
    npt.assert_allclose(b["test_mse"], a["test_mse"], rtol=1e-10)
    npt.assert_allclose(b["val_nmse"], a["val_nmse"], rtol=1e-10)


def test_minibatch_counts_one_step_per_batch_and_learns():
    spec = _spec(train__protocol="finite", train__epochs=40, train__optimizer="minibatch",
                 train__batch=16, model__m=32)
    res = train.run(spec, seed=2, lr=2.0, checkpoints=[100], validate=True)
    row = res.rows[0]
    assert res.status == "ok" and row["epochs"] == 40 and row["steps"] == 40 * 7  # ceil(100/16)
    fresh = train.run(spec.model_copy(update={"train": spec.train.model_copy(
        update={"epochs": 1})}), seed=2, lr=2.0, checkpoints=[100])
    assert row["test_nmse"] < 0.9 * fresh.rows[0]["test_nmse"]


class _Quadratic:
    """Least squares ``0.5 mean (x . w - y)^2``: its batch gradient in closed form."""

    def __init__(self, d):
        self.w = np.zeros(d)

    def trained(self):
        return [self.w]

    def batch_grad(self, X, Y):
        r = X @ self.w - Y
        return 0.5 * float(np.mean(r * r)), [X.T @ r / len(Y)]


def test_batch_sgd_with_the_whole_set_is_gradient_descent():
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((12, 3)), rng.standard_normal(12)
    q = _Quadratic(3)
    opt = train._BatchSGD(q, X, Y, batch=12, mu=0.0, wd=0.0, rng=np.random.default_rng(1))
    w = np.zeros(3)
    for _ in range(5):
        opt.epoch(0.1)
        w = w - 0.1 * X.T @ (X @ w - Y) / 12
    # the same products on a copy of X (the batch's rows): BLAS may order the 12-term sums
    # differently (~1e-16 relative per step, 5 steps; measured 5e-16); a wrong batch or step
    # is off by O(1)
    npt.assert_allclose(q.w, w, rtol=1e-12)
    assert opt.step == 5 and opt.diverged_step is None
    small = train._BatchSGD(_Quadratic(3), X, Y, batch=5, mu=0.0, wd=0.0,
                            rng=np.random.default_rng(1))
    small.epoch(0.1)
    assert small.step == 3  # 5 + 5 + 2
