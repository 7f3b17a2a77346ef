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
"""

from __future__ import annotations

import numpy as np

from ..concepts import scored
from ..models import ff
from .base import Learner

#: Feed-forward learners read vector concepts, and sequence concepts concatenated.
ACCEPTS = ("sequence", "vector")
#: Trained by vanilla SGD (train.protocol, train.lr apply).
SGD = True
#: Inputs drawn at initialisation to size the network and to average the NTK trace over.
N_PROBE = 64


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
        self.trace = float(np.mean(ff.ntk_trace(self.params, probe, rates)))
        self._trained = [n for n, r in zip(ff.NAMES, rates, strict=True)
                         if r != 0 and getattr(self.params, n) is not None]

    def encode(self, X):
        if self.sequence:
            return ff.concat_tokens(X, self.dtype)
        return np.ascontiguousarray(X, dtype=self.dtype)

    def predict(self, inputs):
        Yhat = ff.forward(self.params, inputs)
        return Yhat.reshape(len(Yhat), self._S, self._d).astype(np.float64)

    def step_size(self, lr, units):
        return lr if units == "raw" else lr / self.trace

    def sgd_chunk(self, inputs, Y, eta, order):
        n_steps, losses = ff.sgd_chunk(self.params, inputs, self._targets(Y), eta, order,
                                       self.rates)
        return n_steps, losses[:n_steps]

    def trained(self):
        return [getattr(self.params, n) for n in self._trained]

    def batch_grad(self, inputs, Y):
        """Mean loss and, per trained array, its gradient times its relative rate (so that the
        momentum optimiser's single step size keeps ``eta_V = lr_ratio_v * eta_W``). A batch of
        ``ff.BATCH_MIN`` samples or more runs as matrix-matrix products (BLAS); the gradients
        are fresh arrays, returned as they are where the rate is 1."""
        loss, g = ff.loss_and_grad(self.params, inputs, self._targets(Y))
        rates = self.rates._asdict()
        return loss, [getattr(g, n) if rates[n] == 1 else getattr(g, n) * self.dtype.type(rates[n])
                      for n in self._trained]

    def info(self):
        return {"ntk_trace": self.trace, **self._info}

    def _targets(self, Y) -> np.ndarray:
        """Concept labels -> network targets: (n, d), or the scored positions as (n, S d)."""
        Y = scored(self.concept, Y)  # (n, S, d)
        return np.ascontiguousarray(Y.reshape(len(Y), -1), dtype=self.dtype)


def warmup(dtypes) -> None:
    ff.warmup(dtypes)
