"""What the closed-form (kernel) learners share: settings, fitting protocol, inputs, networks.

Every kernel learner (``ntk``, ``nngp``, ``rntk``, ``entk``, ``random_features``, ``poly``,
``gaussian``, ``linear``; one module each) is a :class:`KernelLearner`:

* :meth:`KernelLearner.fit` receives the first ``n`` training samples only (``pacsim.train.run``
  calls it at every checkpoint). It refuses ``n > max_n`` (:class:`LearnerError`), turns the
  concept's labels into the scored outputs ``(n, S, d)`` (:func:`pacsim.concepts.scored`) and
  fits them with :mod:`pacsim.kernels.krr`, which chooses the ridge (and any kernel parameter)
  on a validation split carved from those ``n`` samples. The split's seed is drawn from the
  generator ``fit`` is given, so the choice is deterministic per run seed. Test labels never
  reach a learner: :meth:`predict` returns predictions and nothing else.
* Inputs: the feed-forward view (:func:`flat_inputs`: a vector concept's ``x``, or a sequence
  concept's tokens concatenated as for the ``mlp2`` learner) or the RNN view
  (:func:`rnn_inputs`: the encoding of :func:`pacsim.models.rnn.encode_inputs`, as for the
  ``rnn`` learner).
* Multi-output labels: a kernel shared by every output (the fully connected kernels) is one
  2-D Gram matrix for all ``S d`` outputs; the recurrent kernels are per scored position
  (:func:`per_output`).

Finite-width learners (``entk``, ``random_features``) draw the network of :func:`draw_net` from
the run's ``init`` stream exactly as the SGD learner of that network draws it, so one seed gives
the same initial network to both.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Field, field_validator

from .. import concepts
from .._config_base import Frozen, NonNegFloat
from ..concepts import n_scored, scored
from ..kernels import krr
from ..models import ff, rnn
from . import _scale
from . import rnn as rnn_learner
from .base import Learner, LearnerError

#: Closed-form learners read vector concepts and (concatenated, or as sequences) sequence ones.
ACCEPTS = ("sequence", "vector")
#: Fitted in closed form: the SGD keys of [base.train] (lr, epochs, optimizer) do not apply.
SGD = False
#: Networks of the finite-width learners: ``"auto"`` is ``"rnn"`` for a sequence concept and
#: ``"mlp2"`` for a vector concept.
Net = Literal["auto", "rnn", "mlp2", "mlp3", "resnet"]


#: ``ridges``: relative ridges (multiples of trace(K)/n) to choose from; ``None``: krr.RIDGES.
Ridges = Annotated[tuple[NonNegFloat, ...], Field(min_length=1)] | None
#: ``val_fraction``: share of the n training samples held out to choose hyper-parameters.
ValFraction = Annotated[float, Field(gt=0, lt=1)]
#: ``eps_x``: token scale of the RNN's azl and pg21 input encodings (as the ``rnn`` learner's):
#: a number in (0, 1] or a rule of the concept's L (:mod:`pacsim.learners._scale`).
EpsX = _scale.EpsX
#: ``init``: a feed-forward network's initialisation preset (``pacsim.models.ff.INITS``); None:
#: the learner's default ("theory" for resnet, "azll" for mlp2/mlp3).
FFInit = Literal["theory", "experiment", "azll"] | None
#: ``m``: width of a finite network.
Width = Annotated[int, Field(ge=1, le=65536)]
#: ``mode``: the ``rnn`` learner's mode (input encoding, initial scales; ``rnn.MODES``).
RNNMode = Literal["azl", "pg21", "plain"]
#: ``train``: the RNN's trained matrices; ``None``: the mode's (W; W and A for pg21).
RNNTrain = Literal["W", "WA"] | None


class KernelConfig(Frozen):
    """Base of the kernel learners' configs.

    Every one declares, after its own keys, ``ridges: Ridges = None``,
    ``val_fraction: ValFraction = 0.2`` and ``max_n: PosInt`` (the largest number of training
    samples :meth:`KernelLearner.fit` accepts; Gram matrices grow as n^2). They are written out
    in each config (not inherited) so that ``kind`` comes first in every listing.
    """

    @field_validator("ridges", mode="before", check_fields=False)
    @classmethod
    def _list_to_tuple(cls, v):
        return tuple(v) if isinstance(v, list) else v


class KernelLearner(Learner):
    """A closed-form learner: subclasses implement :meth:`_fit` and :meth:`_predict`."""

    sgd = False

    def __init__(self, cfg, concept):
        self.name = cfg.kind
        self.cfg, self.concept = cfg, concept
        self.S, self.d = n_scored(concept), concept.d
        self.ridges = krr.RIDGES if cfg.ridges is None else tuple(cfg.ridges)
        self._info: dict = {}
        self._fitted = False

    def fit(self, inputs, Y, rng: np.random.Generator) -> None:
        """Fit on the ``n`` training samples ``(inputs, Y)`` (labels as the concept gives them);
        the validation split's seed comes from ``rng``."""
        n = len(Y)
        if n > self.cfg.max_n:
            raise LearnerError(
                f"model.kind = {self.cfg.kind!r} was asked to fit {n} training samples, more "
                f"than model.max_n = {self.cfg.max_n} (its kernel matrices grow as n^2); lower "
                f"target.n_max or raise model.max_n"
            )
        if len(inputs) != n:
            raise ValueError(f"{len(inputs)} inputs but {n} labels")
        seed = int(rng.integers(2**63))
        self._info = self._fit(inputs, scored(self.concept, Y), seed)
        self._fitted = True

    def predict(self, inputs) -> np.ndarray:
        if not self._fitted:
            raise RuntimeError(f"{self.name}: predict before fit")
        out = np.asarray(self._predict(inputs), dtype=np.float64)
        return out.reshape(len(out), self.S, self.d)

    def info(self):
        return dict(self._info)

    def _fit(self, inputs, targets: np.ndarray, seed: int) -> dict:
        """Fit the scored targets ``(n, S, d)``; return the scalars for :meth:`info`."""
        raise NotImplementedError

    def _predict(self, inputs) -> np.ndarray:
        """Predictions, any shape that reshapes to ``(n, S, d)``."""
        raise NotImplementedError


class FlatKernelLearner(KernelLearner):
    """Kernel ridge regression with one kernel shared by all ``S d`` outputs, on
    :func:`flat_inputs`. Subclasses give :meth:`kernel` (``kernel(X1, X2, **params)``) and, if
    they select kernel parameters too, :meth:`params`."""

    def encode(self, X):
        return flat_inputs(self.concept, X)

    def kernel(self, X1, X2=None, **params) -> np.ndarray:
        raise NotImplementedError

    def params(self, X) -> list[dict] | None:
        """Kernel-parameter candidates for training inputs ``X`` (``None``: no parameter)."""
        return None

    def _fit(self, X, targets, seed):
        self.model = krr.fit(self.kernel, X, targets.reshape(len(targets), -1),
                             params=self.params(X), ridges=self.ridges,
                             val_fraction=self.cfg.val_fraction, seed=seed)
        return {**self.model.params, **kernel_info(self.model)}

    def _predict(self, X):
        return self.model.predict(X)


def kernel_info(model) -> dict:
    """Chosen ridge, Cholesky jitter and validation MSE of a fitted :mod:`krr` model."""
    chosen = [s.val_mse for s in model.selection
              if s.ridge == model.ridge and s.params == getattr(model, "params", {})]
    return {"ridge": model.ridge, "jitter": model.jitter,
            "val_mse": chosen[0] if chosen else float("nan")}


# Inputs


def flat_inputs(concept, X) -> np.ndarray:
    """The feed-forward view, float64: ``X`` of a vector concept, the tokens at positions
    ``1..L-1`` concatenated (:func:`pacsim.models.ff.concat_tokens`) of a sequence concept."""
    if concept.kind == "sequence":
        return ff.concat_tokens(X, np.float64)
    return np.ascontiguousarray(X, dtype=np.float64)


def flat_dim(concept) -> int:
    """Length of :func:`flat_inputs`' rows."""
    return (concept.L - 1) * concept.d_x if concept.kind == "sequence" else concept.d_in


def rnn_inputs(cfg, X) -> np.ndarray:
    """The ``rnn`` learner's encoded inputs ``(n, L, d_in)``, float64 (``cfg.mode``; ``cfg.eps_x``
    scales the tokens of the azl and pg21 encodings; a rule is resolved at ``L = X.shape[1]``,
    the concept's length, as the ``rnn`` learner resolves it)."""
    eps_x = cfg.eps_x
    if isinstance(eps_x, str) and rnn.mode_spec(cfg.mode).scale_tokens:
        eps_x = _scale.resolve(eps_x, X.shape[1])
    return rnn.encode_inputs(cfg.mode, X, eps_x, np.float64)


def rnn_trained(cfg) -> tuple[str, ...]:
    """The RNN's trained matrices of ``cfg.train`` (``None``: ``cfg.mode``'s)."""
    if cfg.train is None:
        return rnn.mode_spec(cfg.mode).trained
    return {"W": ("W",), "WA": ("W", "A")}[cfg.train]


def per_output(K: np.ndarray, d: int, blocks: str) -> np.ndarray:
    """A per-position kernel, ``(n1, n2, S)`` (``blocks="diag"``) or ``(n1, n2, S, S)``
    (``"full"``), as a kernel over the ``S d`` scored outputs in the order of
    ``targets.reshape(n, S * d)`` (position-major). Output coordinates do not interact
    (``delta_ss'``, as in the infinite-width limit), so ``d = 1`` returns ``K`` itself."""
    if d == 1:
        return K
    if blocks == "diag":
        return np.repeat(K, d, axis=2)
    n1, n2, S, _ = K.shape
    eye = np.eye(d)
    return (K[:, :, :, None, :, None] * eye[None, None, None, :, None, :]).reshape(
        n1, n2, S * d, S * d)


# Networks at initialisation (entk, random_features)


def resolve_net(net: str, concept_kind: str) -> str:
    """``"auto"`` -> ``"rnn"`` (sequence concepts) or ``"mlp2"`` (vector concepts)."""
    if net == "auto":
        return "rnn" if concept_kind == "sequence" else "mlp2"
    if net == "rnn" and concept_kind != "sequence":
        raise LearnerError(f'net = "rnn" reads sequences; a {concept_kind} concept needs '
                           '"mlp2", "mlp3" or "resnet"')
    return net


def check_init(cfg):
    """Validator body: ``cfg.init`` must be a preset of the feed-forward network ``cfg.net``
    (``"auto"``: of ``mlp2``, the net it means for vector concepts; a sequence concept, where it
    means the RNN, is refused by :func:`check_rnn_concept`)."""
    if cfg.init is None:
        return cfg
    net = "mlp2" if cfg.net == "auto" else cfg.net
    if net not in ff.INITS:
        raise ValueError(f"init = {cfg.init!r} applies to a feed-forward net; allowed: "
                         f"net = \"mlp2\", \"mlp3\" or \"resnet\" (or init unset)")
    if cfg.init not in ff.INITS[net]:
        where = "auto (mlp2 on vector concepts)" if cfg.net == "auto" else repr(net)
        raise ValueError(f"init = {cfg.init!r} is not a preset of net = {where}; allowed: "
                         + ", ".join(ff.INITS[net]))
    return cfg


def check_rnn_concept(cfg, concept_cfg) -> None:
    """``check_concept`` hook of the learners with an RNN view (``rntk``; ``entk`` and
    ``random_features`` when their net is the RNN): ``cfg.mode`` must score the concept's
    positions, as for the ``rnn`` learner, and a feed-forward ``init`` does not apply."""
    net = resolve_net(getattr(cfg, "net", "rnn"), concepts.FAMILIES[concept_cfg.family].KIND)
    _check_rnn_net(cfg, net)
    if net == "rnn":
        rnn_learner.check_mode_positions(cfg.mode, concept_cfg)
        rnn_learner.check_eps_x(cfg.eps_x, cfg.mode, concept_cfg)


def check_rnn_view(cfg, concept, net: str = "rnn") -> None:
    """What :func:`check_rnn_concept` checks, on a drawn ``concept`` (the learners' ``make``)."""
    _check_rnn_net(cfg, net)
    if net == "rnn":
        rnn_learner.check_positions(cfg.mode, concept.L, concept.positions)


def _check_rnn_net(cfg, net: str) -> None:
    if net == "rnn" and getattr(cfg, "init", None) is not None:
        raise LearnerError(f"model.init = {cfg.init!r} sets a feed-forward net's preset, but "
                           f"this {cfg.kind} learner's net is the RNN (net = {cfg.net!r} on a "
                           "sequence concept); allowed: init unset, or net = \"mlp2\", "
                           "\"mlp3\" or \"resnet\"")


def net_accepts(cfg) -> tuple[str, ...]:
    """Concept kinds a finite-width learner with network ``cfg.net`` can learn."""
    return ("sequence",) if cfg.net == "rnn" else ACCEPTS


def draw_net(net: str, m: int, concept, rng: np.random.Generator, mode: str = "azl",
             init: str | None = None):
    """The initial weights the SGD learner of network ``net`` would draw from ``rng``, float64.

    ``"rnn"``: :func:`pacsim.models.rnn.init_params` (the ``rnn`` learner's defaults: ReLU cell,
    ``W ~ N(0, 2/m)``; ``mode``'s input width and scales of ``A`` and ``B``);
    ``"mlp2"``, ``"mlp3"``, ``"resnet"``: :func:`pacsim.models.ff.init_params` with the
    learners' preset ``init`` (None: the default, "theory" for the ResNet and "azll" for the
    MLPs) and ``d_out = S d`` (:class:`pacsim.learners.ff.FFLearner` spawns a probe generator
    first, which does not advance ``rng``).
    """
    if net == "rnn":
        d_in = rnn.input_dim(mode, concept.d_x)
        return rnn.init_params(m, d_in, concept.d, rng, np.float64, mode=mode)
    return ff.init_params(net, m, flat_dim(concept), n_scored(concept) * concept.d, rng,
                          np.float64, init=init)


def ff_features(p: ff.FFParams, X: np.ndarray) -> np.ndarray:
    """The vector the readout ``A`` multiplies, ``(n, m)``: ``relu(W x + b1)`` (mlp2), the
    second hidden layer (mlp3), ``h1 + h2`` (resnet: ``out = A (h1 + h2)``)."""
    h1 = np.maximum(X @ p.W.T + p.b1, 0.0)
    if p.arch == "mlp2":
        return h1
    if p.arch == "mlp3":
        return np.maximum(h1 @ p.V.T + p.b2, 0.0)
    return h1 + np.maximum((h1 @ p.A.T) @ p.V.T + p.b2, 0.0)
