"""One run: a seeded target, a fresh learner, vanilla SGD (or a closed-form fit), test errors.

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

from . import concepts, learners
from .config import RunSpec
from .seeding import streams

#: Online samples are drawn and trained in chunks of at most this many steps.
CHUNK = 4096


@dataclass
class RunResult:
    """Outcome of one run: one row per checkpoint, plus run-level facts."""

    #: n, test_mse, test_nmse, val_nmse, train_loss (and fit.*: a closed-form fit's choices;
    #: lazy.*: an SGD learner's laziness diagnostics)
    rows: list[dict] = field(default_factory=list)
    status: str = "ok"  #: "ok" or "diverged"
    diverged_step: int | None = None  #: 1-based step whose loss was NaN/Inf
    eta: float = math.nan  #: the raw SGD step size used
    test_label_var: float = math.nan  #: label variance on the test set (the nmse denominator)
    wall_s: float = 0.0
    info: dict = field(default_factory=dict)  #: concept_info.* and learner_info.* scalars


def run(spec: RunSpec, seed: int, lr: float, checkpoints, validate: bool = False) -> RunResult:
    """Train (or fit) one learner and evaluate it.

    Parameters
    ----------
    spec : RunSpec
        Concept, model and training settings (``spec.train.lr`` is ignored; see ``lr``).
    seed : int
        Root seed of the run (split by :func:`pacsim.seeding.streams`).
    lr : float
        Step size, in ``spec.train.lr_units`` (ignored by closed-form learners).
    checkpoints : sequence of int
        Online: the sample counts at which to evaluate (increasing); an SGD learner trains
        ``checkpoints[-1]`` steps, a closed-form learner is fitted on the first ``n`` samples
        at every checkpoint. Finite: a single ``N``.
    validate : bool
        Also record the error on the validation set (for choosing ``lr``).
    """
    t0 = time.perf_counter()
    s = streams(seed)
    tc = spec.train
    concept = concepts.make(spec.concept, s.concept)
    learner = learners.make(spec.model, concept, s.init)
    test = _EvalSet(*concept.sample(tc.n_test, s.eval), concept, learner)
    val = _EvalSet(*concept.sample(tc.n_val, s.val), concept, learner) if validate else None
    result = RunResult(test_label_var=test.var)
    result.info = {**{f"concept_info.{k}": v for k, v in concept.info().items()}}

    def evaluate(n, train_loss, fit=None):
        row = {"n": int(n), "train_loss": train_loss, **test.errors(learner, "test")}
        row.update({f"fit.{k}": v for k, v in (fit or {}).items()})
        row["val_nmse"] = val.errors(learner, "val")["val_nmse"] if val else math.nan
        if learner.sgd:  # laziness diagnostics: movement, sign flips, NTK alignment, trace
            row.update({f"lazy.{k}": v for k, v in learner.laziness().items()})
        if not np.isfinite(row["test_mse"]):  # weights blew up after the last finite loss
            result.status = "diverged"
            result.diverged_step = result.diverged_step or int(n)
        result.rows.append(row)

    if not learner.sgd:
        X, Y = concept.sample(max(checkpoints), s.data)
        inputs = learner.encode(X)
        for n in checkpoints:  # nested training sets: the first n samples
            learner.fit(inputs[:n], Y[:n], streams(seed).sgd)  # same split rule at every n
            evaluate(n, math.nan, learner.info())  # this fit's choices, as fit.* columns
    elif tc.protocol == "online":
        result.eta = eta = learner.step_size(lr, tc.lr_units)
        done = 0
        for n in checkpoints:
            losses = []
            while done < n:
                k = min(CHUNK, n - done)
                X, Y = concept.sample(k, s.data)
                n_steps, chunk_losses = learner.sgd_chunk(learner.encode(X), Y, eta, None)
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
    elif tc.optimizer == "momentum":
        result.eta = eta = learner.step_size(lr, tc.lr_units)
        (N,) = checkpoints
        X, Y = concept.sample(N, s.data)
        loss = _momentum(learner, learner.encode(X), Y, eta, tc, s.sgd, result)
        if result.status == "ok":
            evaluate(N, loss)
    else:
        result.eta = eta = learner.step_size(lr, tc.lr_units)
        (N,) = checkpoints
        X, Y = concept.sample(N, s.data)
        inputs = learner.encode(X)
        for epoch in range(tc.epochs):
            n_steps, losses = learner.sgd_chunk(inputs, Y, eta, s.sgd.permutation(N))
            if n_steps < N:
                result.status, result.diverged_step = "diverged", epoch * N + n_steps + 1
                break
        else:
            evaluate(N, float(np.mean(losses)))
    result.info.update({f"learner_info.{k}": v for k, v in learner.info().items()})
    result.wall_s = time.perf_counter() - t0
    return result


def _momentum(learner, inputs, Y, eta, tc, rng, result) -> float:
    """The papers' experimental optimiser (not vanilla SGD; see TrainConfig): mini-batches of
    ``tc.batch`` from a fresh permutation each epoch, heavy-ball momentum
    ``v <- mu v + (g + wd w)``, ``w <- w - eta_t v``, ``eta_t = eta`` for the first
    ``decay_at * epochs`` epochs and ``eta * decay_factor`` after. Returns the last epoch's
    mean batch loss; a non-finite loss or gradient marks the run diverged."""
    weights = learner.trained()
    velocity = [np.zeros_like(w) for w in weights]
    N = len(Y)
    decay_epoch = math.ceil(tc.decay_at * tc.epochs)
    step = 0
    for epoch in range(tc.epochs):
        lr_t = eta * (tc.decay_factor if epoch >= decay_epoch else 1.0)
        order = rng.permutation(N)
        losses = []
        for start in range(0, N, tc.batch):
            idx = np.sort(order[start:start + tc.batch])
            loss, grads = learner.batch_grad(inputs[idx], Y[idx])
            step += 1
            if not (np.isfinite(loss) and all(np.isfinite(g).all() for g in grads)):
                result.status, result.diverged_step = "diverged", step  # or it would be next
                return math.nan
            for w, v, g in zip(weights, velocity, grads, strict=True):
                if tc.weight_decay:
                    g = g + tc.weight_decay * w
                v *= tc.momentum
                v += g
                w -= lr_t * v
            losses.append(loss)
    return float(np.mean(losses))


class _EvalSet:
    """A held-out labelled set and the errors of a learner on it (scored outputs only).

    The labels stay here: a learner only ever sees the encoded inputs.
    """

    def __init__(self, X, Y, concept, learner):
        self.inputs = learner.encode(X)
        self.Y = concepts.scored(concept, Y)  # (n, S, d), float64
        # Mean over scored (j, s) of the label variance: the mse of the best constant per output.
        self.var = float(np.mean(np.var(self.Y, axis=0)))

    def errors(self, learner, prefix):
        Yhat = learner.predict(self.inputs)
        with np.errstate(over="ignore", invalid="ignore"):
            mse = float(np.mean((Yhat - self.Y) ** 2))
        mse = mse if np.isfinite(mse) else math.inf
        out = {f"{prefix}_mse": mse, f"{prefix}_nmse": mse / self.var}
        if prefix == "test":  # the papers' "test error": squared error summed over the outputs
            out["test_sse"] = mse * self.Y.shape[1] * self.Y.shape[2]
        return out
