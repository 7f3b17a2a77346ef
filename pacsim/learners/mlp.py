"""``kind = "mlp2"`` and ``kind = "mlp3"``: the AZLL two- and three-layer ReLU networks of
:mod:`pacsim.models.ff`, vanilla SGD (Allen-Zhu, Li & Liang, arXiv 1811.04918, Sec. 3 and 4
and the experiments).

* ``mlp2``: ``out = A ReLU(W x + b1)``; ``W`` (and ``b1``) trained;
* ``mlp3``: ``out = A ReLU(V ReLU(W x + b1) + b2)``; ``W, V`` (and ``b1, b2``) trained;

``A`` fixed unless ``train_output``. The two kinds share every setting; only the network
differs.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from .._config_base import Frozen, PosFloat
from ..models import ff
from .base import LearnerKind
from .ff import ACCEPTS, SGD, FFLearner, warmup

__all__ = ["KINDS", "MLP2Config", "MLP3Config", "make", "warmup"]


class _MLPConfig(Frozen):
    m: Annotated[int, Field(ge=1, le=65536)] = 256  #: width (of both hidden layers for mlp3)
    #: "azll": W, b1 (V, b2) ~ N(0, 1/m), A ~ N(0, eps_a^2); "experiment": AZL-ResNet's
    #: experiment preset, [W|b1] ~ N(0, 1/d_in), [V|b2] ~ N(0, 1/m), A ~ N(0, eps_a^2/m)
    init: Literal["azll", "experiment"] = "azll"
    eps_a: PosFloat = 1.0  #: output weights A ~ N(0, eps_a^2); W, b1 (V, b2) ~ N(0, 1/m)
    train_bias: bool = True  #: train b1 (and b2) (False: the theorem's fixed bias)
    train_output: bool = False  #: also train A
    #: the initial function: "keep" f; "subtract" f - f_0 (f_0 the network at init, frozen);
    #: "symmetric" (f_1 - f_2)/sqrt(2) of two copies with equal initial weights (f_0 = 0)
    f0: Literal["keep", "subtract", "symmetric"] = "keep"
    dtype: Literal["float64", "float32"] = "float64"


class MLP2Config(_MLPConfig):
    """AZLL two-layer ReLU network (see :mod:`pacsim.models.ff`)."""

    kind: Literal["mlp2"] = "mlp2"


class MLP3Config(_MLPConfig):
    """AZLL three-layer ReLU network (see :mod:`pacsim.models.ff`)."""

    kind: Literal["mlp3"] = "mlp3"


def make(cfg: MLP2Config | MLP3Config, concept, rng: np.random.Generator) -> FFLearner:
    rates = ff.default_rates(train_bias=cfg.train_bias, train_output=cfg.train_output)
    return FFLearner(cfg.kind, cfg, concept, rng, rates=rates, init=cfg.init, eps_a=cfg.eps_a)


#: The contracts of both kinds (:class:`pacsim.learners.base.LearnerKind`).
KINDS = (LearnerKind("mlp2", MLP2Config, make, warmup, SGD=SGD, ACCEPTS=ACCEPTS),
         LearnerKind("mlp3", MLP3Config, make, warmup, SGD=SGD, ACCEPTS=ACCEPTS))
