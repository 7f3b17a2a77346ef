"""The linearised oracle's rows of ``theory.parquet``: for every SGD cell of a run folder whose
network has an oracle, the predicted test error of the network linearised at the run's own
initialisation, trained as the run was (docs/theory.md, sec. 3c).

Which learners: ``mlp2``, ``mlp3``, ``resnet`` (AZL's bottleneck form; :func:`oracle.ff_kernel`,
every array at its relative rate ``learner.rates``) and ``rnn`` with the ReLU cell and full
BPTT (any mode and trained matrices; :func:`oracle.rnn_kernel`), vanilla SGD without
``lr_warmup``. Everything else gets one row with a ``note`` saying why.

How, per cell, seed and evaluated ``n`` (the run's chosen step size at that ``n``: the row of
``results.parquet`` with ``lr_chosen``, its ``eta`` column, times ``2/k`` for ``train.loss =
"mse"``):

* the network: the learner rebuilt from the run's seed streams (the same initial weights);
  ``f0 = "subtract"`` and ``"symmetric"`` train a function that is 0 at initialisation, with the
  same tangent kernel, so their oracle starts from 0;
* the test points: the first ``ORACLE_TEST`` points of the run's own test set (``eval``
  stream), the error normalised by the label variance of the whole test set, as ``test_nmse``;
* ``protocol = "online"`` (one fresh sample per step, ``steps = n``): the expected function
  of online SGD (:func:`oracle.online_expected`) from ``M`` fresh samples of a stream no run
  uses, plus the SGD variance; ``M`` the smallest power of two ``>= 2 max(n)``, at most
  ``oracle_max / k`` (``k`` scored outputs); ``n > M/2`` is beyond its reach (``pred`` NaN),
  as for the kernel predictions. ``lo``: from the ``M`` samples (in-sample, optimistic);
  ``hi``: on the test points (held out); ``pred`` their geometric mean;
* ``protocol = "finite"`` (``epochs`` passes of SGD over the run's ``N`` samples): the
  linearised network trained by the run's own SGD, replayed exactly in function space
  (:func:`oracle.linearised_sgd`): the run's ``N`` samples (``data`` stream), its
  permutation of them in every epoch (``sgd`` stream), its step, and as many steps as its
  weights took (``epochs N``; ``best_epoch N`` with early stopping, whose epoch the run chose
  on validation). No approximation beyond the linearisation, so the measured / predicted
  ratio of a finite cell is the run's departure from its own linearisation, seed by seed.
  ``lo = hi = pred``; ``N k > oracle_max`` is skipped with a ``note``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..concepts import scored
from ..models import ff, rnn
from ..seeding import streams
from . import oracle

__all__ = ["ORACLE_MAX", "ORACLE_TEST", "STREAM", "oracle_rows", "NoOracle"]

#: Default cap on the (sample, output) pairs of the oracle's kernel (``--oracle-max``): its
#: Gram matrix and ``eigh`` stay within a laptop's memory and a minute (the RNN's kernel costs
#: ``O(n^2 (P L)^2 m)`` on top).
ORACLE_MAX = 2048
#: How many points of the run's test set the oracle is evaluated on.
ORACLE_TEST = 512
#: Spawn key of the online oracle's fresh samples (no run draws from it).
STREAM = (0x7E0, 1)


class NoOracle(Exception):
    """This SGD learner's run has no linearised oracle (the message says why)."""


class _Linearised:
    """The tangent kernel and initial outputs of an SGD learner's network at its initial
    weights, over its scored outputs (``k`` of them, in the layout of its targets)."""

    def __init__(self, learner, tc):
        kind = learner.cfg.kind
        if tc.optimizer != "sgd":
            raise NoOracle(f'optimizer = "{tc.optimizer}": the oracle is that of vanilla SGD')
        if tc.lr_warmup is not None:
            raise NoOracle("lr_warmup rescales the step during the run: no oracle")
        if kind == "rnn":
            p = learner.params0
            if p.cell != "relu":
                raise NoOracle(f'cell = "{p.cell}": the oracle\'s kernel is the ReLU cell\'s')
            if learner.K < learner.concept.L:
                raise NoOracle(f"bptt = {learner.K}: truncated BPTT does not follow the "
                               "gradient, so not the tangent kernel")
            pos, lam, names = learner.positions, float(learner.cfg.lam), learner.names
            self.kernel = lambda A, B=None: oracle.rnn_kernel(p, A, B, pos, lam, names)
            self.out = lambda A: rnn.forward(p, A, lam)[:, pos].reshape(len(A), -1)
            zero = learner.cfg.f0 != "keep"
        elif kind in ("mlp2", "mlp3", "resnet"):
            p, rates = learner.params0, learner.rates
            if p.arch == "resnet" and (rates.W != rates.b1 or rates.V != rates.b2):
                raise NoOracle("resnet: the bottleneck kernel needs equal rates for W and b1, "
                               "V and b2")
            self.kernel = lambda A, B=None: oracle.ff_kernel(p, A, B, rates)
            self.out = lambda A: ff.forward(p, A)
            zero = learner.f0 != "keep"
        else:
            raise NoOracle(f"no linearised oracle for model.kind = {kind!r}")
        if zero:  # f - f_0, or the symmetric pair: 0 at init, the same tangent kernel
            out = self.out
            self.out = lambda A: np.zeros(out(A).shape)

    def f0(self, A) -> np.ndarray:
        return np.asarray(self.out(A), dtype=np.float64)


def oracle_rows(spec, concept, learner, seed: int, rows: pd.DataFrame, base: dict, *,
                oracle_max: int = ORACLE_MAX, tol: float = 0.1) -> list[dict]:
    """The oracle's rows for one cell and seed (module docstring). ``rows``: that cell's and
    seed's rows of ``results.parquet``. Raises :class:`NoOracle` when there is none."""
    tc = spec.train
    net = _Linearised(learner, tc)
    s = streams(seed)
    X_test, Y_test = concept.sample(tc.n_test, s.eval)  # the run's test set
    T = scored(concept, Y_test).reshape(len(Y_test), -1)
    label_var = float(np.mean(np.var(T, axis=0)))
    n_ev = min(tc.n_test, ORACLE_TEST)
    A_ev, T_ev = learner.encode(X_test[:n_ev]), T[:n_ev]
    k = T.shape[1]
    loss_scale = 2.0 / k if tc.loss == "mse" else 1.0
    runs = _chosen_runs(rows, learner, tc)
    if runs.empty:
        raise NoOracle("no run at a chosen step size to predict")
    common = {**base, "seed": seed, "ridge": math.nan, "chosen": True, "source": "oracle",
              "oracle.protocol": tc.protocol, "oracle.n_test": n_ev}
    out = []
    if tc.protocol == "online":
        n_max = int(runs["n"].max())
        M = min(1 << max(1, math.ceil(math.log2(2 * n_max))), max(2, oracle_max // k))
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=STREAM))
        X, Y = concept.sample(M, rng)
        A = learner.encode(X)
        pb = oracle._Problem.of(net.kernel(A), net.kernel(A_ev, A), net.f0(A), net.f0(A_ev),
                                scored(concept, Y).reshape(M, -1))
        preds = []
        runs = runs.assign(eta=runs["eta"] * loss_scale, reach=runs["n"] <= M // 2)
        online = {eta: oracle._online(pb, eta, sorted(set(g.loc[g["reach"], "steps"])))
                  for eta, g in runs.groupby("eta") if g["reach"].any()}  # one per step
        for _, r in runs.iterrows():
            n, eta, steps = int(r["n"]), float(r["eta"]), int(r["steps"])
            row = {**common, "n": n, "M": M, "oracle.lr": r["lr"], "oracle.eta": eta,
                   "oracle.steps": steps, "note": ""}
            if not r["reach"]:  # beyond the estimate's reach
                out.append({**row, "pred": math.nan, "lo": math.nan, "hi": math.nan})
                continue
            o = online[eta]
            i = int(np.searchsorted(o.steps, steps))
            with np.errstate(over="ignore", invalid="ignore"):
                hi = (float(np.mean((o.test[i] - T_ev) ** 2)) + o.var[i]) / label_var
                lo = (o.bias_in[i] + o.var[i]) / label_var
                pred = math.sqrt(lo * hi) if np.isfinite(lo * hi) else math.inf
            preds.append((lo, hi))
            out.append({**row, "pred": pred, "lo": lo, "hi": hi,
                        "oracle.max_rate": o.max_rate, "oracle.trace_rate": o.trace_rate})
        spread = _spread(preds)
        for row in out:
            row.update({"spread": spread, "stable": spread <= math.log1p(tol)})
        return out
    for _, r in runs.iterrows():  # finite: the run's own samples and SGD order, replayed
        n, eta, steps = int(r["n"]), float(r["eta"]) * loss_scale, int(r["steps"])
        row = {**common, "n": n, "M": n, "oracle.lr": r["lr"], "oracle.eta": eta,
               "oracle.steps": steps, "spread": 0.0, "stable": True}
        if n * k > oracle_max:
            out.append({**row, "pred": math.nan, "lo": math.nan, "hi": math.nan,
                        "note": f"oracle: N = {n} samples x {k} outputs > {oracle_max} "
                                "(--oracle-max)"})
            continue
        X, Y = concept.sample(n, streams(seed).data)  # the run's own samples
        sgd = streams(seed).sgd  # and its permutation of them in every epoch
        order = np.concatenate([sgd.permutation(n) for _ in range(-(-steps // n))] or [[]])
        A = learner.encode(X)
        o = oracle.linearised_sgd(net.kernel(A), net.kernel(A_ev, A), net.f0(A),
                                  net.f0(A_ev), scored(concept, Y).reshape(n, -1), eta,
                                  order, [steps])
        with np.errstate(over="ignore", invalid="ignore"):
            pred = float(np.mean((o.test[0] - T_ev) ** 2)) / label_var
        pred = pred if np.isfinite(pred) else math.inf
        out.append({**row, "pred": pred, "lo": pred, "hi": pred, "note": "",
                    "oracle.max_rate": o.max_rate})
    return out


def _chosen_runs(rows: pd.DataFrame, learner, tc) -> pd.DataFrame:
    """Per evaluated ``n``: the step size the run chose there (``lr_chosen``), its raw step
    ``eta`` (the ``eta`` column; ``learner.step_size`` for tables without it) and the SGD
    steps the run's weights had taken (``best_epoch`` N with early stopping)."""
    r = rows
    if "lr_chosen" in r:
        r = r[r["lr_chosen"].astype(bool)]
    r = r.drop_duplicates("n").sort_values("n")
    lr = r["lr_selected"] if "lr_selected" in r else r["train.lr"]
    eta = r["eta"] if "eta" in r else pd.Series(np.nan, index=r.index)
    eta = eta.where(np.isfinite(eta.astype(float)),
                    [learner.step_size(float(v), tc.lr_units) for v in lr])
    steps = r["steps"] if "steps" in r else r["n"] * (tc.epochs if tc.protocol == "finite"
                                                      else 1)
    if tc.protocol == "finite" and "best_epoch" in r:
        best = pd.to_numeric(r["best_epoch"], errors="coerce")
        steps = steps.where(best.isna(), best * r["n"])
    return pd.DataFrame({"n": r["n"].astype(int), "lr": lr.astype(float),
                         "eta": eta.astype(float), "steps": steps.astype(int)})


def _spread(pairs) -> float:
    """The largest ``|log(hi / lo)|`` where the prediction is at least 0.01 (as the kernel
    estimate's :func:`pacsim.theory.spectrum.estimate`)."""
    logs = [abs(math.log(hi / lo)) for lo, hi in pairs
            if np.isfinite(lo) and np.isfinite(hi) and lo > 0 and max(lo, hi) >= 0.01]
    return max(logs, default=0.0)
