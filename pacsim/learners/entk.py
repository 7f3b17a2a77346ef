"""``kind = "entk"``: kernel ridge regression with the empirical NTK of a network at init.

The finite-width NTK (Gram matrix of the output gradients with respect to the matrices SGD
trains, :mod:`pacsim.kernels.entk`) of a network drawn from the run's ``init`` stream exactly
as the SGD learner of that network draws it, so one seed gives both the same initial network:

* ``net = "rnn"``: the ``rnn`` learner's network (its default ReLU cell and init, ``mode``,
  width ``m``) on its encoded inputs, W (``train = "W"``) or W and A (``"WA"``; default: the
  mode's) trained, one kernel per scored position
  (``blocks = "diag"``) or the joint kernel (``"full"``), averaged over the ``d`` output
  coordinates (:func:`pacsim.kernels.entk.rnn`, ``per_width=True``: it tends to the ``rntk``
  learner's kernel as ``m`` grows). Cost ``O(n^2 (S L)^2 m)`` time and ``O(n S d L m)``
  memory: a diagnostic for small ``n``.
* ``net = "mlp2"``, ``"mlp3"``, ``"resnet"``: the feed-forward learners' networks (default
  presets, hidden weights and biases trained, ``A`` fixed; the ResNet's ``V`` at
  ``lr_ratio_v = 1``) on the feed-forward view of the inputs, one kernel averaged over the
  ``S d`` outputs (:func:`pacsim.kernels.entk.mlp`, :func:`pacsim.kernels.entk.azl_bottleneck`).
* ``net = "auto"``: ``"rnn"`` for a sequence concept, ``"mlp2"`` for a vector concept.

The kernel is that of the network at initialisation, the regression is from a zero function
(the network's initial output is not added), as for the closed-form NTKs.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import model_validator

from .._config_base import PosInt
from ..kernels import entk, krr
from ._kernel import (
    ACCEPTS,
    SGD,
    EpsX,
    FFInit,
    KernelConfig,
    KernelLearner,
    Net,
    Ridges,
    RNNMode,
    RNNTrain,
    ValFraction,
    Width,
    check_init,
    check_rnn_concept,
    check_rnn_view,
    draw_net,
    flat_inputs,
    kernel_info,
    net_accepts,
    per_output,
    resolve_net,
    rnn_inputs,
    rnn_trained,
)
from .base import LearnerKind

__all__ = ["ACCEPTS", "SGD", "Config", "check_concept", "accepts", "make", "warmup"]

#: Config-time check: the RNN view's mode must score the concept's positions (``_kernel``).
check_concept = check_rnn_concept

#: Largest ``(rows, L, n2, L)`` input-Gram block of the RNN kernel, in float64 entries (160 MB).
RNN_BLOCK = 20_000_000


class Config(KernelConfig):
    """Empirical NTK at initialisation of a width-m network."""

    kind: Literal["entk"] = "entk"
    net: Net = "auto"  #: network: "rnn", "mlp2", "mlp3", "resnet"; "auto": rnn or mlp2
    m: Width = 256  #: width
    mode: RNNMode = "azl"  #: RNN only: the rnn learner's mode (encoding, scales)
    #: feed-forward nets only: the SGD learner's init preset (None: its default)
    init: FFInit = None
    eps_x: EpsX = 0.1  #: RNN only: token scale of the azl and pg21 encodings
    train: RNNTrain = None  #: RNN only: trained matrices, "W" or "WA"; None: the mode's
    blocks: Literal["diag", "full"] = "diag"  #: RNN only: per-position or joint kernel
    ridges: Ridges = None  #: relative ridge candidates; None: krr.RIDGES
    val_fraction: ValFraction = krr.VAL_FRACTION  #: training share held out for selection
    #: most training samples fit accepts (the RNN's eNTK costs O(n^2 (S L)^2 m))
    max_n: PosInt = 2048

    @model_validator(mode="after")
    def _init_fits_net(self):
        return check_init(self)


def accepts(cfg: Config) -> tuple[str, ...]:
    """Concept kinds this configuration can learn (``net = "rnn"``: sequences only)."""
    return net_accepts(cfg)


class ENTKLearner(KernelLearner):
    def __init__(self, cfg: Config, concept, rng: np.random.Generator):
        super().__init__(cfg, concept)
        self.net = resolve_net(cfg.net, concept.kind)
        check_rnn_view(cfg, concept, self.net)
        self.params = draw_net(self.net, cfg.m, concept, rng, cfg.mode, cfg.init)
        self.positions = None if concept.positions is None else np.asarray(concept.positions)

    def encode(self, X):
        return rnn_inputs(self.cfg, X) if self.net == "rnn" else flat_inputs(self.concept, X)

    def kernel(self, X1, X2=None) -> np.ndarray:
        """The eNTK between inputs, over the scored outputs (``per_output`` layout for the RNN,
        one 2-D kernel for the feed-forward nets)."""
        p = self.params
        if self.net == "rnn":
            return per_output(self._rnn_kernel(X1, X2), self.d, self.cfg.blocks)
        if self.net == "resnet":  # AZL's bottleneck form: W (x, 1), V (out1, 1)
            return entk.azl_bottleneck(X1, X2, W=np.column_stack([p.W, p.b1]),
                                       V=np.column_stack([p.V, p.b2]), A=p.A)
        weights = [p.W] if self.net == "mlp2" else [p.W, p.V]
        biases = [p.b1] if self.net == "mlp2" else [p.b1, p.b2]
        return entk.mlp(X1, X2, weights=weights, biases=biases, readout=p.A)

    def _rnn_kernel(self, X1, X2):
        """:func:`pacsim.kernels.entk.rnn` in blocks of rows of ``X1``, so that its input Gram
        ``(rows, L, n2, L)`` stays under :data:`RNN_BLOCK` entries."""
        c = self.cfg

        def k(A, B):
            return entk.rnn(self.params, A, B, self.positions, train=rnn_trained(c),
                            blocks=c.blocks, per_width=True)

        X2_ = X1 if X2 is None else X2
        n2, L = X2_.shape[0], X1.shape[1]
        rows = max(1, RNN_BLOCK // (L * n2 * L))
        if rows >= len(X1):
            return k(X1, X2)
        return np.concatenate([k(X1[i:i + rows], X2_) for i in range(0, len(X1), rows)])

    def _fit(self, X, targets, seed):
        self.model = krr.fit(self.kernel, X, targets.reshape(len(targets), -1),
                             ridges=self.ridges, val_fraction=self.cfg.val_fraction, seed=seed)
        return {"net": self.net, **kernel_info(self.model)}

    def _predict(self, X):
        return self.model.predict(X)


def make(cfg: Config, concept, rng: np.random.Generator) -> ENTKLearner:
    return ENTKLearner(cfg, concept, rng)


def warmup(dtypes) -> None:
    """Nothing to compile (NumPy and BLAS only)."""


#: This kind's contract (:class:`pacsim.learners.base.LearnerKind`).
KIND = LearnerKind("entk", Config, make, warmup, SGD=SGD, ACCEPTS=ACCEPTS,
                   narrow=accepts, concept_check=check_concept)
