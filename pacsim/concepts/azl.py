"""The AZL concept class: each output token a smooth two-layer network of earlier tokens.

Allen-Zhu & Li, *Can SGD Learn Recurrent Neural Networks with Provable Generalization?*
(NeurIPS 2019, arXiv 1902.01028); the token normalisation follows Panigrahi & Goyal (arXiv
2106.00047, Def. 3.1).

Notation (0-based positions, sequence length ``L``):

* tokens ``x*_i`` for ``i = 1..L-1`` are unit vectors in ``R^{d_x}`` with last coordinate 1/2:
  ``x*_i = (sqrt(3)/2 * u_i, 1/2)`` with ``u_i`` uniform on the sphere ``S^{d_x-2}``. Position 0 is
  the model's start token and carries no concept token (its row is zero).
* for every scored output position ``j`` and coordinate ``s``::

      y_{j,s} = c_j * sum_{i in I(j)} sum_{r=1}^{p} b_{j,i,r,s} * Phi_{j,i,r,s}(<w_{j,i,r,s}, x*_i>)

  with ``w`` uniform on the unit sphere of ``R^{d_x}``, ``|b| <= 1`` and ``Phi`` entire with
  ``Phi(0) = 0`` (optionally scaled: ``phi(a z)``). The *variant* fixes the set ``I(j)`` of
  tokens output ``j`` reads:

  ========================  ==============================  ====================
  variant                   I(j)                            scored outputs j
  ========================  ==============================  ====================
  ``all-past``              ``1..j-1``                      ``2..L-1``
  ``lag-k``                 ``{j-k}``                       ``k+1..L-1``
  ``first-token``           ``{1}`` (long memory)           ``2..L-1``
  ``window-k``              ``max(1, j-k)..j-1``            ``2..L-1``
  ========================  ==============================  ====================

  Unscored outputs have label 0. ``window-k`` with ``k >= L-2`` is ``all-past``.
* link functions: ``link_sharing = "shared"`` gives hidden unit ``r`` the link ``links[r]`` (or
  ``links[0]``) at every pair; ``"independent"`` draws the link of every ``(j, i, r, s)``
  uniformly from the menu ``links``.
* the normalisation ``c_j`` keeps the label variance O(1) in ``L``: ``"sqrt"`` (the default),
  ``c_j = 1/sqrt(|I(j)| p)``, makes ``Var(y_j)`` independent of ``j`` because the tokens are
  independent; ``"mean"`` uses ``1/(|I(j)| p)``; ``"none"`` uses 1. AZL does not fix the
  scale, and the choice changes the apparent L-dependence, so it is recorded.

The all-past variant with shared links draws its weights and computes its labels exactly as
pacsim 0.1 did (dense ``(L, L, ...)`` arrays), so existing configs give bit-identical numbers;
the other variants store only their ``(j, i)`` pairs (memory O(L) for lag-k and first-token).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from .._config_base import Frozen, NonNegFloat, PosFloat
from . import persist
from ._common import LinkName, class_complexity, coefficients, half_tokens, link_arg_rms, unit_rows
from .base import ConceptFamily
from .links import LINKS, link

#: Inputs are token sequences (see :mod:`pacsim.concepts.base`).
KIND = "sequence"
#: One line for ``pacsim concepts``.
SUMMARY = "AZL: each output token a sum of smooth two-layer networks of earlier tokens"
FORMULA = ("y_{j,s} = c_j sum_{i in I(j)} sum_{r<=p} b_{j,i,r,s} "
           "Phi_{j,i,r,s}(<w_{j,i,r,s}, x*_i>); "
           "I(j) = 1..j-1 (all-past), {j-k} (lag-k), {1} (first-token), j-k..j-1 (window-k); "
           "|w| = 1, |b| <= 1, Phi entire with Phi(0) = 0; c_j = 1/sqrt(|I(j)| p) by default")
SOURCE = ("Allen-Zhu & Li, Can SGD Learn Recurrent Neural Networks with Provable Generalization? "
          "NeurIPS 2019, arXiv 1902.01028 (its concept class)")
LABEL_SCALE = ("normalization 'sqrt': Var_x(y_{j,s}) = mean_r E[b^2] E_w[Var_x Phi_r(<w, x*>)], "
               "independent of j and L (E[b^2] = 1/3 for 'uniform'; about 0.05 for sin, d_x = 4, "
               "0.03 for d_x = 8); 'mean' decays like 1/|I(j)|; 'none' grows like |I(j)|")

VARIANTS = ("all-past", "lag-k", "first-token", "window-k")


class Config(Frozen):
    """``family = "azl"``: each output a sum of smooth two-layer networks of earlier tokens."""

    family: Literal["azl"] = "azl"
    variant: Literal[VARIANTS] = Field(  # type: ignore[valid-type]
        "all-past", description="which earlier tokens each output reads: all-past, lag-k, "
        "first-token, window-k")
    k: Annotated[int, Field(ge=1, le=4096, description="lag (lag-k) or window length "
                            "(window-k); ignored by all-past and first-token")] = 1
    L: Annotated[int, Field(ge=3, le=4096, description="sequence length, start position "
                            "included")] = 8
    d_x: Annotated[int, Field(ge=2, le=4096, description="token dimension")] = 8
    d: Annotated[int, Field(ge=1, le=64, description="output dimension")] = 1
    p: Annotated[int, Field(ge=1, le=64, description="hidden units per (i -> j) pair")] = 1
    links: Annotated[tuple[LinkName, ...], Field(  # type: ignore[valid-type]
        min_length=1, description="link functions Phi (entire, Phi(0) = 0)")] = ("sin",)
    link_sharing: Literal["shared", "independent"] = Field(
        "shared", description="shared: unit r uses links[r] at every pair; independent: every "
        "(i -> j, r, s) draws its link from links")
    scale: PosFloat = Field(1.0, description="link scale a: Phi(z) = phi(a z)")
    b: Literal["uniform", "sign"] = Field("uniform", description="output coefficients: U[-1, 1] "
                                          "or +-1")
    normalization: Literal["sqrt", "mean", "none"] = Field(
        "sqrt", description="label scale c_j: 1/sqrt(|I(j)| p), 1/(|I(j)| p) or 1")
    noise: NonNegFloat = Field(0.0, description="label noise std (scored outputs)")

    @field_validator("links", mode="before")
    @classmethod
    def _list_to_tuple(cls, v):
        return tuple(v) if isinstance(v, list) else v

    @model_validator(mode="after")
    def _consistent(self):
        if self.link_sharing == "shared" and len(self.links) not in (1, self.p):
            raise ValueError(f"links has {len(self.links)} entries; allowed with link_sharing = "
                             f"\"shared\": 1 or p = {self.p}")
        if self.variant == "lag-k" and self.L < self.k + 2:
            raise ValueError(f"variant \"lag-k\" with k = {self.k} needs L >= k + 2 = "
                             f"{self.k + 2} (an output j reads token j - k >= 1); got L = {self.L}")
        return self


@dataclass(frozen=True, eq=False)
class AZLConcept:
    """A sampled AZL target. Call :meth:`sample` to draw labelled data.

    Attributes
    ----------
    variant : str
        ``"all-past"``, ``"lag-k"``, ``"first-token"`` or ``"window-k"``.
    k : int
        Lag or window length (lag-k, window-k).
    pairs : ndarray of shape (P, 2), int
        The ``(j, i)`` pairs (output j reads token i), sorted by ``j`` then ``i``.
    w : ndarray of shape (P, p, d, d_x)
        Unit weight vectors ``w_{j,i,r,s}``.
    b : ndarray of shape (P, p, d)
        Output coefficients in [-1, 1].
    link_idx : ndarray of shape (P, p, d), int
        Index into ``links`` of the link of every ``(j, i, r, s)``.
    links : tuple of str
        Link names (shared: one per hidden unit ``r``; independent: the menu).
    scale : float
        Link scale ``a``: ``Phi(z) = phi(a z)``.
    c : ndarray of shape (L,)
        Normalisation ``c_j``; zero for unscored positions.
    noise : float
        Standard deviation of the Gaussian label noise.
    legacy : bool
        Labels computed with the dense (L, L, ...) arrays of pacsim 0.1 (all-past, shared).
    """

    variant: str
    k: int
    pairs: np.ndarray
    w: np.ndarray
    b: np.ndarray
    link_idx: np.ndarray
    links: tuple[str, ...]
    scale: float
    c: np.ndarray
    noise: float
    legacy: bool
    cfg: Any = field(default=None, compare=False)

    family = "azl"
    kind = "sequence"

    def info(self) -> dict[str, float | int | str]:
        """Recorded with every run: label scale at the last position, C_eps(Phi, sqrt(L)) and
        C_s(Phi, sqrt(L)) (log10, max over the links; C* = 10^4 and C* = 1), the link scale
        ``a`` and the rms link argument ``a <w, x*>`` at the data's scale, fingerprint."""
        names = tuple(self.links[q] for q in np.unique(self.link_idx))
        return {
            "label_scale_last": float(self.c[-1]),
            "n_pairs": int(len(self.pairs)),
            "complexity_R": float(np.sqrt(self.L)),
            **class_complexity(names, self.scale, R=float(np.sqrt(self.L))),
            "link_scale": float(self.scale),
            "link_arg_rms": link_arg_rms(self.w[..., None, :], self.scale),
            "fingerprint": persist.fingerprint(self),
        }

    @property
    def L(self) -> int:  # noqa: N802 - paper notation
        return self.c.shape[0]

    @property
    def p(self) -> int:
        return self.w.shape[1]

    @property
    def d(self) -> int:
        return self.w.shape[2]

    @property
    def d_x(self) -> int:
        return self.w.shape[3]

    @property
    def positions(self) -> np.ndarray:
        """0-based indices of the scored output positions (ascending)."""
        return np.unique(self.pairs[:, 0])

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
            Labels; zero at the unscored positions.
        """
        L, d, d_x = self.L, self.d, self.d_x
        n_tok = (L - 1) * (d_x - 1)
        raw = rng.standard_normal((n, n_tok + L * d))
        tokens = np.zeros((n, L, d_x))
        tokens[:, 1:] = half_tokens(raw[:, :n_tok].reshape(n, L - 1, d_x - 1))
        Y = self.labels(tokens)
        if self.noise > 0:
            pos = self.positions
            Y[:, pos] += self.noise * raw[:, n_tok:].reshape(n, L, d)[:, pos]
        return tokens, Y

    def labels(self, tokens: np.ndarray) -> np.ndarray:
        """Noise-free labels ``F*(x*)`` of ``tokens`` (n, L, d_x) -> (n, L, d)."""
        return self._labels_dense(tokens) if self.legacy else self._labels_pairs(tokens)

    # The two ways of computing the labels (tests check they agree).

    @cached_property
    def _dense(self) -> tuple[np.ndarray, np.ndarray]:
        L, (_, p, d, d_x) = self.L, self.w.shape
        w = np.zeros((L, L, p, d, d_x))
        b = np.zeros((L, L, p, d))
        j, i = self.pairs.T
        w[j, i] = self.w
        b[j, i] = self.b
        return w, b

    def _labels_dense(self, tokens: np.ndarray) -> np.ndarray:
        w, b = self._dense
        Z = np.einsum("jirsk,nik->njirs", w, tokens)  # <w_{j,i,r,s}, x*_i>: (n, L, L, p, d)
        terms = np.empty_like(Z)
        for r in range(self.p):
            terms[:, :, :, r] = link(self.links[r], self.scale)(Z[:, :, :, r])
        # b is zero on pairs that do not exist, so summing over all i and r is exact.
        return self.c[None, :, None] * np.einsum("njirs,jirs->njs", terms, b)

    def _labels_pairs(self, tokens: np.ndarray) -> np.ndarray:
        n = tokens.shape[0]
        Z = np.einsum("nPk,Prsk->nPrs", tokens[:, self.pairs[:, 1]], self.w)  # (n, P, p, d)
        terms = np.empty_like(Z)
        for q, name in enumerate(self.links):
            mask = self.link_idx == q
            if mask.any():
                terms[:, mask] = link(name, self.scale)(Z[:, mask])
        contrib = np.einsum("nPrs,Prs->nPs", terms, self.b)  # (n, P, d)
        js, starts = np.unique(self.pairs[:, 0], return_index=True)
        Y = np.zeros((n, self.L, self.d))
        Y[:, js] = np.add.reduceat(contrib, starts, axis=1)
        return Y * self.c[None, :, None]


#: The concept class of this family (used by :func:`pacsim.concepts.persist.load`).
CONCEPT = AZLConcept


def pairs(variant: str, L: int, k: int = 1) -> np.ndarray:  # noqa: N803 - paper notation
    """The ``(j, i)`` pairs of a variant, sorted by ``j`` then ``i``: shape (P, 2)."""
    if variant == "all-past":
        out = [(j, i) for j in range(2, L) for i in range(1, j)]
    elif variant == "lag-k":
        out = [(j, j - k) for j in range(k + 1, L)]
    elif variant == "first-token":
        out = [(j, 1) for j in range(2, L)]
    elif variant == "window-k":
        out = [(j, i) for j in range(2, L) for i in range(max(1, j - k), j)]
    else:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}; got {variant!r}")
    if not out:
        raise ValueError(f"variant {variant!r} with L = {L}, k = {k} has no scored output")
    return np.array(out, dtype=np.int64).reshape(-1, 2)


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
    variant: str = "all-past",
    k: int = 1,
    link_sharing: str = "shared",
    scale: float = 1.0,
    cfg: Config | None = None,
) -> AZLConcept:
    """Draw an AZL target from ``rng`` (the run's ``concept`` stream).

    With ``link_sharing = "shared"``, ``links`` has length 1 (every hidden unit uses it) or
    ``p`` (one per hidden unit ``r``); with ``"independent"`` it is a menu of any length.
    ``b`` is ``"uniform"`` (U[-1, 1]) or ``"sign"`` (+-1). Draw order: weights, coefficients,
    then (independent only) the link indices.
    """
    if L < 3 or d_x < 2 or d < 1 or p < 1 or k < 1:
        raise ValueError(f"need L >= 3, d_x >= 2, d >= 1, p >= 1, k >= 1; got {L=}, {d_x=}, "
                         f"{d=}, {p=}, {k=}")
    if link_sharing not in ("shared", "independent"):
        raise ValueError(f"link_sharing must be 'shared' or 'independent', got {link_sharing!r}")
    if link_sharing == "shared" and len(links) not in (1, p):
        raise ValueError(f"links must have length 1 or p={p}, got {len(links)}")
    if not links:
        raise ValueError("links must not be empty")
    for name in links:
        if name not in LINKS:
            raise ValueError(f"unknown link {name!r}; allowed: {', '.join(LINKS)}")
    if b not in ("uniform", "sign"):
        raise ValueError(f"b must be 'uniform' or 'sign', got {b!r}")
    if normalization not in ("sqrt", "mean", "none"):
        raise ValueError(f"normalization must be 'sqrt', 'mean' or 'none', got {normalization!r}")
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    if variant == "lag-k" and L < k + 2:
        raise ValueError(f"variant 'lag-k' needs L >= k + 2; got L = {L}, k = {k}")
    pr = pairs(variant, L, k)
    legacy = variant == "all-past" and link_sharing == "shared"

    if legacy:  # pacsim 0.1's draws, unchanged: dense (L, L, ...) arrays, masked
        exists = np.tril(np.ones((L, L), dtype=bool), k=-1)  # i < j
        exists[:, 0] = False  # position 0 is the start token, not a concept token
        exists[:2] = False  # outputs 0 and 1 are not scored
        mask = exists[:, :, None, None]
        w_dense = unit_rows(rng.standard_normal((L, L, p, d, d_x))) * mask[..., None]
        coef_dense = coefficients(rng, b, (L, L, p, d)) * mask
        w, coef = w_dense[pr[:, 0], pr[:, 1]], coef_dense[pr[:, 0], pr[:, 1]]
    else:
        w = unit_rows(rng.standard_normal((len(pr), p, d, d_x)))
        coef = coefficients(rng, b, (len(pr), p, d))

    if link_sharing == "shared":
        links = tuple(links) * (p if len(links) == 1 else 1)
        units = np.arange(p, dtype=np.int8)[None, :, None]
        link_idx = np.broadcast_to(units, (len(pr), p, d)).copy()
    else:
        links = tuple(links)
        link_idx = rng.integers(len(links), size=(len(pr), p, d)).astype(np.int8)

    n_terms = np.bincount(pr[:, 0], minlength=L).astype(np.float64)
    c = np.zeros(L)
    scored = n_terms > 0
    if normalization == "sqrt":
        c[scored] = 1.0 / np.sqrt(n_terms[scored] * p)
    elif normalization == "mean":
        c[scored] = 1.0 / (n_terms[scored] * p)
    else:
        c[scored] = 1.0
    return AZLConcept(variant=variant, k=int(k), pairs=pr, w=w, b=coef, link_idx=link_idx,
                      links=links, scale=float(scale), c=c, noise=float(noise), legacy=legacy,
                      cfg=cfg)


def make(cfg: Config, rng: np.random.Generator) -> AZLConcept:
    """Sample the target described by ``cfg`` from ``rng``."""
    return sample(rng, L=cfg.L, d_x=cfg.d_x, d=cfg.d, p=cfg.p, links=tuple(cfg.links), b=cfg.b,
                  normalization=cfg.normalization, noise=cfg.noise, variant=cfg.variant, k=cfg.k,
                  link_sharing=cfg.link_sharing, scale=cfg.scale, cfg=cfg)


#: This family's contract (:class:`pacsim.concepts.base.ConceptFamily`).
FAMILY = ConceptFamily("azl", Config, make, KIND, CONCEPT, SUMMARY, FORMULA, SOURCE, LABEL_SCALE)
