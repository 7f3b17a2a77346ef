"""``train.loss``: pacsim's half_sse against PyTorch's ``nn.MSELoss()`` (the papers' convention).

With k scored outputs per sample, mse = (2/k) half_sse, so a run with ``loss = "mse"`` at step
size lr and weight decay wd is the half_sse run at lr * 2/k and wd * k/2 (docs/config.md).
"""

import numpy as np
import numpy.testing as npt
import pytest

from pacsim import concepts, learners, train
from pacsim.config import RunSpec
from pacsim.seeding import streams


def _capture(monkeypatch):
    """Run ``train.run`` and keep its learner (to read the trained weights)."""
    made = []
    real = learners.make

    def make(cfg, concept, rng):
        made.append(real(cfg, concept, rng))
        return made[-1]

    monkeypatch.setattr(train.learners, "make", make)
    return made


def _run(monkeypatch, raw, lr, n, seed=5, ok=True):
    made = _capture(monkeypatch)
    res = train.run(RunSpec.model_validate(raw), seed=seed, lr=lr, checkpoints=[n])
    assert res.status == "ok" or not ok
    return res, [w.copy() for w in made[-1].trained()]


RESNET = {"concept": {"family": "resnet-parity"},  # k = 8 outputs
          "model": {"kind": "resnet", "m": 16, "init": "experiment"},
          "train": {"protocol": "finite", "lr_units": "raw", "n_test": 50, "epochs": 6,
                    "optimizer": "momentum", "batch": 10}}
RNN = {"concept": {"L": 5, "d_x": 3, "d": 2},  # positions 2..4, d = 2: k = 6 outputs
       "model": {"m": 8}, "train": {"protocol": "finite", "lr_units": "raw", "n_test": 50,
                                    "epochs": 3}}


def _with(raw, **train_keys):
    out = {k: dict(v) for k, v in raw.items()}
    out["train"].update(train_keys)
    return out


@pytest.mark.parametrize("raw, k, lr, wd", [
    (RESNET, 8, 0.5, 1e-3),  # momentum preset with weight decay, one output per sample
    (_with(RESNET, optimizer="sgd"), 8, 0.2, 0.0),  # vanilla SGD on the same network
    (RNN, 6, 0.1, 0.0),  # vanilla SGD, three scored positions of two outputs
    (_with(RNN, optimizer="momentum", batch=5), 6, 0.1, 1e-2),  # momentum on the RNN
], ids=["resnet-momentum", "resnet-sgd", "rnn-sgd", "rnn-momentum"])
def test_mse_is_half_sse_at_lr_times_2_over_k(monkeypatch, raw, k, lr, wd):
    n = 40
    mse, w_mse = _run(monkeypatch, _with(raw, loss="mse", weight_decay=wd), lr, n)
    half, w_half = _run(monkeypatch, _with(raw, weight_decay=wd * k / 2), lr * 2 / k, n)
    assert mse.info["train_info.loss"] == "mse" and half.info["train_info.loss"] == "half_sse"
    assert mse.info["train_info.loss_outputs"] == k
    # Tens of steps in float64 that differ only in where the factor 2/k is applied: rounding
    # of ~1e-16 per operation, not amplified by a stable run beyond ~1e-12 of the weights' norm.
    for a, b in zip(w_mse, w_half, strict=True):
        npt.assert_allclose(a, b, rtol=0, atol=1e-11 * np.abs(b).max())
    same_lr, w_same = _run(monkeypatch, _with(raw, weight_decay=wd), lr, n, ok=False)
    assert same_lr.status == "diverged" or not np.allclose(w_mse[0], w_same[0])  # it acts
    # The same weights, so the same predictions; the training loss is reported in mse units.
    npt.assert_allclose(mse.rows[0]["test_mse"], half.rows[0]["test_mse"], rtol=1e-9)
    npt.assert_allclose(mse.rows[0]["train_loss"], half.rows[0]["train_loss"] * 2 / k,
                        rtol=1e-9)


def test_online_mse_is_half_sse_at_lr_times_2_over_k():
    online = {k: dict(v) for k, v in RNN.items()}
    online["train"].update(protocol="online")
    mse = train.run(RunSpec.model_validate(_with(online, loss="mse")), seed=2, lr=0.3,
                    checkpoints=[8, 32])
    half = train.run(RunSpec.model_validate(online), seed=2, lr=0.3 * 2 / 6, checkpoints=[8, 32])
    for a, b in zip(mse.rows, half.rows, strict=True):  # sgd_chunk at the same eta: rounding
        npt.assert_allclose(a["test_mse"], b["test_mse"], rtol=1e-12)
        npt.assert_allclose(a["train_loss"], b["train_loss"] * 2 / 6, rtol=1e-12)


def test_kernel_runs_record_no_loss_convention():
    raw = {"concept": {"family": "resnet-parity"}, "model": {"kind": "linear"},
           "train": {"protocol": "finite", "n_test": 20, "loss": "mse"}}
    res = train.run(RunSpec.model_validate(raw), seed=0, lr=1.0, checkpoints=[30])
    assert not any(k.startswith("train_info.") for k in res.info)


def test_bad_loss_is_rejected_with_its_key():
    from pacsim.config import parse_sweep
    from pacsim.errors import ConfigError

    with pytest.raises(ConfigError, match=r"train\.loss = 'sse'.*'half_sse'.*'mse'"):
        parse_sweep({"name": "x", "seeds": [0], "base": {"train": {"loss": "sse"}}})


def test_momentum_steps_match_torch_sgd_with_mse_loss(monkeypatch):
    """Four full-batch steps of the momentum preset (loss = "mse", weight decay, the step
    decay after two) against ``torch.optim.SGD(momentum=0.9, weight_decay=wd)`` minimising
    ``nn.MSELoss()`` of the same AZL-ResNet on the same batch, from the same weights."""
    torch = pytest.importorskip("torch")
    n, lr, wd, seed = 30, 0.5, 1e-3, 7
    raw = _with(RESNET, loss="mse", weight_decay=wd, batch=n, epochs=4, decay_at=0.5)
    spec = RunSpec.model_validate(raw)
    made = _capture(monkeypatch)
    res = train.run(spec, seed=seed, lr=lr, checkpoints=[n])
    assert res.status == "ok"
    p_pacsim = made[-1].params

    s = streams(seed)  # the run's target, initial weights and training set, drawn again
    concept = concepts.make(spec.concept, s.concept)
    p0 = learners.LEARNERS["resnet"].make(spec.model, concept, s.init).params
    X, Y = concept.sample(n, s.data)
    t = {k: torch.tensor(getattr(p0, k), dtype=torch.float64, requires_grad=k != "A")
         for k in ("W", "b1", "V", "b2", "A")}
    x, y = torch.tensor(X), torch.tensor(Y)
    opt = torch.optim.SGD([t[k] for k in ("W", "b1", "V", "b2")], lr=lr, momentum=0.9,
                          weight_decay=wd)
    for epoch in range(4):
        for group in opt.param_groups:
            group["lr"] = lr * (0.1 if epoch >= 2 else 1.0)
        opt.zero_grad()
        o1 = torch.relu(x @ t["W"].T + t["b1"]) @ t["A"].T
        out = o1 + torch.relu(o1 @ t["V"].T + t["b2"]) @ t["A"].T
        torch.nn.MSELoss()(out, y).backward()
        opt.step()
    moved = False
    for k in ("W", "b1", "V", "b2"):
        ref = t[k].detach().numpy()
        # Four steps in float64; the gradients are summed in different orders (jitted loops
        # against BLAS): rounding ~1e-15 relative to the largest entry, far below 1e-10.
        npt.assert_allclose(getattr(p_pacsim, k), ref, rtol=0, atol=1e-10 * np.abs(ref).max())
        moved |= not np.allclose(ref, getattr(p0, k))
    assert moved
