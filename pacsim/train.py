"""One run: a seeded target, a fresh learner, vanilla SGD (or a closed-form fit), test errors.

Two protocols (``train.protocol``):

* ``online``: a fresh sample every step, so samples = steps; the test error is recorded at
  the checkpoints ``n`` (geometric grid), giving the whole learning curve from one run.
* ``finite``: ``N`` fixed samples, ``epochs`` passes, reshuffled every epoch (``sgd`` stream);
  the test error is recorded once, at the end. With ``patience`` (early stopping), the
  validation error is measured after every epoch, training stops once it has not improved for
  ``patience`` epochs, and the best epoch's weights are kept; the row records the epochs run,
  the best epoch, the SGD steps taken and the training error (``train_nmse``), so N (samples)
  and steps are separate numbers. The stopping epoch reads the validation set only.
  ``optimizer = "minibatch"`` takes one step per mini-batch of ``batch`` samples instead of one
  per sample (plain mini-batch SGD, :class:`_BatchSGD`); the papers' ``"momentum"`` preset adds
  momentum, weight decay and a step decay and runs every epoch.

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

from . import concepts, decomp, learners
from .config import RunSpec
from .seeding import streams

#: Online samples are drawn and trained in chunks of at most this many steps.
CHUNK = 4096


@dataclass
class RunResult:
    """Outcome of one run: one row per checkpoint, plus run-level facts."""

    #: n, test_mse, test_nmse, test_sse, val_nmse, train_loss (and fit.*: a closed-form fit's
    #: choices; decomp.*: the learned F and G, for a concept H = beta F + alpha G(F); lazy.*:
    #: an SGD learner's laziness diagnostics)
    rows: list[dict] = field(default_factory=list)
    status: str = "ok"  #: "ok" or "diverged"
    diverged_step: int | None = None  #: 1-based step whose loss was NaN/Inf
    eta: float = math.nan  #: the raw SGD step size used (on the gradient of train.loss)
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
    early = tc.protocol == "finite" and tc.patience is not None
    validate = validate or (early and learners.LEARNERS[spec.model.kind].SGD)
    concept = concepts.make(spec.concept, s.concept)
    learner = learners.make(spec.model, concept, s.init)
    test = _EvalSet(*concept.sample(tc.n_test, s.eval), concept, learner)
    val = _EvalSet(*concept.sample(tc.n_val, s.val), concept, learner) if validate else None
    result = RunResult(test_label_var=test.var)
    result.info = {**{f"concept_info.{k}": v for k, v in concept.info().items()}}
    # train.loss = "mse" is 2/k times "half_sse" (k scored outputs per sample): SGD takes the
    # step eta * loss_scale on the half_sse gradient, and reports losses in mse units
    n_out = concepts.n_scored(concept) * concept.d
    loss_scale = 2.0 / n_out if tc.loss == "mse" else 1.0
    if learner.sgd:
        result.info.update({"train_info.loss": tc.loss, "train_info.loss_outputs": n_out})

    def evaluate(n, train_loss, fit=None, extra=None):
        row = {"n": int(n), "train_loss": train_loss, **(extra or {}),
               **test.errors(learner, "test")}
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
        warm = tc.lr_warmup
        done = 0
        for n in checkpoints:
            losses = []
            while done < n:
                if warm is not None and done == warm:
                    eta = _rescaled(learner, eta, result)
                k = min(CHUNK, n - done, *([warm - done] if warm and done < warm else []))
                X, Y = concept.sample(k, s.data)
                n_steps, chunk_losses = learner.sgd_chunk(learner.encode(X), Y,
                                                          eta * loss_scale, None)
                losses.append(chunk_losses * loss_scale)
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
        loss = _momentum(learner, learner.encode(X), Y, eta, tc, s.sgd, result, loss_scale)
        if result.status == "ok":
            train = _EvalSet(X, Y, concept, learner)
            evaluate(N, loss, extra={"train_nmse": train.errors(learner, "train")["train_nmse"]})
    else:
        result.eta = eta = learner.step_size(lr, tc.lr_units)
        (N,) = checkpoints
        X, Y = concept.sample(N, s.data)
        inputs = learner.encode(X)
        stop = _EarlyStopping(learner, val, tc.patience) if early else None
        batched = tc.optimizer == "minibatch"
        opt = _BatchSGD(learner, inputs, Y, tc.batch, 0.0, 0.0, s.sgd, loss_scale) if batched \
            else None
        epochs = 0
        for epoch in range(tc.epochs):
            if tc.lr_warmup is not None and epoch * N >= tc.lr_warmup and "train_info.lr_rescale" \
                    not in result.info:
                eta = _rescaled(learner, eta, result)
            if batched:
                mean_loss = opt.epoch(eta)
                if opt.diverged_step is not None:
                    result.status, result.diverged_step = "diverged", opt.diverged_step
                    break
            else:
                n_steps, losses = learner.sgd_chunk(inputs, Y, eta * loss_scale,
                                                    s.sgd.permutation(N))
                if n_steps < N:
                    result.status, result.diverged_step = "diverged", epoch * N + n_steps + 1
                    break
                mean_loss = float(np.mean(losses)) * loss_scale
            epochs = epoch + 1
            if stop is not None and stop.after_epoch(epochs):
                break
        if result.status == "ok" or (stop is not None and stop.best_epoch > 0):
            # with early stopping, a run that diverged after its best epoch keeps that epoch's
            # weights and is scored there (its status still says it diverged: the step size
            # is past the stability edge)
            extra = {"epochs": epochs, "steps": opt.step if batched else epochs * N}
            if stop is not None:
                stop.restore()
                extra["best_epoch"] = stop.best_epoch
            train = _EvalSet(X, Y, concept, learner)
            extra["train_nmse"] = train.errors(learner, "train")["train_nmse"]
            last = mean_loss if result.status == "ok" else math.nan
            evaluate(N, last, extra=extra)
    result.info.update({f"learner_info.{k}": v for k, v in learner.info().items()})
    result.wall_s = time.perf_counter() - t0
    return result


def _momentum(learner, inputs, Y, eta, tc, rng, result, loss_scale=1.0) -> float:
    """The papers' experimental optimiser (not vanilla SGD; see TrainConfig): :class:`_BatchSGD`
    with ``tc.batch``, ``tc.momentum`` and ``tc.weight_decay``, the step ``eta`` for the first
    ``decay_at * epochs`` epochs and ``eta * decay_factor`` after: ``torch.optim.SGD`` with
    ``momentum``, ``weight_decay`` and a step decay. Returns the last epoch's mean batch loss
    (``tc.loss``'s convention); a non-finite loss or gradient marks the run diverged."""
    if len(tc.weight_decays) != 1:
        raise ValueError("one run takes one weight_decay; a list is chosen per cell by the sweep")
    (wd,) = tc.weight_decays
    opt = _BatchSGD(learner, inputs, Y, tc.batch, tc.momentum, wd, rng, loss_scale)
    decay_epoch = math.ceil(tc.decay_at * tc.epochs)
    loss = math.nan
    for epoch in range(tc.epochs):
        loss = opt.epoch(eta * (tc.decay_factor if epoch >= decay_epoch else 1.0))
        if opt.diverged_step is not None:
            result.status, result.diverged_step = "diverged", opt.diverged_step
            return math.nan
    return loss


class _BatchSGD:
    """Mini-batch SGD over fixed samples, with heavy-ball momentum and coupled weight decay.

    Every epoch draws a fresh permutation of the ``N`` samples from ``rng`` and steps once per
    batch of ``batch`` of them (the last may be smaller): ``v <- mu v + (g + wd w)``,
    ``w <- w - eta v`` for each :meth:`Learner.trained` array ``w``, where ``g`` is the
    gradient of the batch's mean loss in ``train.loss``'s convention (the learner's half_sse
    gradient times ``loss_scale``) from :meth:`Learner.batch_grad` (matrix-matrix products
    over the batch from a few samples on). ``mu = 0`` and ``wd = 0`` is plain mini-batch SGD,
    ``w <- w - eta g`` (``train.optimizer = "minibatch"``); with ``batch = 1`` that is vanilla
    SGD. A non-finite loss or gradient stops it before the update (``diverged_step``, 1-based).
    """

    def __init__(self, learner, inputs, Y, batch, mu, wd, rng, loss_scale=1.0):
        self.learner, self.inputs, self.Y, self.batch = learner, inputs, Y, batch
        self.mu, self.wd, self.rng, self.loss_scale = mu, wd, rng, loss_scale
        self.weights = learner.trained()
        self.velocity = [np.zeros_like(w) for w in self.weights] if mu else None
        self.step = 0  #: steps taken
        self.diverged_step: int | None = None

    def epoch(self, eta: float) -> float:
        """One pass over the samples at step size ``eta``; the mean batch loss (NaN once the
        run diverged)."""
        if self.diverged_step is not None:
            return math.nan
        if self.velocity is not None:  # a dead unit's velocity decays into subnormals: slow
            for v in self.velocity:
                np.copyto(v, 0, where=np.abs(v) < np.finfo(v.dtype).tiny)
        N = len(self.Y)
        order = self.rng.permutation(N)
        losses = []
        for start in range(0, N, self.batch):
            idx = np.sort(order[start:start + self.batch])
            loss, grads = self.learner.batch_grad(self.inputs[idx], self.Y[idx])
            loss *= self.loss_scale
            if not (np.isfinite(loss) and all(np.isfinite(g).all() for g in grads)):
                self.diverged_step = self.step + 1  # or it would be next
                return math.nan
            self.step += 1
            for i, (w, g) in enumerate(zip(self.weights, grads, strict=True)):
                if self.loss_scale != 1.0:
                    g = g * self.loss_scale
                if self.wd:
                    g = g + self.wd * w
                if self.velocity is None:
                    w -= eta * g
                else:
                    v = self.velocity[i]
                    v *= self.mu
                    v += g
                    w -= eta * v
            losses.append(loss)
        return float(np.mean(losses))


def _rescaled(learner, eta: float, result: RunResult) -> float:
    """The step after the warm-up (``train.lr_warmup``): ``eta`` times ``T_0 / T``, the NTK
    trace at initialisation over the trace now, both measured on the learner's probe inputs
    (:meth:`Learner.laziness`), so the step size stays ``lr`` in units of the *current*
    trace. Recorded as ``train_info.lr_rescale`` and ``train_info.eta_after_warmup``."""
    lazy = learner.laziness()
    scale = lazy["trace0"] / lazy["trace"]
    if not (np.isfinite(scale) and scale > 0):  # a dead or diverged network: keep the step
        scale = 1.0
    result.info.update({"train_info.lr_rescale": float(scale),
                        "train_info.eta_after_warmup": float(eta * scale)})
    return eta * scale


class _EarlyStopping:
    """Keeps the weights of the epoch with the smallest validation error; says when
    ``patience`` epochs have passed without improving on it. Reads the validation set only."""

    def __init__(self, learner, val, patience: int):
        if val is None:
            raise ValueError("early stopping (train.patience) needs a validation set")
        self.learner, self.val, self.patience = learner, val, patience
        self.best, self.best_epoch = math.inf, 0
        self.weights = [w.copy() for w in learner.trained()]  # epoch 0: the initialisation
        self.best = val.errors(learner, "val")["val_nmse"]

    def after_epoch(self, epoch: int) -> bool:
        """Record the epoch's validation error; ``True`` when training should stop."""
        v = self.val.errors(self.learner, "val")["val_nmse"]
        if v < self.best:
            self.best, self.best_epoch = v, epoch
            for keep, w in zip(self.weights, self.learner.trained(), strict=True):
                keep[...] = w
        return epoch - self.best_epoch >= self.patience

    def restore(self) -> None:
        """Put the best epoch's weights back into the learner."""
        for keep, w in zip(self.weights, self.learner.trained(), strict=True):
            w[...] = keep


class _EvalSet:
    """A labelled set and the errors of a learner on it (scored outputs only).

    The labels stay here: a learner only ever sees the encoded inputs. Errors are normalised
    by the set's own label variance (for the training set, ``train_nmse``, that of the
    training labels: 1 is the best constant on them).
    """

    def __init__(self, X, Y, concept, learner):
        self.inputs = learner.encode(X)
        self.parts = concepts.components(concept, X)  # (F, alpha G(F)), or None
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
            if self.parts is not None:  # decomp.*: how much of F and of G was learned
                out.update(decomp.decompose(*self.parts, Yhat.reshape(len(Yhat), -1)))
        return out
