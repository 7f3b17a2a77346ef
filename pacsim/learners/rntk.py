"""``kind = "rntk"``: kernel ridge regression with the recurrent NTK of pacsim's RNN.

The infinite-width NTK of exactly the ``rnn`` learner's network with its default cell and
initialisation (Elman ReLU, ``W ~ N(0, 2/m)``) with respect to the trained matrices (``train``:
``"W"``, ``"WA"``, or the mode's: W for azl and plain, W and A for pg21):
:func:`pacsim.kernels.rntk.rntk` on the inputs encoded as the ``rnn`` learner encodes them
(:func:`pacsim.models.rnn.encode_inputs` with ``mode`` and ``eps_x``), at the concept's scored
positions. Alemohammad et al. 2021 (arXiv 2006.10246), adapted: docs/kernels.md.

``blocks = "diag"``: one kernel per scored position (``S`` kernels of size n x n, memory
``8 n^2 S`` bytes; cross-position terms dropped); ``"full"``: the joint kernel over (sample,
position) pairs, one ``(n S) x (n S)`` system (memory ``8 n^2 S^2`` bytes, time
``(n S)^3``): exactly the regression of the linearised network trained on the summed
per-position loss. Output coordinates are independent (``delta_ss'``). The output scale
``lam`` and the readout variance only scale the kernel, and the ridge is relative to its
trace, so they have no effect and are not settings.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from .. import kernels
from .._config_base import PosInt
from ..kernels import krr
from ..kernels import rntk as rntk_kernel
from ..models import rnn
from ._kernel import (
    SGD,
    EpsX,
    KernelConfig,
    KernelLearner,
    Ridges,
    RNNMode,
    RNNTrain,
    ValFraction,
    check_rnn_concept,
    check_rnn_view,
    kernel_info,
    per_output,
    rnn_inputs,
    rnn_trained,
)
from .base import LearnerKind

__all__ = ["ACCEPTS", "SGD", "Config", "check_concept", "make", "warmup"]

#: Config-time check: the RNN view's mode must score the concept's positions (``_kernel``).
check_concept = check_rnn_concept

#: The RNTK reads sequences only.
ACCEPTS = ("sequence",)


class Config(KernelConfig):
    """Recurrent NTK of the AZL-mode RNN (see :mod:`pacsim.kernels.rntk`)."""

    kind: Literal["rntk"] = "rntk"
    mode: RNNMode = "azl"  #: the rnn learner's mode (input encoding, initial scales)
    eps_x: EpsX = 0.1  #: token scale of the azl and pg21 encodings, as the rnn learner's
    train: RNNTrain = None  #: trained matrices: "W" or "WA"; None: the mode's
    blocks: Literal["diag", "full"] = "diag"  #: per-position kernels, or the joint kernel
    ridges: Ridges = None  #: relative ridge candidates; None: krr.RIDGES
    val_fraction: ValFraction = krr.VAL_FRACTION  #: training share held out for selection
    max_n: PosInt = 4096  #: most training samples fit accepts (Gram: 8 n^2 S bytes)


class RNTKLearner(KernelLearner):
    def __init__(self, cfg: Config, concept):
        check_rnn_view(cfg, concept)
        super().__init__(cfg, concept)
        self.positions = np.asarray(concept.positions)

    def encode(self, X):
        return rnn_inputs(self.cfg, X)

    def kernel(self, X1, X2=None) -> np.ndarray:
        """The kernel between encoded inputs over the ``S d`` scored outputs
        (:func:`pacsim.learners._kernel.per_output` layout)."""
        c = self.cfg
        K = rntk_kernel.rntk(X1, X2, self.positions, train=rnn_trained(c), blocks=c.blocks,
                             w_var=rnn.AZL_W_VAR, a_var=rnn.mode_spec(c.mode).a_var)
        return per_output(K, self.d, c.blocks)

    def _fit(self, X, targets, seed):
        self.model = krr.fit(self.kernel, X, targets.reshape(len(targets), -1),
                             ridges=self.ridges, val_fraction=self.cfg.val_fraction, seed=seed)
        return kernel_info(self.model)

    def _predict(self, X):
        return self.model.predict(X)


def make(cfg: Config, concept, rng: np.random.Generator) -> RNTKLearner:
    return RNTKLearner(cfg, concept)


def warmup(dtypes) -> None:
    kernels.warmup()


#: This kind's contract (:class:`pacsim.learners.base.LearnerKind`).
KIND = LearnerKind("rntk", Config, make, warmup, SGD=SGD, ACCEPTS=ACCEPTS,
                   concept_check=check_concept)
