"""The AZL-ResNet concept class (Concept 1): a base signal F plus a composite signal G(F).

Allen-Zhu & Li, *What Can ResNet Learn Efficiently, Going Beyond Kernels?* (NeurIPS 2019,
arXiv 1905.10337 v2), Concept 1 and Theorem 1.

For x uniform on the unit sphere of ``R^{d_in}`` and outputs ``r = 1..d`` (the paper's k)::

    H(x)   = beta F(x) + alpha G(F(x))
    F_r(x) = c_F sum_{i<=p_F} a_{F,r,i} phi_i(<w_{r,i}, x>)          ||w_{r,i}|| = 1/sqrt(2)
    G_r(h) =     sum_{i<=p_G} a_{G,r,i} psi_i(<v_{r,i}, h>)          ||v_{r,i}|| = 1/sqrt(2)

with ``a`` in [-1, 1] (``"uniform"``) or +-1 (``"sign"``), unit ``i`` of F using
``links_F[i]`` (scaled: ``phi(scale_F z)``) and unit ``i`` of G using ``links_G[i]``.

Normalisation (the paper's Concept 1 assumes ``||x|| = 1`` and ``||F(x)|| = 1`` on the support;
an exact ``||F(x)|| = 1`` is not possible for a generic F): ``c_F`` makes ``E ||F(x)||^2 = 1``,
estimated once from ``N_NORMALISE = 4096`` points drawn from the concept stream after the
weights (pacsim's choice). ``c_F`` is recorded (``F_rescale``); it multiplies the
paper's ``|a*| <= 1`` coefficients. The base signal then has ``E ||beta F||^2 = beta^2`` and the
composite signal is smaller by ``alpha < 1``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from .._config_base import Frozen, NonNegFloat, PosFloat
from . import persist
from ._common import N_NORMALISE, AnyLinkName, class_complexity, coefficients, per_unit, unit_rows
from .base import Composite, ConceptFamily
from .links import link

KIND = "vector"
SUMMARY = "AZL-ResNet Concept 1: H(x) = beta F(x) + alpha G(F(x)) on the unit sphere"
FORMULA = ("H(x) = beta F(x) + alpha G(F(x)); F_r(x) = c_F sum_i a_{F,r,i} phi_i(<w_{r,i}, x>), "
           "G_r(h) = sum_i a_{G,r,i} psi_i(<v_{r,i}, h>), |w| = |v| = 1/sqrt(2), |a| <= 1, "
           "x uniform on S^{d_in - 1}, c_F: E||F||^2 = 1")
SOURCE = ("Allen-Zhu & Li, What Can ResNet Learn Efficiently, Going Beyond Kernels? NeurIPS 2019, "
          "arXiv 1905.10337 v2, Concept 1, Theorem 1")
LABEL_SCALE = "E||beta F||^2 = beta^2 (Monte-Carlo normalised), plus alpha G(F) with alpha < 1"


class Config(Frozen):
    """``family = "resnet"``: AZL-ResNet's Concept 1, H = beta F + alpha G(F)."""

    family: Literal["resnet"] = "resnet"
    d_in: Annotated[int, Field(ge=2, le=4096, description="input dimension (x on the unit "
                               "sphere)")] = 16
    d: Annotated[int, Field(ge=1, le=256, description="output dimension (the paper's k)")] = 4
    p_F: Annotated[int, Field(ge=1, le=256, description="units per coordinate of F")] = 2
    p_G: Annotated[int, Field(ge=1, le=256, description="units per coordinate of G")] = 2
    links_F: Annotated[tuple[AnyLinkName, ...], Field(  # type: ignore[valid-type]
        min_length=1, description="links of F (one, or one per unit)")] = ("sin",)
    links_G: Annotated[tuple[AnyLinkName, ...], Field(  # type: ignore[valid-type]
        min_length=1, description="links of G (one, or one per unit)")] = ("z2",)
    scale_F: PosFloat = Field(1.0, description="link scale of F: phi(a z)")
    scale_G: PosFloat = Field(1.0, description="link scale of G: psi(a z)")
    alpha: Annotated[float, Field(ge=0, lt=1, description="weight of the composite signal "
                                  "G(F)")] = 0.3
    beta: NonNegFloat = Field(1.0, description="weight of the base signal F")
    a: Literal["uniform", "sign"] = Field("uniform", description="coefficients a*: U[-1, 1] or "
                                          "+-1")
    noise: NonNegFloat = Field(0.0, description="label noise std")

    @field_validator("links_F", "links_G", mode="before")
    @classmethod
    def _list_to_tuple(cls, v):
        return tuple(v) if isinstance(v, list) else v

    @model_validator(mode="after")
    def _links_fit(self):
        for name, links, p in (("links_F", self.links_F, self.p_F),
                               ("links_G", self.links_G, self.p_G)):
            if len(links) not in (1, p):
                raise ValueError(f"{name} has {len(links)} entries; allowed: 1 or "
                                 f"{'p_F' if name == 'links_F' else 'p_G'} = {p}")
        return self


@dataclass(frozen=True, eq=False)
class ResNetConcept(Composite):
    """A sampled Concept-1 target.

    Attributes
    ----------
    w : ndarray (d, p_F, d_in), norm 1/sqrt(2) rows
    a_F : ndarray (d, p_F)
    v : ndarray (d, p_G, d), norm 1/sqrt(2) rows
    a_G : ndarray (d, p_G)
    links_F, links_G : tuple of str (one per unit)
    scale_F, scale_G, c_F, alpha, beta, noise : float
    """

    w: np.ndarray
    a_F: np.ndarray
    v: np.ndarray
    a_G: np.ndarray
    links_F: tuple[str, ...]
    links_G: tuple[str, ...]
    scale_F: float
    scale_G: float
    c_F: float
    alpha: float
    beta: float
    noise: float
    cfg: Any = field(default=None, compare=False)

    family = "resnet"
    kind = "vector"
    positions = None

    @property
    def d_in(self) -> int:
        return self.w.shape[2]

    @property
    def d(self) -> int:
        return self.w.shape[0]

    def F(self, x: np.ndarray) -> np.ndarray:  # noqa: N802 - paper notation
        """The (normalised) base signal, (n, d_in) -> (n, d)."""
        return self.c_F * _net(x, self.w, self.a_F, self.links_F, self.scale_F)

    def G(self, h: np.ndarray) -> np.ndarray:  # noqa: N802 - paper notation
        """The composite map, (n, d) -> (n, d)."""
        return _net(h, self.v, self.a_G, self.links_G, self.scale_G)

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` samples (nested in ``n``): x (n, d_in) uniform on the sphere, H(x) (n, d)."""
        raw = rng.standard_normal((n, self.d_in + self.d))
        x = unit_rows(raw[:, : self.d_in])
        Y = self.labels(x)
        if self.noise > 0:
            Y += self.noise * raw[:, self.d_in:]
        return x, Y

    def info(self) -> dict[str, float | int | str]:
        """Theorem 1's quantities: C_eps and C_s (the ResNet paper's (i+1) variant) of F and G at
        R = 1 (log10; C* = 10^4 and C* = 1), p_F, p_G, c_F, alpha, beta."""
        return {**class_complexity(self.links_F, self.scale_F, variant="resnet", prefix="F_"),
                **class_complexity(self.links_G, self.scale_G, variant="resnet", prefix="G_"),
                "F_rescale": self.c_F, "alpha": self.alpha, "beta": self.beta,
                "fingerprint": persist.fingerprint(self)}


CONCEPT = ResNetConcept


def _net(x, w, a, links, scale):
    """sum_i a[r, i] phi_i(<w[r, i], x>): (n, d_in) -> (n, d)."""
    Z = np.einsum("rik,nk->nri", w, x)
    for i, name in enumerate(links):
        Z[:, :, i] = link(name, scale)(Z[:, :, i])
    return np.einsum("nri,ri->nr", Z, a)


def make(cfg: Config, rng: np.random.Generator) -> ResNetConcept:
    """Draw w, a_F, v, a_G, then the normalisation points, from ``rng``."""
    d, d_in = cfg.d, cfg.d_in
    w = unit_rows(rng.standard_normal((d, cfg.p_F, d_in))) / np.sqrt(2.0)
    a_F = coefficients(rng, cfg.a, (d, cfg.p_F))
    v = unit_rows(rng.standard_normal((d, cfg.p_G, d))) / np.sqrt(2.0)
    a_G = coefficients(rng, cfg.a, (d, cfg.p_G))
    links_F, links_G = per_unit(cfg.links_F, cfg.p_F), per_unit(cfg.links_G, cfg.p_G)
    x = unit_rows(rng.standard_normal((N_NORMALISE, d_in)))
    ms = float(np.mean(np.sum(_net(x, w, a_F, links_F, cfg.scale_F) ** 2, axis=1)))
    c_F = 1.0 / np.sqrt(ms) if ms > 0 else 1.0
    return ResNetConcept(w=w, a_F=a_F, v=v, a_G=a_G, links_F=links_F, links_G=links_G,
                         scale_F=float(cfg.scale_F), scale_G=float(cfg.scale_G), c_F=float(c_F),
                         alpha=float(cfg.alpha), beta=float(cfg.beta), noise=float(cfg.noise),
                         cfg=cfg)


#: This family's contract (:class:`pacsim.concepts.base.ConceptFamily`).
FAMILY = ConceptFamily("resnet", Config, make, KIND, CONCEPT, SUMMARY, FORMULA, SOURCE, LABEL_SCALE)
