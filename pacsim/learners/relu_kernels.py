"""``kind = "ntk"`` and ``kind = "nngp"``: kernel ridge regression with the closed-form NTK or
NNGP kernel of an infinitely wide, fully connected ReLU (or LeakyReLU) network with ``depth``
hidden layers, in Arora et al.'s convention (:mod:`pacsim.kernels.relu`; arXiv 1904.11955).

* ``ntk``: the tangent kernel of the whole network (``train = "all"``, Arora et al.) or of its
  hidden layers (``train = "hidden"``, the readout fixed: AZL/AZLL's "(NTK)" baselines);
* ``nngp``: the output covariance at initialisation, the infinite-width limit of fitting only
  the readout of a random network (the conjugate kernel).

Both read the feed-forward view of the inputs: a vector concept's ``x``, or a sequence
concept's tokens concatenated (as the ``mlp2`` learner reads them). One kernel serves all
``S d`` scored outputs. The ridge is chosen on a validation split of the training samples
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

__all__ = ["KINDS", "NNGPConfig", "NTKConfig", "make", "warmup"]


class _ReLUKernelConfig(KernelConfig):
    depth: Annotated[int, Field(ge=1, le=100)] = 1  #: hidden layers
    bias: NonNegFloat = 0.0  #: bias scale beta of every layer (0: no biases, as Arora et al.)
    leak: Annotated[float, Field(ge=0, lt=1)] = 0.0  #: LeakyReLU slope (0: ReLU)
    ridges: Ridges = None  #: relative ridge candidates; None: krr.RIDGES
    val_fraction: ValFraction = krr.VAL_FRACTION  #: training share held out for selection
    max_n: PosInt = 8192  #: most training samples fit accepts (Gram matrices are O(n^2))


class NTKConfig(_ReLUKernelConfig):
    """Closed-form NTK of a fully connected ReLU network (see :mod:`pacsim.kernels.relu`)."""

    kind: Literal["ntk"] = "ntk"
    #: "all": every layer trained (Arora et al.); "hidden": readout fixed (AZL/AZLL's "(NTK)")
    train: Literal["all", "hidden"] = "all"


class NNGPConfig(_ReLUKernelConfig):
    """Closed-form NNGP of a fully connected ReLU network (see :mod:`pacsim.kernels.relu`)."""

    kind: Literal["nngp"] = "nngp"


class ReLUKernelLearner(FlatKernelLearner):
    def kernel(self, X1, X2=None):
        c = self.cfg
        if c.kind == "ntk":
            return relu.ntk(X1, X2, c.depth, bias=c.bias, leak=c.leak, train=c.train)
        return relu.nngp(X1, X2, c.depth, bias=c.bias, leak=c.leak)


def make(cfg: NTKConfig | NNGPConfig, concept, rng: np.random.Generator) -> ReLUKernelLearner:
    return ReLUKernelLearner(cfg, concept)


def warmup(dtypes) -> None:
    kernels.warmup()


#: The contracts of both kinds (:class:`pacsim.learners.base.LearnerKind`).
KINDS = (LearnerKind("ntk", NTKConfig, make, warmup, SGD=SGD, ACCEPTS=ACCEPTS),
         LearnerKind("nngp", NNGPConfig, make, warmup, SGD=SGD, ACCEPTS=ACCEPTS))
