"""What the feed-forward learners share: ``resnet``, ``mlp2`` and ``mlp3`` (one module each,
with its ``Config``) wrap :mod:`pacsim.models.ff` through :class:`FFLearner`.

Inputs and outputs:

* a ``"vector"`` concept: ``X (n, d_in)`` in, ``Y (n, d)`` out (``d_out = d``);
* a ``"sequence"`` concept: the feed-forward baseline on the concatenated sequence. The input is
  the tokens at positions 1..L-1, concatenated (:func:`pacsim.models.ff.concat_tokens`,
  ``d_in = (L-1) d_x``), and the network predicts every scored position's ``d`` outputs at
  once (``d_out = S d``).

Step size: ``step_size(lr, "ntk") = lr / T`` with ``T`` the per-sample trace of the gradient
kernel of the trained arrays (weighted by their relative rates) at initialisation, computed
exactly (:func:`pacsim.models.ff.ntk_trace`) and averaged over ``N_PROBE`` inputs drawn from the
concept with a generator spawned from the ``init`` stream (so the weights do not depend on it).

Initial function (``f0``, as the ``rnn`` learner's): ``"keep"``, ``"subtract"`` (train ``f`` on
``y + f_0(x)``, ``f_0`` a frozen copy at init) or ``"symmetric"`` (two copies,
:mod:`pacsim.models.ff_sym`); none changes the kernel at init, hence the trace and step size.

Laziness (:meth:`FFLearner.laziness`): ``lazy.*`` columns measured on the first
``N_PROBE_LAZY`` probe inputs (:mod:`pacsim.learners._lazy`): movement of each trained array,
flips of the ReLU signs of every hidden layer, NTK alignment (the kernel SGD follows: each
array's term weighted by its relative rate) and the trace (:func:`pacsim.models.ff.ntk_trace`).
"""

from __future__ import annotations

import math

import numpy as np

from ..concepts import scored
from ..models import ff, ff_sym
from . import _lazy
from .base import Learner

#: Feed-forward learners read vector concepts, and sequence concepts concatenated.
ACCEPTS = ("sequence", "vector")
#: Trained by vanilla SGD (train.protocol, train.lr apply).
SGD = True
#: Inputs drawn at initialisation to size the network and to average the NTK trace over.
N_PROBE = 64
#: How many of them the laziness diagnostics (``lazy.*``) are measured on; the trace on the
#: first ``N_PROBE_TRACE``.
N_PROBE_LAZY = 32
N_PROBE_TRACE = 8


class FFLearner(Learner):
    """A :class:`pacsim.models.ff.FFParams` network; ``rates`` fixes what is trained, ``info``
    holds scalars to record besides the NTK trace."""

    def __init__(self, arch: str, cfg, concept, rng: np.random.Generator, *, rates: ff.Rates,
                 init: str | None = None, eps_a: float = 1.0, info: dict | None = None):
        self.name = arch
        self._info = dict(info or {})
        self.cfg, self.concept, self.rates = cfg, concept, rates
        self.dtype = np.dtype(cfg.dtype)
        self.sequence = concept.kind == "sequence"
        (probe_rng,) = rng.spawn(1)  # does not advance rng: the weights do not depend on it
        X, Y = concept.sample(N_PROBE, probe_rng)
        probe, targets = self.encode(X), self._targets(Y)
        self._S, self._d = scored(concept, Y[:1]).shape[1:]
        self.params = ff.init_params(arch, cfg.m, probe.shape[1], targets.shape[1], rng,
                                     self.dtype, init=init, eps_a=eps_a)
        # the trace of the model trained: f0 = "subtract" subtracts a function that does not
        # depend on the weights, and the symmetric model's kernel (K_1 + K_2)/2 is one copy's
        # at init
        self.trace = float(np.mean(ff.ntk_trace(self.params, probe, rates)))
        self._trained = [n for n, r in zip(ff.NAMES, rates, strict=True)
                         if r != 0 and getattr(self.params, n) is not None]
        self.f0 = getattr(cfg, "f0", "keep")
        self.params0 = self.params.copy()  # the initial weights (f_0 and laziness), frozen
        self.params2 = self.params.copy() if self.f0 == "symmetric" else None
        self.probe = probe[:N_PROBE_LAZY]
        self._lazy0 = None  # the laziness reference at init, measured on first use

    def encode(self, X):
        if self.sequence:
            return ff.concat_tokens(X, self.dtype)
        return np.ascontiguousarray(X, dtype=self.dtype)

    def predict(self, inputs):
        if self.params2 is not None:
            Yhat = ff_sym.forward(self.params, self.params2, inputs)
        else:
            Yhat = ff.forward(self.params, inputs)
            if self.f0 == "subtract":
                Yhat = Yhat - ff.forward(self.params0, inputs)
        return Yhat.reshape(len(Yhat), self._S, self._d).astype(np.float64)

    def step_size(self, lr, units):
        return lr if units == "raw" else lr / self.trace

    def _shifted(self, inputs, T):
        """``f0 = "subtract"``: training ``f - f_0`` on targets ``T`` is training ``f`` on
        ``T + f_0`` (same residual, same gradients)."""
        return T + ff.forward(self.params0, inputs) if self.f0 == "subtract" else T

    def sgd_chunk(self, inputs, Y, eta, order):
        T = self._targets(Y)
        if self.params2 is not None:
            n_steps, losses = ff_sym.sgd_chunk(self.params, self.params2, inputs, T, eta, order,
                                               self.rates)
        else:
            n_steps, losses = ff.sgd_chunk(self.params, inputs, self._shifted(inputs, T), eta,
                                           order, self.rates)
        return n_steps, losses[:n_steps]

    def _copies(self):
        return (self.params,) if self.params2 is None else (self.params, self.params2)

    def trained(self):
        return [getattr(p, n) for p in self._copies() for n in self._trained]

    def batch_grad(self, inputs, Y):
        """Mean loss and, per trained array, its gradient times its relative rate (so that the
        momentum optimiser's single step size keeps ``eta_V = lr_ratio_v * eta_W``); both
        copies' arrays for ``f0 = "symmetric"``. A batch of ``ff.BATCH_MIN`` samples or more
        runs as matrix-matrix products (BLAS); a gradient whose rate is 1 is returned as it
        is."""
        T = self._targets(Y)
        if self.params2 is not None:
            loss, *gs = ff_sym.loss_and_grad(self.params, self.params2, inputs, T)
        else:
            loss, g = ff.loss_and_grad(self.params, inputs, self._shifted(inputs, T))
            gs = [g]
        rates = self.rates._asdict()
        return loss, [getattr(g, n) if rates[n] == 1 else getattr(g, n) * self.dtype.type(rates[n])
                      for g in gs for n in self._trained]

    def laziness(self):
        """The ``lazy.*`` diagnostics (module docstring); the symmetric model counts both
        copies: movements and flips over both, kernel and trace the mean of the copies'."""
        copies = self._copies()

        def measure(p):
            return (_ff_signs(p, self.probe), self._gram(p),
                    float(np.mean(ff.ntk_trace(p, self.probe[:N_PROBE_TRACE], self.rates))))

        if self._lazy0 is None:
            self._lazy0 = measure(self.params0)
        signs0, gram0, trace0 = self._lazy0
        out = {f"move_{n}": _lazy.rel_move([getattr(p, n) for p in copies],
                                           [getattr(self.params0, n)] * len(copies))
               for n in self._trained}
        if not all(np.isfinite(getattr(p, n)).all() for p in copies for n in self._trained):
            return {**out, "sign_flip": math.nan, "ntk_align": math.nan,
                    "ntk_align_c": math.nan, "trace": math.nan, "trace0": trace0}
        now = [measure(p) for p in copies]
        gram = sum(g for _, g, _ in now) / len(now)
        return {**out,
                "sign_flip": float(np.mean([_lazy.flip_fraction(signs0, s) for s, _, _ in now])),
                "ntk_align": _lazy.alignment(gram0, gram),
                "ntk_align_c": _lazy.centred_alignment(gram0, gram),
                "trace": float(sum(t for _, _, t in now) / len(now)), "trace0": trace0}

    def _gram(self, p) -> np.ndarray:
        """Tangent kernel (n, n) on the probes of the sum of the outputs over the scored
        positions (mean over the ``d`` output coordinates), each array's term weighted by its
        rate (the kernel SGD follows), from per-input gradients (a target one below the
        output gives the residual 1)."""
        X = self.probe
        out = ff.forward(p, X)
        rates = self.rates._asdict()
        G = np.zeros((len(X), len(X)))
        for s in range(self._d):
            rows = []
            for k in range(len(X)):
                T = out[k : k + 1].reshape(1, self._S, self._d).copy()
                T[0, :, s] -= 1.0
                _, g = ff.loss_and_grad(p, X[k : k + 1], T.reshape(1, -1))
                rows.append(np.concatenate([math.sqrt(rates[n]) * getattr(g, n).ravel()
                                            for n in self._trained]))
            J = np.stack(rows).astype(np.float64)
            G += J @ J.T
        return G / self._d

    def info(self):
        return {"ntk_trace": self.trace, "f0": self.f0, **self._info}

    def _targets(self, Y) -> np.ndarray:
        """Concept labels -> network targets: (n, d), or the scored positions as (n, S d)."""
        Y = scored(self.concept, Y)  # (n, S, d)
        return np.ascontiguousarray(Y.reshape(len(Y), -1), dtype=self.dtype)


def _ff_signs(p: ff.FFParams, X: np.ndarray) -> np.ndarray:
    """Signs of the ReLU pre-activations of every hidden layer on ``X`` (n, d_in), flattened
    per input: ``W x + b1`` and, for mlp3 and resnet, the second layer's."""
    P = [None if a is None else a.astype(np.float64) for a in (p.W, p.b1, p.V, p.b2, p.A)]
    W, b1, V, b2, A = P
    z1 = X.astype(np.float64) @ W.T + b1
    h1 = np.maximum(z1, 0.0)
    if p.arch == "mlp2":
        return z1 > 0
    z2 = (h1 if p.arch == "mlp3" else h1 @ A.T) @ V.T + b2
    return np.concatenate([z1 > 0, z2 > 0], axis=1)


def warmup(dtypes) -> None:
    ff.warmup(dtypes)
    ff_sym.warmup(dtypes)
