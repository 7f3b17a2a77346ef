"""AZLL's three-layer concept class: a smooth function of sums of smooth neurons, times another.

Allen-Zhu, Li & Liang (arXiv 1811.04918 v5), concept class (4.1), Theorem 2 and Remark 4.3.

Inputs as in the two-layer class (``||x|| = 1``, ``x_{d_in} = 1/2``). For outputs ``r``::

    f_r(x) = c sum_{i<=p1} a_{r,i} Phi_i( sum_{j<=p2} v1_{i,j} phi_j(<w1_j, x>) )
                                 * ( sum_{j<=p2} v2_{i,j} phi_j(<w2_j, x>) )

with unit ``w1_j, w2_j`` in ``R^{d_in}``, unit rows ``v1_i, v2_i`` in ``R^{p2}``, ``|a| <= 1``;
inner unit ``j`` uses ``links_inner[j]`` (scaled by ``scale_inner``) in both sums and outer
unit ``i`` uses ``links_outer[i]`` (scaled by ``scale_outer``). ``form = "standard"`` drops the
second factor (it is 1): the standard three-layer network
``sum_i a Phi_i(sum_j v phi_j(<w_j, x>))``, a special case the paper names. ``normalize`` as in
``azll2``.

Theorem 2's complexities (recorded in ``info()``): the inner ``C_eps(phi, 1)``, ``C_s(phi, 1)``
and the outer ``C_eps(Phi, sqrt(p2) C_eps(phi, 1))`` and ``C_s(Phi, p2 C_s(phi, 1))`` (the outer
link is evaluated at the inner complexity; Remark 4.3). With C* = 10^4 the inner
``C_eps(sin, 1)`` is about 10^4343, so an entire non-polynomial outer link gets an
astronomically large value that is reported as ``inf`` (with a note); a polynomial outer link
stays finite.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from .._config_base import Frozen, NonNegFloat, PosFloat
from . import complexity, persist
from ._common import (
    AnyLinkName,
    HalfSphereTarget,
    _log10,
    class_complexity,
    coefficients,
    per_unit,
    unit_rows,
    unit_scale,
)
from .base import ConceptFamily
from .links import link

KIND = "vector"
SUMMARY = ("AZLL three-layer class: f_r(x) = sum_i a_{r,i} Phi_i(sum_j v1 phi_j(<w1_j,x>)) "
           "(sum_j v2 phi_j(<w2_j,x>))")
FORMULA = ("f_r(x) = c sum_{i<=p1} a_{r,i} Phi_i(sum_{j<=p2} v1_{i,j} phi_j(<w1_j, x>)) "
           "(sum_{j<=p2} v2_{i,j} phi_j(<w2_j, x>)); unit w, v rows; standard form: second "
           "factor 1")
SOURCE = ("Allen-Zhu, Li & Liang, arXiv 1811.04918 v5, concept class (4.1), Theorem 2, "
          "Remark 4.3")
LABEL_SCALE = ("normalize 'unit': mean over outputs of E f_r^2 = 1 (Monte Carlo); "
               "'none': the paper's scale")


class Config(Frozen):
    """``family = "azll3"``: AZLL's three-layer concept class."""

    family: Literal["azll3"] = "azll3"
    d_in: Annotated[int, Field(ge=2, le=4096, description="input dimension, the 1/2 coordinate "
                               "included")] = 8
    d: Annotated[int, Field(ge=1, le=256, description="output dimension (the paper's k)")] = 1
    p1: Annotated[int, Field(ge=1, le=256, description="outer units")] = 2
    p2: Annotated[int, Field(ge=1, le=256, description="inner units")] = 4
    links_inner: Annotated[tuple[AnyLinkName, ...], Field(  # type: ignore[valid-type]
        min_length=1, description="inner links phi_j (one, or one per inner unit)")] = ("sin",)
    links_outer: Annotated[tuple[AnyLinkName, ...], Field(  # type: ignore[valid-type]
        min_length=1, description="outer links Phi_i (one, or one per outer unit)")] = ("z2",)
    scale_inner: PosFloat = Field(1.0, description="inner link scale: phi(a z)")
    scale_outer: PosFloat = Field(1.0, description="outer link scale: Phi(a z)")
    a: Literal["uniform", "sign"] = Field("uniform", description="coefficients: U[-1, 1] or +-1")
    form: Literal["product", "standard"] = Field(
        "product", description="product: Phi(...) times a second inner sum; standard: Phi(...)")
    normalize: Literal["unit", "none"] = Field("unit", description="unit: mean E f_r^2 = 1")
    noise: NonNegFloat = Field(0.0, description="label noise std")

    @field_validator("links_inner", "links_outer", mode="before")
    @classmethod
    def _list_to_tuple(cls, v):
        return tuple(v) if isinstance(v, list) else v

    @model_validator(mode="after")
    def _links_fit(self):
        if len(self.links_inner) not in (1, self.p2):
            raise ValueError(f"links_inner has {len(self.links_inner)} entries; allowed: 1 or "
                             f"p2 = {self.p2}")
        if len(self.links_outer) not in (1, self.p1):
            raise ValueError(f"links_outer has {len(self.links_outer)} entries; allowed: 1 or "
                             f"p1 = {self.p1}")
        return self


@dataclass(frozen=True, eq=False)
class AZLL3Concept(HalfSphereTarget):
    """A sampled three-layer target.

    Attributes
    ----------
    w1, w2 : ndarray (p2, d_in), unit rows
    v1, v2 : ndarray (p1, p2), unit rows
    a : ndarray (d, p1)
    links_inner (p2 names), links_outer (p1 names) : tuple of str
    scale_inner, scale_outer, c, noise : float
    form : str
    """

    w1: np.ndarray
    w2: np.ndarray
    v1: np.ndarray
    v2: np.ndarray
    a: np.ndarray
    links_inner: tuple[str, ...]
    links_outer: tuple[str, ...]
    scale_inner: float
    scale_outer: float
    form: str
    c: float
    noise: float
    cfg: Any = field(default=None, compare=False)

    family = "azll3"

    def labels(self, x: np.ndarray) -> np.ndarray:
        return self.c * _raw(self, x)

    def info(self) -> dict[str, float | int | str]:
        """Inner C_eps(phi, 1), C_s(phi, 1); outer C_eps(Phi, sqrt(p2) C_eps(phi, 1)) and
        C_s(Phi, p2 C_s(phi, 1)) (log10; C* = 10^4 and C* = 1); the normalisation c."""
        inner = class_complexity(self.links_inner, self.scale_inner, prefix="inner_")
        p2 = self.w1.shape[0]
        out: dict[str, float | int | str] = dict(inner)
        note = inner["inner_complexity_note"]
        for tag, cs in (("", complexity.C_STAR), ("_shape", 1.0)):
            r_eps = 0.5 * math.log10(p2) + float(inner[f"inner_log10_C_eps{tag}"])
            r_s = math.log10(p2) + float(inner[f"inner_log10_C_s{tag}"])
            names = tuple(dict.fromkeys(self.links_outer))
            v_eps = max(_outer("C_eps", n, self.scale_outer, cs, r_eps) for n in names)
            v_s = max(_outer("C_s", n, self.scale_outer, cs, r_s) for n in names)
            out[f"outer_log10_C_eps{tag}"] = v_eps
            out[f"outer_log10_C_s{tag}"] = v_s
            if not note and not (math.isfinite(v_eps) and math.isfinite(v_s)):
                note = complexity.class_reason([(n, self.scale_outer) for n in names]) or (
                    f"outer link at radius 10^{r_eps:.4g} (C* = {cs:g}): an entire "
                    "non-polynomial link gives an astronomically large value, reported as inf")
        out["outer_complexity_note"] = note
        out["rescale"] = self.c
        out["fingerprint"] = persist.fingerprint(self)
        return out


CONCEPT = AZLL3Concept


def _outer(measure, name, scale, C_star, log10_R):
    if not math.isfinite(log10_R):
        return math.inf
    return _log10(measure, name, float(scale), 1.0, C_star, "azll", float(log10_R))


def _inner(x, w, links, scale):
    Z = x @ w.T  # (n, p2)
    for j, name in enumerate(links):
        Z[:, j] = link(name, scale)(Z[:, j])
    return Z


def _raw(c: AZLL3Concept, x: np.ndarray) -> np.ndarray:
    U = _inner(x, c.w1, c.links_inner, c.scale_inner) @ c.v1.T  # (n, p1)
    for i, name in enumerate(c.links_outer):
        U[:, i] = link(name, c.scale_outer)(U[:, i])
    if c.form == "product":
        U = U * (_inner(x, c.w2, c.links_inner, c.scale_inner) @ c.v2.T)
    return U @ c.a.T


def make(cfg: Config, rng: np.random.Generator) -> AZLL3Concept:
    """Draw w1, w2, v1, v2, a, then the normalisation points, from ``rng``."""
    p1, p2, d_in = cfg.p1, cfg.p2, cfg.d_in
    w1 = unit_rows(rng.standard_normal((p2, d_in)))
    w2 = unit_rows(rng.standard_normal((p2, d_in)))
    v1 = unit_rows(rng.standard_normal((p1, p2)))
    v2 = unit_rows(rng.standard_normal((p1, p2)))
    a = coefficients(rng, cfg.a, (cfg.d, p1))
    concept = AZLL3Concept(w1=w1, w2=w2, v1=v1, v2=v2, a=a,
                           links_inner=per_unit(cfg.links_inner, p2),
                           links_outer=per_unit(cfg.links_outer, p1),
                           scale_inner=float(cfg.scale_inner), scale_outer=float(cfg.scale_outer),
                           form=cfg.form, c=1.0, noise=float(cfg.noise), cfg=cfg)
    if cfg.normalize == "unit":
        c = unit_scale(lambda x: _raw(concept, x), d_in, rng)
        concept = dataclasses.replace(concept, c=c)
    return concept


#: This family's contract (:class:`pacsim.concepts.base.ConceptFamily`).
FAMILY = ConceptFamily("azll3", Config, make, KIND, CONCEPT, SUMMARY, FORMULA, SOURCE, LABEL_SCALE)
