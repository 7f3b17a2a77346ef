"""AZL-ResNet's experiment: degree-2 parities plus a parity of them, on {-1, 1}^30.

Allen-Zhu & Li, *What Can ResNet Learn Efficiently, Going Beyond Kernels?* (arXiv 1905.10337):
the experiment of v2 (Sec. A, Fig. 2) and of the final version (NeurIPS 2019; its setting taken
from a slide summary, github.com/FrankCCCCC/DL_DB_Quick_Note,
``paper_presentation/beyond_kernel``, not from the final text).

x uniform on ``{-1, 1}^30`` (not normalised; no 1/2 coordinate), ``H = beta F + alpha G(F)``:

* ``version = "v2"`` (arXiv v2): ``k = 8``, ``F = (x1 x2, x3 x4, ..., x15 x16)``. The paper
  prints ``G(y) = (y1 y2 y3 y4, y5 y6 y7 y8)``, two coordinates, but its own "G not learned"
  floor ``k alpha^2 = 0.72`` (and the beta = 0 curve at about 0.78) imply that all 8 outputs
  carry a +-alpha parity term. pacsim's choice: ``G_r(y) = y_r y_{r+1} y_{r+2} y_{r+3}`` (indices
  mod 8), so every output has a degree-4 product of F-coordinates (a degree-8 parity of x).
* ``version = "final"`` (NeurIPS / later arXiv, [SLIDES]): ``k = 15``,
  ``F = (x1 x2, ..., x29 x30)``, ``G_i(y) = (-1)^i y1 y2 y3 y4`` for ``i = 1..15``.

``g`` swaps the pattern of G between the versions: ``"shared"`` with v2 is the final version's
``G_r = (-1)^r y1 y2 y3 y4`` on v2's eight outputs (one degree-8 parity of x for every output,
instead of eight different ones), the other reading of v2's printed G.

``alpha = 0.3`` in both. Every F-coordinate is a parity of x of degree 2 and every
G-coordinate one of degree 8, so F and G are orthogonal: ``E||H||^2 = k (beta^2 + alpha^2)``,
and predicting F alone leaves the test error ``k alpha^2`` (0.72 for v2, 1.35 for final): the
paper's "G not learned" floor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from .._config_base import Frozen, NonNegFloat
from . import persist
from .base import Composite, ConceptFamily

KIND = "vector"
SUMMARY = "AZL-ResNet experiment: x on {-1,1}^30, F = pairwise products, G = 4-fold products of F"
FORMULA = ("H(x) = beta F(x) + alpha G(F(x)); F_r = x_{2r-1} x_{2r}; v2: k = 8, "
           "G_r(y) = y_r y_{r+1} y_{r+2} y_{r+3} (mod 8); final: k = 15, "
           "G_i(y) = (-1)^i y1 y2 y3 y4; g swaps the two patterns of G")
SOURCE = ("Allen-Zhu & Li, arXiv 1905.10337, experiments (v2 Sec. A, Fig. 2; final version via "
          "a slide summary, github.com/FrankCCCCC/DL_DB_Quick_Note)")
LABEL_SCALE = ("E||H||^2 = k (beta^2 + alpha^2); error floor without G: k alpha^2 "
               "(0.72 v2, 1.35 final)")

D_IN = 30
K = {"v2": 8, "final": 15}
#: The pattern of G of each version (``g = None``).
DEFAULT_G = {"v2": "cyclic", "final": "shared"}


class Config(Frozen):
    """``family = "resnet-parity"``: the AZL-ResNet experiment target."""

    family: Literal["resnet-parity"] = "resnet-parity"
    version: Literal["v2", "final"] = Field("v2", description="v2: k = 8 (arXiv v2); final: "
                                            "k = 15 (final version)")
    g: Literal["cyclic", "shared"] | None = Field(
        None, description="pattern of G: cyclic G_r = y_r y_{r+1} y_{r+2} y_{r+3} (mod k), or "
        "shared G_r = (-1)^r y1 y2 y3 y4; None: the version's (v2 cyclic, final shared)")
    alpha: Annotated[float, Field(ge=0, lt=1, description="weight of G(F)")] = 0.3
    beta: NonNegFloat = Field(1.0, description="weight of the base signal F")
    noise: NonNegFloat = Field(0.0, description="label noise std")


@dataclass(frozen=True, eq=False)
class ParityConcept(Composite):
    """The experiment target (no random parameters).

    Attributes
    ----------
    version : str
    alpha, beta, noise : float
    """

    version: str
    alpha: float
    beta: float
    noise: float
    g: str = ""  #: "cyclic" or "shared" ("": the version's)
    cfg: Any = field(default=None, compare=False)

    family = "resnet-parity"
    kind = "vector"
    positions = None
    d_in = D_IN

    @property
    def d(self) -> int:
        return K[self.version]

    def F(self, x: np.ndarray) -> np.ndarray:  # noqa: N802 - paper notation
        k = self.d
        return x[:, 0 : 2 * k : 2] * x[:, 1 : 2 * k : 2]

    @property
    def g_pattern(self) -> str:
        """``"cyclic"`` or ``"shared"``: the pattern of G (``g``, or the version's)."""
        return self.g or DEFAULT_G[self.version]

    def G(self, y: np.ndarray) -> np.ndarray:  # noqa: N802 - paper notation
        k = self.d
        if self.g_pattern == "cyclic":
            return np.stack([np.prod(y[:, [(r + j) % k for j in range(4)]], axis=1)
                             for r in range(k)], axis=1)
        signs = np.array([(-1.0) ** i for i in range(1, k + 1)])
        return np.prod(y[:, :4], axis=1, keepdims=True) * signs

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` samples (nested in ``n``): x = signs of normal draws, H(x)."""
        raw = rng.standard_normal((n, D_IN + self.d))
        x = np.where(raw[:, :D_IN] >= 0, 1.0, -1.0)
        Y = self.labels(x)
        if self.noise > 0:
            Y += self.noise * raw[:, D_IN:]
        return x, Y

    def info(self) -> dict[str, float | int | str]:
        """The paper's "G not learned" floor k alpha^2 (summed squared error)."""
        return {"g": self.g_pattern, "floor_G_not_learned": self.d * self.alpha**2,
                "label_mean_sq": self.d * (self.beta**2 + self.alpha**2),
                "fingerprint": persist.fingerprint(self)}


CONCEPT = ParityConcept


def make(cfg: Config, rng: np.random.Generator) -> ParityConcept:
    """The target of ``cfg`` (deterministic; ``rng`` is not used)."""
    return ParityConcept(version=cfg.version, alpha=float(cfg.alpha), beta=float(cfg.beta),
                         noise=float(cfg.noise), g=cfg.g or "", cfg=cfg)


#: This family's contract (:class:`pacsim.concepts.base.ConceptFamily`).
FAMILY = ConceptFamily("resnet-parity", Config, make, KIND, CONCEPT, SUMMARY, FORMULA, SOURCE, LABEL_SCALE)
