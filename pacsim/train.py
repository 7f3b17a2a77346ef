"""One training run: a seeded target, a fresh RNN, vanilla SGD, test error at checkpoints.

Two protocols (``train.protocol``):

* ``online``: a fresh sample every step, so samples = steps; the test error is recorded at
  the checkpoints ``n`` (geometric grid), giving the whole learning curve from one run.
* ``finite``: ``N`` fixed samples, ``epochs`` passes, reshuffled every epoch (``sgd`` stream);
  the test error is recorded once, at the end.

Every run draws its target from the ``concept`` stream, its test set from ``eval``, its
validation set from ``val``, its training samples from ``data`` and its initial weights from
``init`` (:mod:`pacsim.seeding`), so two runs that differ only in ``m``, ``N`` or ``lr`` share the
target, the test set and the sample sequence.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from . import concepts
from .config import RunSpec
from .models import rnn
from .seeding import streams

#: Online samples are drawn and trained in chunks of at most this many steps.
CHUNK = 4096


@dataclass
class RunResult:
    """Outcome of one run: one row per checkpoint, plus run-level facts."""

    rows: list[dict] = field(default_factory=list)  #: n, test_mse, test_nmse, val_nmse, train_loss
    status: str = "ok"  #: "ok" or "diverged"
    diverged_step: int | None = None  #: 1-based step whose loss was NaN/Inf
    eta: float = math.nan  #: the raw SGD step size used
    test_label_var: float = math.nan  #: label variance on the test set (the nmse denominator)
    wall_s: float = 0.0


def run(spec: RunSpec, seed: int, lr: float, checkpoints, validate: bool = False) -> RunResult:
    """Train one network and evaluate it.

    Parameters
    ----------
    spec : RunSpec
        Concept, model and training settings (``spec.train.lr`` is ignored; see ``lr``).
    seed : int
        Root seed of the run (split by :func:`pacsim.seeding.streams`).
    lr : float
        Step size, in ``spec.train.lr_units``.
    checkpoints : sequence of int
        Online: the sample counts at which to evaluate (increasing); the run trains
        ``checkpoints[-1]`` steps. Finite: a single ``N``.
    validate : bool
        Also record the error on the validation set (for choosing ``lr``).
    """
    t0 = time.perf_counter()
    s = streams(seed)
    c, mc, tc = spec.concept, spec.model, spec.train
    concept = concepts.make(c, s.concept)
    dtype = np.dtype(mc.dtype)

    def encode(tokens):
        return rnn.azl_inputs(tokens, mc.eps_x, dtype)

    test = _EvalSet(*concept.sample(tc.n_test, s.eval), encode, concept.positions)
    val = _EvalSet(*concept.sample(tc.n_val, s.val), encode, concept.positions) if validate else None
    params = rnn.init_params(mc.m, c.d_x + 1, c.d, s.init, dtype)
    positions = concept.positions
    if tc.lr_units == "ntk":
        eta = lr / rnn.ntk_trace(mc.m, c.L, mc.eps_x, positions, mc.lam)
    else:
        eta = lr
    result = RunResult(eta=eta, test_label_var=test.var)

    def evaluate(n, train_loss):
        row = {"n": int(n), "train_loss": train_loss, **test.errors(params, mc.lam, "test")}
        row["val_nmse"] = val.errors(params, mc.lam, "val")["val_nmse"] if val else math.nan
        if not np.isfinite(row["test_mse"]):  # weights blew up after the last finite loss
            result.status = "diverged"
            result.diverged_step = result.diverged_step or int(n)
        result.rows.append(row)

    def sgd(X, Y, order):
        n_steps, losses = rnn.sgd_chunk(params, X, Y, eta, mc.lam, positions, order)
        return n_steps, losses[:n_steps]

    if tc.protocol == "online":
        done = 0
        for n in checkpoints:
            losses = []
            while done < n:
                k = min(CHUNK, n - done)
                tokens, Y = concept.sample(k, s.data)
                n_steps, chunk_losses = sgd(encode(tokens), Y, None)
                losses.append(chunk_losses)
                if n_steps < k:
                    result.status, result.diverged_step = "diverged", done + n_steps + 1
                    break
                done += k
            if result.status == "diverged":
                break
            evaluate(n, float(np.mean(np.concatenate(losses))) if losses else math.nan)
            if result.status == "diverged":
                break
    else:
        (N,) = checkpoints
        tokens, Y = concept.sample(N, s.data)
        X = encode(tokens)
        for epoch in range(tc.epochs):
            n_steps, losses = sgd(X, Y, s.sgd.permutation(N))
            if n_steps < N:
                result.status, result.diverged_step = "diverged", epoch * N + n_steps + 1
                break
        else:
            evaluate(N, float(np.mean(losses)))
    result.wall_s = time.perf_counter() - t0
    return result


class _EvalSet:
    """A held-out labelled set and the errors of a network on it (scored positions only)."""

    def __init__(self, tokens, Y, encode, positions):
        self.X = encode(tokens)
        self.Y = Y[:, positions]  # (n, |S|, d), float64
        self.positions = positions
        # Mean over scored (j, s) of the label variance: the mse of the best constant per output.
        self.var = float(np.mean(np.var(self.Y, axis=0)))

    def errors(self, params, lam, prefix):
        Yhat = rnn.forward(params, self.X, lam)[:, self.positions].astype(np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            mse = float(np.mean((Yhat - self.Y) ** 2))
        mse = mse if np.isfinite(mse) else math.inf
        return {f"{prefix}_mse": mse, f"{prefix}_nmse": mse / self.var}
