"""The AZL concept class: each output token a smooth two-layer network of earlier tokens.

Allen-Zhu & Li, *Can SGD Learn Recurrent Neural Networks with Provable Generalization?*
(NeurIPS 2019, arXiv 1902.01028); notes in ``shared/research/rnn_theory.md`` sections 2.2, 2.5.

Notation (0-based positions, sequence length ``L``):

* tokens ``x*_i`` for ``i = 1..L-1`` are unit vectors in ``R^{d_x}`` with last coordinate 1/2:
  ``x*_i = (sqrt(3)/2 * u_i, 1/2)`` with ``u_i`` uniform on the sphere ``S^{d_x-2}``. Position 0 is
  the model's start token and carries no concept token (its row is zero).
* for every scored output position ``j = 2..L-1`` (1-based ``j = 3..L``) and coordinate ``s``::

      y_{j,s} = c_j * sum_{i=1}^{j-1} sum_{r=1}^{p} b_{j,i,r,s} * Phi_r(<w_{j,i,r,s}, x*_i>)

  with ``w`` uniform on the unit sphere of ``R^{d_x}``, ``|b| <= 1`` and ``Phi_r`` entire with
  ``Phi_r(0) = 0``. Outputs 0 and 1 are not scored (their labels are 0).
* the normalisation ``c_j`` keeps the label variance O(1) in ``L``: ``"sqrt"`` (the default),
  ``c_j = 1/sqrt((j-1) p)``, makes ``Var(y_j)`` independent of ``j`` because the tokens are
  independent; ``"mean"`` uses ``1/((j-1) p)`` (the variance then decays like ``1/j``);
  ``"none"`` uses 1 (the variance grows like ``j``). AZL leaves the scale open (rnn_theory.md
  section 8, item 6), and the choice changes the apparent L-dependence, so it is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from .._config_base import Frozen, NonNegFloat
from .links import LINKS, link

#: Inputs are token sequences (see :mod:`pacsim.concepts.base`).
KIND = "sequence"

LinkName = Literal[tuple(LINKS)]  # type: ignore[valid-type]


class Config(Frozen):
    """``family = "azl"``: each output a sum of smooth two-layer networks of earlier tokens."""

    family: Literal["azl"] = "azl"
    variant: Literal["all-past"] = "all-past"
    L: Annotated[int, Field(ge=3, le=4096)] = 8  #: sequence length, start position included
    d_x: Annotated[int, Field(ge=2, le=4096)] = 8  #: token dimension
    d: Annotated[int, Field(ge=1, le=64)] = 1  #: output dimension
    p: Annotated[int, Field(ge=1, le=64)] = 1  #: hidden units per (i -> j) pair
    links: Annotated[tuple[LinkName, ...], Field(min_length=1)] = ("sin",)
    b: Literal["uniform", "sign"] = "uniform"  #: output coefficients: U[-1, 1] or +-1
    normalization: Literal["sqrt", "mean", "none"] = "sqrt"  #: label scale c_j
    noise: NonNegFloat = 0.0  #: label noise std

    @field_validator("links", mode="before")
    @classmethod
    def _list_to_tuple(cls, v):
        return tuple(v) if isinstance(v, list) else v

    @model_validator(mode="after")
    def _links_fit_p(self):
        if len(self.links) not in (1, self.p):
            raise ValueError(f"links has {len(self.links)} entries; allowed: 1 or p = {self.p}")
        return self

#: Cosine of the angle of the "bias" coordinate: tokens are (sqrt(3)/2 * u, 1/2).
_TOKEN_SCALE = np.sqrt(3.0) / 2.0


@dataclass(frozen=True)
class AZLConcept:
    """A sampled AZL target (all-past variant). Call :meth:`sample` to draw labelled data.

    Attributes
    ----------
    w : ndarray of shape (L, L, p, d, d_x)
        ``w[j, i, r, s]`` is the unit weight vector of the pair ``i -> j``; zero where
        ``i >= j`` or ``j < 2`` (pairs that do not exist).
    b : ndarray of shape (L, L, p, d)
        Output coefficients in [-1, 1]; zero where the pair does not exist.
    links : tuple of str, length p
        Link function of each hidden unit ``r`` (names from :data:`pacsim.concepts.links.LINKS`).
    c : ndarray of shape (L,)
        Normalisation ``c_j``; zero for the unscored positions 0 and 1.
    noise : float
        Standard deviation of the Gaussian label noise.
    """

    w: np.ndarray
    b: np.ndarray
    links: tuple[str, ...]
    c: np.ndarray
    noise: float

    family = "azl"
    kind = "sequence"

    def info(self) -> dict[str, float | int | str]:
        """Recorded with every run: the label scale at the last position."""
        return {"label_scale_last": float(self.c[-1])}

    @property
    def L(self) -> int:  # noqa: N802 - paper notation
        return self.w.shape[0]

    @property
    def d(self) -> int:
        return self.w.shape[3]

    @property
    def d_x(self) -> int:
        return self.w.shape[4]

    @property
    def positions(self) -> np.ndarray:
        """0-based indices of the scored output positions: ``2..L-1``."""
        return np.arange(2, self.L)

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` labelled sequences.

        Each sample consumes the same number of normal draws from ``rng`` in row-major order,
        so drawing ``n1`` then ``n2`` samples gives exactly the first ``n1 + n2`` samples of a
        single draw: training sets are nested in ``N`` and online streams do not depend on the
        chunk size.

        Returns
        -------
        tokens : ndarray of shape (n, L, d_x)
            ``tokens[:, 0]`` is zero (start position); rows 1..L-1 are unit vectors with last
            coordinate 1/2.
        Y : ndarray of shape (n, L, d)
            Labels; zero at the unscored positions 0 and 1.
        """
        L, d, d_x = self.L, self.d, self.d_x
        n_tok = (L - 1) * (d_x - 1)
        raw = rng.standard_normal((n, n_tok + L * d))
        tokens = np.zeros((n, L, d_x))
        tokens[:, 1:, :-1] = _TOKEN_SCALE * _unit_rows(raw[:, :n_tok].reshape(n, L - 1, d_x - 1))
        tokens[:, 1:, -1] = 0.5
        Y = self.labels(tokens)
        if self.noise > 0:
            Y[:, 2:] += self.noise * raw[:, n_tok:].reshape(n, L, d)[:, 2:]
        return tokens, Y

    def labels(self, tokens: np.ndarray) -> np.ndarray:
        """Noise-free labels ``F*(x*)`` of ``tokens`` (n, L, d_x) -> (n, L, d)."""
        Z = np.einsum("jirsk,nik->njirs", self.w, tokens)  # <w_{j,i,r,s}, x*_i>: (n, L, L, p, d)
        terms = np.empty_like(Z)
        for r, name in enumerate(self.links):
            terms[:, :, :, r] = link(name)(Z[:, :, :, r])
        # b is zero on pairs that do not exist, so summing over all i and r is exact.
        return self.c[None, :, None] * np.einsum("njirs,jirs->njs", terms, self.b)


def sample(
    rng: np.random.Generator,
    *,
    L: int,  # noqa: N803 - paper notation
    d_x: int,
    d: int = 1,
    p: int = 1,
    links: tuple[str, ...] = ("sin",),
    b: str = "uniform",
    normalization: str = "sqrt",
    noise: float = 0.0,
) -> AZLConcept:
    """Draw an AZL all-past target from ``rng`` (the run's ``concept`` stream).

    ``links`` has length 1 (every hidden unit uses it) or ``p`` (one per hidden unit ``r``).
    ``b`` is ``"uniform"`` (U[-1, 1]) or ``"sign"`` (+-1).
    """
    if L < 3 or d_x < 2 or d < 1 or p < 1:
        raise ValueError(f"need L >= 3, d_x >= 2, d >= 1, p >= 1; got {L=}, {d_x=}, {d=}, {p=}")
    if len(links) not in (1, p):
        raise ValueError(f"links must have length 1 or p={p}, got {len(links)}")
    for name in links:
        link(name)
    links = tuple(links) * (p if len(links) == 1 else 1)

    exists = np.tril(np.ones((L, L), dtype=bool), k=-1)  # i < j
    exists[:, 0] = False  # position 0 is the start token, not a concept token
    exists[:2] = False  # outputs 0 and 1 are not scored
    mask = exists[:, :, None, None]

    w = _unit_rows(rng.standard_normal((L, L, p, d, d_x))) * mask[..., None]
    if b == "uniform":
        coef = rng.uniform(-1.0, 1.0, size=(L, L, p, d))
    elif b == "sign":
        coef = rng.choice([-1.0, 1.0], size=(L, L, p, d))
    else:
        raise ValueError(f"b must be 'uniform' or 'sign', got {b!r}")
    coef = coef * mask

    n_terms = np.arange(L) - 1.0  # number of contributing tokens at output j: j - 1
    c = np.zeros(L)
    scored = np.arange(L) >= 2
    if normalization == "sqrt":
        c[scored] = 1.0 / np.sqrt(n_terms[scored] * p)
    elif normalization == "mean":
        c[scored] = 1.0 / (n_terms[scored] * p)
    elif normalization == "none":
        c[scored] = 1.0
    else:
        raise ValueError(f"normalization must be 'sqrt', 'mean' or 'none', got {normalization!r}")
    return AZLConcept(w=w, b=coef, links=links, c=c, noise=float(noise))


def _unit_rows(v: np.ndarray) -> np.ndarray:
    """Normalise the last axis to unit length (uniform on the sphere for Gaussian ``v``)."""
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def make(cfg: Config, rng: np.random.Generator) -> AZLConcept:
    """Sample the target described by ``cfg`` from ``rng``."""
    return sample(rng, L=cfg.L, d_x=cfg.d_x, d=cfg.d, p=cfg.p, links=tuple(cfg.links), b=cfg.b,
                  normalization=cfg.normalization, noise=cfg.noise)
