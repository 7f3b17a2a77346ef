"""AZLL's two-layer concept class: sums of smooth neurons times linear forms.

Allen-Zhu, Li & Liang, *Learning and Generalization in Overparameterized Neural Networks,
Going Beyond Two Layers* (NeurIPS 2019, arXiv 1811.04918 v5), concept class (3.1) and
Theorem 1.

Inputs follow AZLL's convention ``||x|| = 1`` with last coordinate ``x_{d_in} = 1/2``:
``x = (sqrt(3)/2 u, 1/2)`` with ``u`` uniform on ``S^{d_in - 2}``. For outputs ``r = 1..d``
(the paper's k)::

    f_r(x) = c sum_{i<=p} a_{r,i} phi_i(<w1_i, x>) <w2_i, x>         ||w1_i|| = ||w2_i|| = 1

with ``a`` in [-1, 1] (or +-1) and unit ``i`` using ``links[i]`` (scaled: ``phi(scale z)``).
``form = "standard"`` fixes ``w2_i = e_{d_in}``, so ``<w2_i, x> = 1/2``: the standard two-layer
network ``sum_i a phi(<w1_i, x>)`` (halved), a special case the paper names.
``normalize = "unit"`` sets ``c`` so that the mean over outputs of ``E f_r^2`` is 1, estimated
from ``N_NORMALISE = 4096`` points drawn from the concept stream after the weights;
``"none"`` keeps ``c = 1`` (the paper's scale).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from .._config_base import Frozen, NonNegFloat, PosFloat
from . import persist
from ._common import (
    AnyLinkName,
    HalfSphereTarget,
    class_complexity,
    coefficients,
    per_unit,
    unit_rows,
    unit_scale,
)
from .base import ConceptFamily
from .links import link

KIND = "vector"
SUMMARY = "AZLL two-layer class: f_r(x) = sum_i a_{r,i} phi_i(<w1_i, x>) <w2_i, x>"
FORMULA = ("f_r(x) = c sum_{i<=p} a_{r,i} phi_i(<w1_i, x>) <w2_i, x>, |w1| = |w2| = 1, |a| <= 1, "
           "x = (sqrt(3)/2 u, 1/2); standard form: w2_i = e_{d_in}")
SOURCE = ("Allen-Zhu, Li & Liang, arXiv 1811.04918 v5, concept class (3.1), Theorem 1")
LABEL_SCALE = ("normalize 'unit': mean over outputs of E f_r^2 = 1 (Monte Carlo); "
               "'none': the paper's scale")


class Config(Frozen):
    """``family = "azll2"``: AZLL's two-layer concept class."""

    family: Literal["azll2"] = "azll2"
    d_in: Annotated[int, Field(ge=2, le=4096, description="input dimension, the 1/2 coordinate "
                               "included")] = 8
    d: Annotated[int, Field(ge=1, le=256, description="output dimension (the paper's k)")] = 1
    p: Annotated[int, Field(ge=1, le=256, description="units")] = 4
    links: Annotated[tuple[AnyLinkName, ...], Field(  # type: ignore[valid-type]
        min_length=1, description="links phi_i (one, or one per unit)")] = ("sin",)
    scale: PosFloat = Field(1.0, description="link scale: phi(a z)")
    a: Literal["uniform", "sign"] = Field("uniform", description="coefficients: U[-1, 1] or +-1")
    form: Literal["product", "standard"] = Field(
        "product", description="product: phi(<w1, x>) <w2, x>; standard: w2 = e_{d_in}")
    normalize: Literal["unit", "none"] = Field("unit", description="unit: mean E f_r^2 = 1")
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
class AZLL2Concept(HalfSphereTarget):
    """A sampled two-layer target.

    Attributes
    ----------
    w1, w2 : ndarray (p, d_in), unit rows
    a : ndarray (d, p)
    links : tuple of str (one per unit)
    scale, c, noise : float
    """

    w1: np.ndarray
    w2: np.ndarray
    a: np.ndarray
    links: tuple[str, ...]
    scale: float
    c: float
    noise: float
    cfg: Any = field(default=None, compare=False)

    family = "azll2"

    def labels(self, x: np.ndarray) -> np.ndarray:
        return self.c * _raw(x, self.w1, self.w2, self.a, self.links, self.scale)

    def info(self) -> dict[str, float | int | str]:
        """Theorem 1's quantities: C_eps(phi, 1) and C_s(phi, 1) (AZLL's (i+1)^1.75; log10, max
        over the links; C* = 10^4 and C* = 1), and the normalisation c."""
        return {**class_complexity(self.links, self.scale), "rescale": self.c,
                "fingerprint": persist.fingerprint(self)}


CONCEPT = AZLL2Concept


def _raw(x, w1, w2, a, links, scale):
    Z = x @ w1.T  # (n, p)
    for i, name in enumerate(links):
        Z[:, i] = link(name, scale)(Z[:, i])
    return (Z * (x @ w2.T)) @ a.T


def make(cfg: Config, rng: np.random.Generator) -> AZLL2Concept:
    """Draw w1, w2 (product form), a, then the normalisation points, from ``rng``."""
    p, d_in = cfg.p, cfg.d_in
    w1 = unit_rows(rng.standard_normal((p, d_in)))
    if cfg.form == "product":
        w2 = unit_rows(rng.standard_normal((p, d_in)))
    else:
        w2 = np.zeros((p, d_in))
        w2[:, -1] = 1.0
    a = coefficients(rng, cfg.a, (cfg.d, p))
    links = per_unit(cfg.links, p)
    c = 1.0
    if cfg.normalize == "unit":
        c = unit_scale(lambda x: _raw(x, w1, w2, a, links, cfg.scale), d_in, rng)
    return AZLL2Concept(w1=w1, w2=w2, a=a, links=links, scale=float(cfg.scale), c=float(c),
                        noise=float(cfg.noise), cfg=cfg)


#: This family's contract (:class:`pacsim.concepts.base.ConceptFamily`).
FAMILY = ConceptFamily("azll2", Config, make, KIND, CONCEPT, SUMMARY, FORMULA, SOURCE, LABEL_SCALE)
