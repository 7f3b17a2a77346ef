"""``kind = "resnet"``: the AZL-ResNet of :mod:`pacsim.models.ff`, trained by vanilla SGD.

``out1 = A ReLU(W x + b1)``, ``out = out1 + A ReLU(V out1 + b2)``; ``W, b1, V, b2`` trained
(``eta_V = lr_ratio_v * eta_W``), ``A`` fixed (Allen-Zhu & Li, arXiv 1905.10337: the form
analysed in Sec. 6 and its training algorithm).
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from .._config_base import Frozen, PosFloat
from ..models import ff
from .base import LearnerError, LearnerKind
from .ff import ACCEPTS, SGD, FFLearner, warmup

__all__ = ["ACCEPTS", "SGD", "Config", "make", "theorem_ratio", "warmup"]


class Config(Frozen):
    """AZL-ResNet with the bottleneck second block (see :mod:`pacsim.models.ff`)."""

    kind: Literal["resnet"] = "resnet"
    m: Annotated[int, Field(ge=1, le=65536)] = 256  #: width of both blocks
    init: Literal["theory", "experiment"] = "theory"  #: initialisation preset (ff.init_std)
    #: eta_V / eta_W; "theorem": Theorem 1's ratio for a ``family = "resnet"`` target
    lr_ratio_v: PosFloat | Literal["theorem"] = 1.0
    #: the initial function: "keep" f; "subtract" f - f_0 (f_0 the network at init, frozen);
    #: "symmetric" (f_1 - f_2)/sqrt(2) of two copies with equal initial weights (f_0 = 0)
    f0: Literal["keep", "subtract", "symmetric"] = "keep"
    dtype: Literal["float64", "float32"] = "float64"


def make(cfg: Config, concept, rng: np.random.Generator) -> FFLearner:
    ratio = theorem_ratio(concept) if cfg.lr_ratio_v == "theorem" else cfg.lr_ratio_v
    return FFLearner("resnet", cfg, concept, rng, init=cfg.init,
                     rates=ff.default_rates(lr_ratio_v=ratio), info={"lr_ratio_v": ratio})


def theorem_ratio(concept) -> float:
    """Theorem 1's ``eta_v / eta_w = (alpha p_G C_s(G) / (p_F C_s(F)))^2`` of an AZL-ResNet
    Concept-1 target (:mod:`pacsim.concepts.resnet`), ``Theta~`` constants taken as 1.

    ``C_s`` is the concept's recorded class complexity (its constant ``C*`` cancels in the
    ratio); ``p_F``, ``p_G`` are its units per coordinate.
    """
    if getattr(concept, "family", None) != "resnet":
        raise LearnerError('model.lr_ratio_v = "theorem" needs a concept.family = "resnet" '
                           f"target (Theorem 1's alpha, p and C_s); got {concept.family!r}")
    info = concept.info()
    log_ratio = float(info["G_log10_C_s_shape"]) - float(info["F_log10_C_s_shape"])
    return ff.theorem_lr_ratio(concept.alpha, concept.a_F.shape[1], concept.a_G.shape[1],
                               1.0, math.pow(10.0, log_ratio))


#: This kind's contract (:class:`pacsim.learners.base.LearnerKind`).
KIND = LearnerKind("resnet", Config, make, warmup, SGD=SGD, ACCEPTS=ACCEPTS)
