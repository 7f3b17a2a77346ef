"""``kind = "nngp"``: kernel ridge regression with the NNGP kernel of a deep ReLU network.

The output covariance at initialisation of the infinitely wide fully connected ReLU (or
LeakyReLU) network with ``depth`` hidden layers (:func:`pacsim.kernels.relu.nngp`, Arora et al.
2019's convention): the infinite-width limit of fitting only the readout of a random network
("random features", the conjugate kernel). Inputs and outputs as for ``kind = "ntk"``.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from .. import kernels
from .._config_base import NonNegFloat, PosInt
from ..kernels import krr, relu
from ._kernel import ACCEPTS, SGD, FlatKernelLearner, KernelConfig, Ridges, ValFraction
from .base import LearnerKind

__all__ = ["ACCEPTS", "SGD", "Config", "make", "warmup"]


class Config(KernelConfig):
    """Closed-form NNGP of a fully connected ReLU network (see :mod:`pacsim.kernels.relu`)."""

    kind: Literal["nngp"] = "nngp"
    depth: Annotated[int, Field(ge=1, le=100)] = 1  #: hidden layers
    bias: NonNegFloat = 0.0  #: bias scale beta of every layer (0: no biases)
    leak: Annotated[float, Field(ge=0, lt=1)] = 0.0  #: LeakyReLU slope (0: ReLU)
    ridges: Ridges = None  #: relative ridge candidates; None: krr.RIDGES
    val_fraction: ValFraction = krr.VAL_FRACTION  #: training share held out for selection
    max_n: PosInt = 8192  #: most training samples fit accepts (Gram matrices are O(n^2))


class NNGPLearner(FlatKernelLearner):
    def kernel(self, X1, X2=None):
        c = self.cfg
        return relu.nngp(X1, X2, c.depth, bias=c.bias, leak=c.leak)


def make(cfg: Config, concept, rng: np.random.Generator) -> NNGPLearner:
    return NNGPLearner(cfg, concept)


def warmup(dtypes) -> None:
    kernels.warmup()


#: This kind's contract (:class:`pacsim.learners.base.LearnerKind`).
KIND = LearnerKind("nngp", Config, make, warmup, SGD=SGD, ACCEPTS=ACCEPTS)
