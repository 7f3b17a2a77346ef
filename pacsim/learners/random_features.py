"""``kind = "random_features"``: a network frozen at initialisation, only a ridge readout fitted.

The network is drawn from the run's ``init`` stream exactly as the SGD learner of that network
draws it (:func:`pacsim.learners._kernel.draw_net`); its hidden layer is the feature map, and a
linear readout (no intercept) is fitted by ridge regression (:func:`pacsim.kernels.krr
.fit_features`' relative-ridge convention; ridge 0 is least squares):

* ``net = "rnn"``: the hidden states ``h_j`` (:func:`pacsim.models.rnn.states`) at the scored
  positions; ``readout = "per-position"``: one readout per position (as if each position had
  its own ``B``); ``"shared"``: one readout for every position (the network's single ``B``).
* ``net = "mlp2"``, ``"mlp3"``, ``"resnet"``: the vector the network's readout ``A``
  multiplies (the last hidden layer; ``h1 + h2`` for the ResNet), one readout for all ``S d``
  outputs.
* ``net = "auto"``: ``"rnn"`` for a sequence concept, ``"mlp2"`` for a vector concept.

One ridge serves every readout. It is chosen on a validation split of the training *samples*
(all positions of a sample fall on the same side): each candidate is fitted on the other
samples and scored by the validation squared error summed over the readouts, and the best
(ties: the larger ridge) is refitted on all ``n`` samples. At infinite width the RNN's
per-position readout becomes kernel regression with :func:`pacsim.kernels.rntk.rnngp`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import model_validator
from scipy.linalg import LinAlgError

from .._config_base import PosInt
from ..kernels import krr
from ..models import rnn
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
    ValFraction,
    Width,
    check_init,
    check_rnn_concept,
    check_rnn_view,
    draw_net,
    ff_features,
    flat_inputs,
    net_accepts,
    resolve_net,
    rnn_inputs,
)
from .base import LearnerKind

__all__ = ["ACCEPTS", "SGD", "Config", "check_concept", "accepts", "fit_readouts", "make", "warmup"]

#: Config-time check: the RNN view's mode must score the concept's positions (``_kernel``).
check_concept = check_rnn_concept


class Config(KernelConfig):
    """Ridge readout on the hidden layer of a width-m network frozen at initialisation."""

    kind: Literal["random_features"] = "random_features"
    net: Net = "auto"  #: network: "rnn", "mlp2", "mlp3", "resnet"; "auto": rnn or mlp2
    m: Width = 256  #: width (the number of features)
    mode: RNNMode = "azl"  #: RNN only: the rnn learner's mode (encoding, scales)
    #: feed-forward nets only: the SGD learner's init preset (None: its default)
    init: FFInit = None
    eps_x: EpsX = 0.1  #: RNN only: token scale of the azl and pg21 encodings
    readout: Literal["per-position", "shared"] = "per-position"  #: RNN only
    ridges: Ridges = None  #: relative ridge candidates; None: krr.RIDGES
    val_fraction: ValFraction = krr.VAL_FRACTION  #: training share held out for selection
    max_n: PosInt = 8192  #: most training samples fit accepts (n S m features)

    @model_validator(mode="after")
    def _init_fits_net(self):
        return check_init(self)


def accepts(cfg: Config) -> tuple[str, ...]:
    """Concept kinds this configuration can learn (``net = "rnn"``: sequences only)."""
    return net_accepts(cfg)


def fit_readouts(blocks, ridges, val_fraction: float, seed: int):
    """Ridge readouts sharing one ridge, chosen on a validation split of the samples.

    Parameters
    ----------
    blocks : list of (F, T)
        One pair per readout: features ``F (n, r, p)`` and targets ``T (n, r, k)`` of the same
        ``n`` samples, ``r`` rows per sample (a readout fits ``T[i, a] ~ F[i, a] @ coef``).
    ridges, val_fraction, seed
        Relative ridge grid and the split (:func:`pacsim.kernels.krr.split`).

    Returns
    -------
    (coefs, ridge, val_mse)
        The ``(p, k)`` coefficients of each readout refitted on all ``n`` samples, the chosen
        ridge, and its validation error (summed over readouts; mean over validation rows of
        the squared error summed over outputs, :func:`pacsim.kernels.krr.mse`).
    """
    n = blocks[0][0].shape[0]
    fit, val = krr.split(n, val_fraction, seed)
    rs = [float(r) for r in ridges]
    i, records = krr.choose(
        [({}, r) for r in rs],
        lambda i: sum(krr.mse(_rows(F[val]) @ _coef(F[fit], T[fit], rs[i]), _rows(T[val]))
                      for F, T in blocks))
    ridge, val_mse = records[i].ridge, records[i].val_mse
    coefs = [_coef(F, T, ridge) for F, T in blocks]
    if not all(np.isfinite(coef).all() for coef in coefs):
        raise LinAlgError(f"the readout refitted with the chosen ridge {ridge:g} on all "
                          f"{n} samples is not finite")
    return coefs, ridge, val_mse


def _rows(A: np.ndarray) -> np.ndarray:
    """``(n, r, q)`` -> ``(n r, q)``, sample-major."""
    return A.reshape(-1, A.shape[-1])


def _coef(F, T, ridge):
    """Readout coefficients ``(p, k)`` for one relative ridge, from all the rows given."""
    return krr.ridge_coef(_rows(F), _rows(T), float(ridge))


class RandomFeaturesLearner(KernelLearner):
    def __init__(self, cfg: Config, concept, rng: np.random.Generator):
        super().__init__(cfg, concept)
        self.net = resolve_net(cfg.net, concept.kind)
        check_rnn_view(cfg, concept, self.net)
        self.params = draw_net(self.net, cfg.m, concept, rng, cfg.mode, cfg.init)
        self.positions = None if concept.positions is None else np.asarray(concept.positions)

    def encode(self, X):
        return rnn_inputs(self.cfg, X) if self.net == "rnn" else flat_inputs(self.concept, X)

    def features(self, inputs) -> np.ndarray:
        """Features ``(n, S, m)`` (RNN: hidden states at the scored positions) or ``(n, 1, m)``
        (feed-forward: the readout's input), float64."""
        if self.net == "rnn":
            return rnn.states(self.params, inputs)[:, self.positions]
        return ff_features(self.params, inputs)[:, None, :]

    def _blocks(self, F, T):
        """(features, targets) pairs, one per readout (targets ``(n, S, d)``)."""
        if self.net != "rnn":
            return [(F, T.reshape(len(T), 1, -1))]
        if self.cfg.readout == "shared":
            return [(F, T)]
        return [(F[:, j:j + 1], T[:, j:j + 1]) for j in range(self.S)]

    def _fit(self, inputs, targets, seed):
        blocks = self._blocks(self.features(inputs), targets)
        self.coefs, ridge, val_mse = fit_readouts(blocks, self.ridges, self.cfg.val_fraction,
                                                  seed)
        return {"net": self.net, "ridge": ridge, "val_mse": val_mse}

    def _predict(self, inputs):
        F = self.features(inputs)
        if self.net == "rnn" and self.cfg.readout == "per-position":
            return np.stack([F[:, j] @ c for j, c in enumerate(self.coefs)], axis=1)
        (coef,) = self.coefs
        return F @ coef  # (n, S, d) for the shared RNN readout, (n, 1, S d) otherwise


def make(cfg: Config, concept, rng: np.random.Generator) -> RandomFeaturesLearner:
    return RandomFeaturesLearner(cfg, concept, rng)


def warmup(dtypes) -> None:
    """Nothing to compile (NumPy and BLAS only)."""


#: This kind's contract (:class:`pacsim.learners.base.LearnerKind`).
KIND = LearnerKind("random_features", Config, make, warmup, SGD=SGD, ACCEPTS=ACCEPTS,
                   narrow=accepts, concept_check=check_concept)
