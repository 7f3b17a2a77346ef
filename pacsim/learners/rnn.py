"""``kind = "rnn"``: the RNNs of :mod:`pacsim.models.rnn`, trained by vanilla SGD.

Every option of the array-level model is a config key: the ``mode`` preset (input encoding,
initial scales of ``A`` and ``B``, trained matrices, scored outputs; ``rnn.MODES``), the ``cell``
(Elman ReLU or tanh, minimalRNN), the ``init`` of ``W`` (AZL's Gaussian, the mean-field
critical point of the cell, or orthogonal), the matrices trained (``plain`` mode only) and the
truncation ``bptt`` of backpropagation through time. The defaults are Allen-Zhu & Li's setting:
azl mode, ReLU, ``W ~ N(0, 2/m)``, only ``W`` trained, full BPTT.

Scored outputs: the learner predicts the concept's scored positions, which must be among the
positions the mode scores (``rnn.scored_positions``): ``2..L-1`` for azl and plain, only the
end position ``L-1`` for pg21 (whose encoding puts its end token there). :func:`make` refuses
any other concept; :func:`check_concept` does the same check on configs.

Step size: ``step_size(lr, "ntk") = lr / T`` with ``T`` the per-sample trace of the gradient
kernel of the trained matrices at initialisation: the wide-limit closed form
(``rnn.ntk_trace``) for the ReLU cell at gain ``sqrt(2)`` with full BPTT, with the mean
``||x_t||^2`` of ``N_PROBE`` encoded inputs; otherwise (tanh, minimal, another ``sigma_w``,
truncated BPTT) the exact trace (``rnn.empirical_ntk_trace``) averaged over the first
``N_PROBE_EMPIRICAL`` of them. The probe inputs come from a generator spawned from the ``init``
stream, so the weights do not depend on them.

Initial function (``f0``): ``"keep"`` trains the network ``f`` as it is; ``"subtract"`` trains
``f - f_0`` with ``f_0`` the network at initialisation (a frozen copy), which is training ``f``
on the labels ``y + f_0(x)`` (same residual, same gradients); ``"symmetric"`` trains
``(f_1 - f_2)/sqrt(2)`` of two copies with equal initial weights (:mod:`pacsim.models.rnn_sym`),
so ``f_0 = 0`` exactly. Neither changes the tangent kernel at initialisation, so the NTK trace
and the step size are those of ``keep``. ``lam`` scales every output, hence the trace by
``lam^2``: ``step_size(lr, "ntk")`` is ``1/lam^2`` times larger at a smaller ``lam``.

Input scale: ``eps_x`` is a number or a rule of the concept's ``L`` (:mod:`._scale`), resolved
when the learner is built and recorded as ``learner_info.token_scale`` and
``learner_info.eps_x_rule``.

Laziness (:meth:`RNNLearner.laziness`): ``lazy.*`` columns on every evaluated row, measured on
the first ``N_PROBE_LAZY`` of the probe inputs (:mod:`pacsim.learners._lazy`).
"""

from __future__ import annotations

import functools
import math
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from .. import concepts
from .._config_base import Frozen, NonNegFloat, PosFloat
from ..models import rnn, rnn_sym
from . import _lazy, _scale
from .base import Learner, LearnerError, LearnerKind

#: The RNN reads sequences only.
ACCEPTS = ("sequence",)
#: Trained by vanilla SGD (train.protocol, train.lr apply).
SGD = True
#: Inputs drawn at initialisation: their mean ``||x_t||^2`` feeds the closed-form NTK trace.
N_PROBE = 64
#: How many of them the measured NTK trace (tanh, minimal, ...) is averaged over.
N_PROBE_EMPIRICAL = 8
#: How many of them the laziness diagnostics (``lazy.*``) are measured on.
N_PROBE_LAZY = 32

#: Defaults of the minimalRNN's gate ensemble (``rnn.init_params``).
_GATE_DEFAULTS = {"sigma_v": 1.0, "mu_b": 0.0, "sigma_b": 0.0}


class Config(Frozen):
    """An RNN of :mod:`pacsim.models.rnn`; the defaults are AZL's setting."""

    kind: Literal["rnn"] = "rnn"
    #: preset of encoding, A/B scales, trained matrices and scored outputs (rnn.MODES)
    mode: Literal["azl", "pg21", "plain"] = "azl"
    m: Annotated[int, Field(ge=1, le=65536)] = 256  #: width
    #: token scale of the azl/pg21 input normalisation (ignored by plain): a number in (0, 1]
    #: or a rule of the concept's L, "c/sqrt(L)", "c*L^a", "L^a" (pacsim.learners._scale)
    eps_x: _scale.EpsX = 0.1
    lam: PosFloat = 1.0  #: output scale lambda (fixed to 1 in plain mode)
    #: the initial function: "keep" f; "subtract" f - f_0 (f_0 the network at init, frozen);
    #: "symmetric" (f_1 - f_2)/sqrt(2) of two copies with equal initial weights (f_0 = 0)
    f0: Literal["keep", "subtract", "symmetric"] = "keep"
    cell: Literal["relu", "tanh", "minimal"] = "relu"  #: Elman ReLU, Elman tanh, minimalRNN
    #: W: "azl" N(0, sigma_w^2/m); "critical" the same at the mean-field chi_1 = 1 point;
    #: "orthogonal" sigma_w times a Haar orthogonal matrix
    init: Literal["azl", "critical", "orthogonal"] = "azl"
    #: gain of W for the azl and orthogonal inits (None: sqrt(2))
    sigma_w: PosFloat | None = None
    #: trained matrices, plain mode only (None: the mode's own)
    trained: Annotated[tuple[Literal["W", "A", "B"], ...], Field(min_length=1)] | None = None
    bptt: Annotated[int, Field(ge=1)] | None = None  #: truncated BPTT(K); None: full
    sigma_v: NonNegFloat = 1.0  #: minimal cell: gate-input weights V ~ N(0, sigma_v^2/m)
    mu_b: Annotated[float, Field(allow_inf_nan=False)] = 0.0  #: minimal cell: gate bias mean
    sigma_b: NonNegFloat = 0.0  #: minimal cell: gate bias std
    dtype: Literal["float64", "float32"] = "float64"

    @field_validator("trained", mode="before")
    @classmethod
    def _list_to_tuple(cls, v):
        if isinstance(v, list):
            if not v or any(v.count(x) > 1 for x in v):
                raise ValueError('allowed: a non-empty list of "W", "A", "B", each at most once')
            return tuple(v)
        return v

    @model_validator(mode="after")
    def _options_fit(self):
        if self.trained is not None and self.mode != "plain":
            default = ", ".join(rnn.mode_spec(self.mode).trained)
            raise ValueError(f'trained can only be set in mode "plain"; mode "{self.mode}" '
                             f"trains {default}")
        lam = rnn.mode_spec(self.mode).lam
        if lam is not None and self.lam != lam:
            raise ValueError(f'lam is fixed to {lam} in mode "{self.mode}"; got {self.lam}')
        if self.init == "critical" and self.sigma_w is not None:
            raise ValueError('sigma_w cannot be set with init = "critical", which solves for it; '
                             'allowed: init = "azl" or "orthogonal"')
        if self.cell != "minimal":
            for key, default in _GATE_DEFAULTS.items():
                if getattr(self, key) != default:
                    raise ValueError(f'{key} belongs to cell = "minimal" (the gate); '
                                     f'cell = "{self.cell}" has no gate')
        return self

    @property
    def trained_names(self) -> tuple[str, ...]:
        """The trained matrices, in the order W, A, B."""
        names = self.trained if self.trained is not None else rnn.mode_spec(self.mode).trained
        return tuple(n for n in rnn.PARAM_NAMES if n in names)


class RNNLearner(Learner):
    """An :class:`pacsim.models.rnn.RNNParams` network with the choices of a :class:`Config`."""

    name = "rnn"

    def __init__(self, cfg: Config, concept, rng: np.random.Generator):
        check_positions(cfg.mode, concept.L, concept.positions)
        self.cfg, self.concept = cfg, concept
        self.spec = rnn.mode_spec(cfg.mode)
        self.dtype = np.dtype(cfg.dtype)
        self.positions = np.asarray(concept.positions, dtype=np.int64)
        self.names = cfg.trained_names
        L = concept.L
        self.K = L if cfg.bptt is None else min(cfg.bptt, L)  # K >= L is full BPTT
        # a rule of L is resolved here (plain mode ignores eps_x, so it is not resolved there)
        self.eps_x = _scale.resolve(cfg.eps_x, L) if self.spec.scale_tokens else 1.0
        self.token_scale = self.eps_x
        (probe_rng,) = rng.spawn(1)  # does not advance rng: the weights do not depend on it
        gate = {k: getattr(cfg, k) for k in _GATE_DEFAULTS} if cfg.cell == "minimal" else {}
        init, sigma_w = cfg.init, cfg.sigma_w
        if init == "critical":  # rnn's init="critical" Gaussian, sigma_w solved once per cell
            init = "azl"
            sigma_w = _critical_sigma_w(cfg.cell, cfg.m, self.token_scale**2, self.spec.a_var,
                                        tuple(gate.items()))
        self.sigma_w = math.sqrt(rnn.AZL_W_VAR) if sigma_w is None else sigma_w
        self.params = rnn.init_params(
            cfg.m, rnn.input_dim(cfg.mode, concept.d_x), concept.d, rng, self.dtype,
            cell=cfg.cell, init=init, mode=cfg.mode, sigma_w=sigma_w, **gate,
        )  # fmt: skip
        self.params0 = self.params.copy()  # the initial weights (f_0 and laziness), frozen
        self.params2 = self.params.copy() if cfg.f0 == "symmetric" else None
        tokens = concept.sample(N_PROBE, probe_rng)[0]
        self.probe = self.encode(tokens[:N_PROBE_LAZY])
        self._lazy0 = None  # the laziness reference at init, measured on first use
        self._f0_cache: list = []  # f0 = "subtract": f_0 of the evaluation sets
        # the NTK trace of the model trained: f0 = "subtract" subtracts a function that does not
        # depend on the weights, and the symmetric model's kernel (K_1 + K_2)/2 is one copy's
        # at init
        self.trace, self.trace_method = self._ntk_trace(tokens)

    def _ntk_trace(self, tokens) -> tuple[float, str]:
        """Per-sample NTK trace at init and how it was obtained (see the module docstring)."""
        c, L = self.cfg, self.concept.L
        X = self.encode(tokens)
        closed_form = (c.cell == "relu" and self.K == L
                       and math.isclose(self.sigma_w**2, rnn.AZL_W_VAR, rel_tol=1e-9))
        if closed_form:
            x_sq_norms = np.mean(np.sum(np.square(X, dtype=np.float64), axis=2), axis=0)
            T = rnn.ntk_trace(c.m, L, self.eps_x, self.positions, c.lam, mode=c.mode,
                              trained=self.names, d=self.concept.d, x_sq_norms=x_sq_norms)
            return T, "closed-form"
        T = rnn.empirical_ntk_trace(self.params, X[:N_PROBE_EMPIRICAL], self.positions, c.lam,
                                    trained=self.names, K=self.K)
        return T, "empirical"

    def encode(self, X):
        return rnn.encode_inputs(self.cfg.mode, X, self.eps_x, self.dtype)

    def predict(self, inputs):
        return self._model(inputs)[:, self.positions].astype(np.float64)

    def _model(self, inputs):
        """The outputs of the trained model at every position (``f0`` applied)."""
        lam = self.cfg.lam
        if self.params2 is not None:
            return rnn_sym.forward(self.params, self.params2, inputs, lam)
        if self.cfg.f0 == "subtract":  # f and f_0 from the same kernel: exactly 0 at init
            return rnn_sym.outputs(self.params, inputs, lam, self.positions) - self._f0_of(inputs)
        return rnn.forward(self.params, inputs, lam)

    def _f0_of(self, inputs):
        """``f_0`` at the scored positions (zero elsewhere); the last two evaluation sets'
        are kept (with a reference to their inputs, so a cached entry cannot be mistaken)."""
        for X, F in self._f0_cache:
            if X is inputs:
                return F
        F = rnn_sym.outputs(self.params0, inputs, self.cfg.lam, self.positions)
        self._f0_cache = [(inputs, F), *self._f0_cache[:1]]
        return F

    def _shifted(self, inputs, Y):
        """``f0 = "subtract"``: training ``f - f_0`` on ``Y`` is training ``f`` on ``Y + f_0``
        (same residual, same gradients); the labels as they are otherwise."""
        if self.cfg.f0 != "subtract":
            return Y
        return Y + rnn_sym.outputs(self.params0, inputs, self.cfg.lam, self.positions)

    def step_size(self, lr, units):
        return lr if units == "raw" else lr / self.trace

    def sgd_chunk(self, inputs, Y, eta, order):
        if self.params2 is not None:
            n_steps, losses = rnn_sym.sgd_chunk(self.params, self.params2, inputs, Y, eta,
                                                self.cfg.lam, self.positions, order,
                                                trained=self.names, K=self.K)
            return n_steps, losses[:n_steps]
        n_steps, losses = rnn.sgd_chunk(self.params, inputs, self._shifted(inputs, Y), eta,
                                        self.cfg.lam, self.positions, order, trained=self.names,
                                        K=self.K)
        return n_steps, losses[:n_steps]

    def trained(self):
        copies = (self.params,) if self.params2 is None else (self.params, self.params2)
        return [getattr(p, n) for p in copies for n in self.names]

    def batch_grad(self, inputs, Y):
        if self.params2 is not None:
            loss, g1, g2 = rnn_sym.loss_and_grad(self.params, self.params2, inputs, Y,
                                                 self.cfg.lam, self.positions,
                                                 trained=self.names, K=self.K)
            return loss, [getattr(g, n) for g in (g1, g2) for n in self.names]
        loss, g = rnn.loss_and_grad(self.params, inputs, self._shifted(inputs, Y), self.cfg.lam,
                                    self.positions, trained=self.names, K=self.K)
        return loss, [getattr(g, n) for n in self.names]

    def laziness(self):
        """The ``lazy.*`` diagnostics of :mod:`pacsim.learners._lazy` on the ``N_PROBE_LAZY``
        probe inputs: relative movement of each trained matrix, ReLU sign flips (NaN for the
        tanh and minimal cells), NTK alignment with init, and the NTK trace now and at init
        (measured on the first ``N_PROBE_EMPIRICAL`` probes). The symmetric model counts both
        copies: movements and flips over both, kernel and trace the mean of the copies'."""
        copies = (self.params,) if self.params2 is None else (self.params, self.params2)
        X, lam, pos = self.probe, self.cfg.lam, self.positions
        relu = self.params.cell == "relu"

        def measure(p):
            if p.cell != "minimal":  # batched BLAS (tested against the slow forms below)
                return _lazy.rnn_tangent(p, X, pos, lam, self.names, self.K, N_PROBE_EMPIRICAL)
            gram = _lazy.rnn_gram(p, X, pos, lam, self.names, self.K)
            trace = rnn.empirical_ntk_trace(p, X[:N_PROBE_EMPIRICAL], pos, lam,
                                            trained=self.names, K=self.K)
            return None, gram, trace

        if self._lazy0 is None:
            self._lazy0 = measure(self.params0)
        signs0, gram0, trace0 = self._lazy0
        out = {}
        for n in self.names:
            out[f"move_{n}"] = _lazy.rel_move([getattr(p, n) for p in copies],
                                              [getattr(self.params0, n)] * len(copies))
        finite = all(np.isfinite(getattr(p, n)).all() for p in copies for n in self.names)
        if not finite:  # a diverged run: nothing else can be measured
            return {**out, "sign_flip": math.nan, "ntk_align": math.nan,
                    "ntk_align_c": math.nan, "trace": math.nan, "trace0": trace0}
        now = [measure(p) for p in copies]
        flips = (np.mean([_lazy.flip_fraction(signs0, s) for s, _, _ in now]) if relu
                 else math.nan)
        gram = sum(g for _, g, _ in now) / len(now)
        trace = sum(t for _, _, t in now) / len(now)
        return {**out, "sign_flip": float(flips), "ntk_align": _lazy.alignment(gram0, gram),
                "ntk_align_c": _lazy.centred_alignment(gram0, gram),
                "trace": float(trace), "trace0": float(trace0)}

    def info(self):
        """The resolved choices (recorded as ``learner_info.*`` columns) and the NTK trace."""
        c, spec = self.cfg, self.spec
        out = {
            "cell": c.cell, "init": c.init, "sigma_w": self.sigma_w,
            "trained": ",".join(self.names), "bptt_K": self.K,
            "start_token": int(spec.start_token), "end_token": int(spec.end_token),
            "token_scale": self.token_scale, "eps_x_rule": _scale.rule(c.eps_x),
            "lam": c.lam, "f0": c.f0,
            "a_var": spec.a_var, "b_var": spec.b_var,
            "ntk_trace": self.trace, "ntk_trace_method": self.trace_method,
        }  # fmt: skip
        if c.cell == "minimal":
            out.update({k: getattr(c, k) for k in _GATE_DEFAULTS})
        return out


def make(cfg: Config, concept, rng: np.random.Generator) -> RNNLearner:
    """The learner of ``cfg`` for ``concept``; :class:`LearnerError` if the mode cannot score the
    concept's positions."""
    return RNNLearner(cfg, concept, rng)


def check_concept(cfg: Config, concept_cfg) -> None:
    """Raise :class:`LearnerError` if ``cfg``'s mode cannot score the positions of the concept
    of ``concept_cfg`` (the check :func:`make` does, for the config loader), or if an ``eps_x``
    rule gives a value outside (0, 1] at the concept's ``L``."""
    check_mode_positions(cfg.mode, concept_cfg)
    check_eps_x(cfg.eps_x, cfg.mode, concept_cfg)


def check_eps_x(eps_x, mode: str, concept_cfg) -> None:
    """Raise :class:`LearnerError` if an ``eps_x`` rule gives a value outside (0, 1] at the
    ``L`` of ``concept_cfg`` (modes that scale tokens; also used by the RNN-view kernels)."""
    L = getattr(concept_cfg, "L", None)  # noqa: N806
    if isinstance(eps_x, str) and L is not None and rnn.mode_spec(mode).scale_tokens:
        _scale.resolve(eps_x, L)


def check_mode_positions(mode: str, concept_cfg) -> None:
    """Raise :class:`LearnerError` if RNN mode ``mode`` cannot score the positions of the
    sequence concept of ``concept_cfg`` (also used by the kernel learners of the RNN).

    Only the pg21 mode can fail it with the sequence families of :mod:`pacsim.concepts` (azl
    and plain score ``2..L-1``, which holds all their scored positions), so only then is the
    concept drawn, with a fixed generator (positions do not depend on the draw), to read its
    positions. :func:`check_positions` checks a drawn concept in every mode.
    """
    if concepts.FAMILIES[concept_cfg.family].KIND != "sequence" or mode != "pg21":
        return
    concept = concepts.make(concept_cfg, np.random.default_rng(0))
    check_positions(mode, concept.L, concept.positions)


@functools.lru_cache(maxsize=64)
def _critical_sigma_w(cell: str, m: int, x_sq_norm: float, a_var: float, gate: tuple) -> float:
    """``sigma_w`` of ``init = "critical"`` (``rnn.w_var``), cached: a root search takes about
    0.3 s, and every run of a sweep cell asks for the same one."""
    return math.sqrt(rnn.w_var(cell, "critical", m, x_sq_norm=x_sq_norm, a_var=a_var,
                               **dict(gate)))


def check_positions(mode: str, L: int, positions) -> None:  # noqa: N803
    """Raise :class:`LearnerError` if RNN mode ``mode`` does not score every one of the
    0-based ``positions`` of a length-``L`` sequence."""
    scorable = rnn.scored_positions(mode, L)
    extra = np.setdiff1d(np.asarray(positions), scorable)
    if extra.size:
        where = ("only the end position L-1" if rnn.mode_spec(mode).scored == "last"
                 else "positions 2..L-1")
        raise LearnerError(
            f'model.mode = "{mode}" scores {where} ({", ".join(map(str, scorable))} at L = {L}), '
            f"but the concept also scores {', '.join(map(str, extra))}; allowed: a concept whose "
            "scored positions the mode scores (pg21 mode: a concept labelled at the end, family "
            '"pg21" or "regular")'
        )


def warmup(dtypes) -> None:
    """Compile every cell's kernels for ``dtypes`` (one call compiles all of them), and those
    of the ``f0`` options."""
    rnn.warmup(dtypes)
    rnn_sym.warmup(dtypes)


#: This kind's contract (:class:`pacsim.learners.base.LearnerKind`).
KIND = LearnerKind("rnn", Config, make, warmup, SGD=SGD, ACCEPTS=ACCEPTS,
                   concept_check=check_concept)
