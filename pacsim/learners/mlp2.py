"""``kind = "mlp2"``: the AZLL two-layer ReLU network of :mod:`pacsim.models.ff`, vanilla SGD.

``out = A ReLU(W x + b1)``; ``W`` (and ``b1``) trained, ``A`` fixed unless ``train_output``
(Allen-Zhu, Li & Liang, arXiv 1811.04918, Sec. 3 and the experiments).
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from .._config_base import Frozen, PosFloat
from ..models import ff
from .ff import ACCEPTS, SGD, FFLearner, warmup
from .base import LearnerKind

__all__ = ["ACCEPTS", "SGD", "Config", "make", "warmup"]


class Config(Frozen):
    """AZLL two-layer ReLU network (see :mod:`pacsim.models.ff`)."""

    kind: Literal["mlp2"] = "mlp2"
    m: Annotated[int, Field(ge=1, le=65536)] = 256  #: width
    #: "azll": W, b1 (V, b2) ~ N(0, 1/m), A ~ N(0, eps_a^2); "experiment": AZL-ResNet's
    #: experiment preset, [W|b1] ~ N(0, 1/d_in), [V|b2] ~ N(0, 1/m), A ~ N(0, eps_a^2/m)
    init: Literal["azll", "experiment"] = "azll"
    eps_a: PosFloat = 1.0  #: output weights A ~ N(0, eps_a^2); W, b1 ~ N(0, 1/m)
    train_bias: bool = True  #: train b1 (False: the theorem's fixed bias)
    train_output: bool = False  #: also train A
    #: the initial function: "keep" f; "subtract" f - f_0 (f_0 the network at init, frozen);
    #: "symmetric" (f_1 - f_2)/sqrt(2) of two copies with equal initial weights (f_0 = 0)
    f0: Literal["keep", "subtract", "symmetric"] = "keep"
    dtype: Literal["float64", "float32"] = "float64"


def make(cfg: Config, concept, rng: np.random.Generator) -> FFLearner:
    rates = ff.default_rates(train_bias=cfg.train_bias, train_output=cfg.train_output)
    return FFLearner("mlp2", cfg, concept, rng, rates=rates, init=cfg.init,
                     eps_a=cfg.eps_a)


#: This kind's contract (:class:`pacsim.learners.base.LearnerKind`).
KIND = LearnerKind("mlp2", Config, make, warmup, SGD=SGD, ACCEPTS=ACCEPTS)
