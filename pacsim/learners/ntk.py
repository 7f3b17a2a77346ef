"""``kind = "ntk"``: kernel ridge regression with the closed-form NTK of a deep ReLU network.

The infinitely wide fully connected ReLU (or LeakyReLU) network with ``depth`` hidden layers in
Arora et al.'s convention (:func:`pacsim.kernels.relu.ntk`; arXiv 1904.11955), on the
feed-forward view of the inputs: a vector concept's ``x``, or a sequence concept's tokens
concatenated (as the ``mlp2`` learner reads them). One kernel serves all ``S d`` scored
outputs. The ridge is chosen on a validation split of the training samples
(:mod:`pacsim.learners._kernel`).
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
    """Closed-form NTK of a fully connected ReLU network (see :mod:`pacsim.kernels.relu`)."""

    kind: Literal["ntk"] = "ntk"
    depth: Annotated[int, Field(ge=1, le=100)] = 1  #: hidden layers
    bias: NonNegFloat = 0.0  #: bias scale beta of every layer (0: no biases, as Arora et al.)
    leak: Annotated[float, Field(ge=0, lt=1)] = 0.0  #: LeakyReLU slope (0: ReLU)
    #: "all": every layer trained (Arora et al.); "hidden": readout fixed (AZL/AZLL's "(NTK)")
    train: Literal["all", "hidden"] = "all"
    ridges: Ridges = None  #: relative ridge candidates; None: krr.RIDGES
    val_fraction: ValFraction = krr.VAL_FRACTION  #: training share held out for selection
    max_n: PosInt = 8192  #: most training samples fit accepts (Gram matrices are O(n^2))


class NTKLearner(FlatKernelLearner):
    def kernel(self, X1, X2=None):
        c = self.cfg
        return relu.ntk(X1, X2, c.depth, bias=c.bias, leak=c.leak, train=c.train)


def make(cfg: Config, concept, rng: np.random.Generator) -> NTKLearner:
    return NTKLearner(cfg, concept)


def warmup(dtypes) -> None:
    kernels.warmup()


#: This kind's contract (:class:`pacsim.learners.base.LearnerKind`).
KIND = LearnerKind("ntk", Config, make, warmup, SGD=SGD, ACCEPTS=ACCEPTS)
