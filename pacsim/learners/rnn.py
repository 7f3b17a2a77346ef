"""``kind = "rnn"``: the Elman RNN of :mod:`pacsim.models.rnn`, trained by vanilla SGD."""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from .._config_base import Frozen, PosFloat
from ..concepts import n_scored
from ..models import rnn
from .base import Learner

#: The RNN reads sequences only.
ACCEPTS = ("sequence",)
#: Trained by vanilla SGD (train.protocol, train.lr apply).
SGD = True

class Config(Frozen):
    """Elman ReLU RNN in AZL mode (see :mod:`pacsim.models.rnn`)."""

    kind: Literal["rnn"] = "rnn"
    mode: Literal["azl"] = "azl"
    m: Annotated[int, Field(ge=1, le=65536)] = 256  #: width
    eps_x: Annotated[float, Field(gt=0, le=1)] = 0.1  #: token scale of the AZL input normalisation
    lam: PosFloat = 1.0  #: output scale lambda
    dtype: Literal["float64", "float32"] = "float64"


class RNNLearner(Learner):
    name = "rnn"

    def __init__(self, cfg: Config, concept, rng: np.random.Generator):
        self.cfg, self.concept = cfg, concept
        self.dtype = np.dtype(cfg.dtype)
        d_x = concept.d_x
        self.positions = concept.positions
        self.params = rnn.init_params(cfg.m, d_x + 1, concept.d, rng, self.dtype)
        self._S = n_scored(concept)

    def encode(self, X):
        return rnn.azl_inputs(X, self.cfg.eps_x, self.dtype)

    def predict(self, inputs):
        Yhat = rnn.forward(self.params, inputs, self.cfg.lam)
        return Yhat[:, self.positions].astype(np.float64)

    def step_size(self, lr, units):
        if units == "raw":
            return lr
        c = self.cfg
        return lr / rnn.ntk_trace(c.m, self.concept.L, c.eps_x, self.positions, c.lam)

    def sgd_chunk(self, inputs, Y, eta, order):
        n_steps, losses = rnn.sgd_chunk(self.params, inputs, Y, eta, self.cfg.lam,
                                        self.positions, order)
        return n_steps, losses[:n_steps]

    def trained(self):
        return [self.params.W]

    def batch_grad(self, inputs, Y):
        loss, g = rnn.loss_and_grad(self.params, inputs, Y, self.cfg.lam, self.positions)
        return loss, [g.W]


def make(cfg: Config, concept, rng: np.random.Generator) -> RNNLearner:
    return RNNLearner(cfg, concept, rng)


def warmup(dtypes) -> None:
    rnn.warmup(dtypes)
