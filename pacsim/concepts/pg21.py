"""The PG21 concept class: one smooth network of the whole sequence, label at the end.

Panigrahi & Goyal, *Learning and Generalization in RNNs* (NeurIPS 2021, arXiv 2106.00047),
Def. 3.3 (the concept class) and Theorem 3.1 (the learning result).

Layout (0-based positions, sequence length ``L`` including a start and an end position):

* position 0 is the start position and position ``L-1`` the end position; neither carries a
  concept token (their rows are zero; a learner in PG21 mode adds its own start and end
  markers, as PG21's ``x^(1) = x^(L) = (0, 1)``).
* tokens ``x*_i`` for ``i = 1..L-2`` are unit vectors in ``R^{d_x}`` with last coordinate 1/2, as
  in AZL.
* the only scored output is the end position ``L-1`` (``positions = [L-1]``)::

      y_s = c * sum_{r=1}^{p} b_{r,s} * Phi_{r,s}( <w_{r,s}, concat(x*_1, ..., x*_{L-2})> )

  with ``w_{r,s}`` uniform on the unit sphere of ``R^{(L-2) d_x}``, ``|b| <= 1`` and ``Phi``
  entire with ``Phi(0) = 0`` (optionally ``phi(a z)``). Because the concatenation has norm
  ``sqrt(L-2)`` and ``w`` is a random unit vector, ``<w, concat>`` is O(1) whatever ``L``, so
  the label scale does not drift with ``L``; ``c`` normalises over the ``p`` units only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from .._config_base import Frozen, NonNegFloat, PosFloat
from . import persist
from ._common import (
    LinkName,
    class_complexity,
    coefficients,
    half_tokens,
    link_arg_rms,
    per_unit,
    unit_rows,
)
from .base import ConceptFamily
from .links import link

KIND = "sequence"
SUMMARY = "PG21: one smooth network of the concatenated sequence, label at the end"
FORMULA = ("y_s = c sum_{r<=p} b_{r,s} Phi_{r,s}(<w_{r,s}, concat(x*_1..x*_{L-2})>) at position "
           "L-1 only; w unit in R^{(L-2) d_x}, |b| <= 1, Phi entire with Phi(0) = 0; c = 1/sqrt(p)")
SOURCE = ("Panigrahi & Goyal, Learning and Generalization in RNNs, NeurIPS 2021, arXiv "
          "2106.00047, Def. 3.3, Theorem 3.1")
LABEL_SCALE = ("O(1) and independent of L (<w, concat> is O(1)); normalization 'sqrt' "
               "divides by sqrt(p)")


class Config(Frozen):
    """``family = "pg21"``: one smooth network of the whole sequence, scored at the end."""

    family: Literal["pg21"] = "pg21"
    L: Annotated[int, Field(ge=3, le=4096, description="sequence length including the start "
                            "and end positions (L - 2 tokens)")] = 8
    d_x: Annotated[int, Field(ge=2, le=4096, description="token dimension")] = 8
    d: Annotated[int, Field(ge=1, le=64, description="output dimension")] = 1
    p: Annotated[int, Field(ge=1, le=64, description="hidden units")] = 1
    links: Annotated[tuple[LinkName, ...], Field(  # type: ignore[valid-type]
        min_length=1, description="link functions Phi (one, or one per unit)")] = ("sin",)
    scale: PosFloat = Field(1.0, description="link scale a: Phi(z) = phi(a z)")
    b: Literal["uniform", "sign"] = Field("uniform", description="output coefficients")
    normalization: Literal["sqrt", "mean", "none"] = Field(
        "sqrt", description="c = 1/sqrt(p), 1/p or 1")
    noise: NonNegFloat = Field(0.0, description="label noise std")

    @field_validator("links", mode="before")
    @classmethod
    def _list_to_tuple(cls, v):
        return tuple(v) if isinstance(v, list) else v

    @model_validator(mode="after")
    def _links_fit_p(self):
        if len(self.links) not in (1, self.p):
            raise ValueError(f"links has {len(self.links)} entries; allowed: 1 or p = {self.p}")
        return self


@dataclass(frozen=True, eq=False)
class PG21Concept:
    """A sampled PG21 target.

    Attributes
    ----------
    w : ndarray of shape (p, d, L - 2, d_x)
        ``w[r, s]`` is the unit vector ``w_{r,s}`` over the concatenated tokens (norm 1 over
        the last two axes).
    b : ndarray of shape (p, d)
    links : tuple of str, length p
    scale, c, noise : float
    """

    w: np.ndarray
    b: np.ndarray
    links: tuple[str, ...]
    scale: float
    c: float
    noise: float
    cfg: Any = field(default=None, compare=False)

    family = "pg21"
    kind = "sequence"

    @property
    def L(self) -> int:  # noqa: N802 - paper notation
        return self.w.shape[2] + 2

    @property
    def d(self) -> int:
        return self.w.shape[1]

    @property
    def d_x(self) -> int:
        return self.w.shape[3]

    @property
    def positions(self) -> np.ndarray:
        """Only the end position ``L-1`` is scored."""
        return np.array([self.L - 1])

    def info(self) -> dict[str, float | int | str]:
        """C_eps(Phi, R) and C_s(Phi, R) at R = sqrt(L) (log10; the concatenation has norm
        sqrt(L-2)); PG21's theorem uses R = O(1/eps_x), a learner setting. Also the link scale
        ``a`` and the rms link argument ``a <w, concat>`` at the data's scale."""
        R = float(np.sqrt(self.L))
        return {"complexity_R": R, **class_complexity(self.links, self.scale, R=R),
                "link_scale": float(self.scale),
                "link_arg_rms": link_arg_rms(self.w, self.scale),
                "fingerprint": persist.fingerprint(self)}

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` labelled sequences (nested in ``n``): tokens (n, L, d_x) with zero rows 0 and
        L-1, labels (n, L, d), non-zero only at position L-1."""
        L, d, d_x = self.L, self.d, self.d_x
        n_tok = (L - 2) * (d_x - 1)
        raw = rng.standard_normal((n, n_tok + d))
        tokens = np.zeros((n, L, d_x))
        tokens[:, 1:-1] = half_tokens(raw[:, :n_tok].reshape(n, L - 2, d_x - 1))
        Y = self.labels(tokens)
        if self.noise > 0:
            Y[:, -1] += self.noise * raw[:, n_tok:]
        return tokens, Y

    def labels(self, tokens: np.ndarray) -> np.ndarray:
        """Noise-free labels (n, L, d)."""
        Z = np.einsum("nik,rsik->nrs", tokens[:, 1:-1], self.w)  # (n, p, d)
        terms = np.empty_like(Z)
        for r, name in enumerate(self.links):
            terms[:, r] = link(name, self.scale)(Z[:, r])
        Y = np.zeros((tokens.shape[0], self.L, self.d))
        Y[:, -1] = self.c * np.einsum("nrs,rs->ns", terms, self.b)
        return Y


CONCEPT = PG21Concept


def make(cfg: Config, rng: np.random.Generator) -> PG21Concept:
    """Draw the target: weights, then coefficients, from ``rng``."""
    L, p, d, d_x = cfg.L, cfg.p, cfg.d, cfg.d_x
    w = unit_rows(rng.standard_normal((p, d, (L - 2) * d_x))).reshape(p, d, L - 2, d_x)
    b = coefficients(rng, cfg.b, (p, d))
    c = {"sqrt": 1.0 / np.sqrt(p), "mean": 1.0 / p, "none": 1.0}[cfg.normalization]
    return PG21Concept(w=w, b=b, links=per_unit(tuple(cfg.links), p), scale=float(cfg.scale),
                       c=float(c), noise=float(cfg.noise), cfg=cfg)


#: This family's contract (:class:`pacsim.concepts.base.ConceptFamily`).
FAMILY = ConceptFamily("pg21", Config, make, KIND, CONCEPT, SUMMARY, FORMULA, SOURCE, LABEL_SCALE)
