"""AZLL's experiment targets on the unit sphere of R^4.

Allen-Zhu, Li & Liang (arXiv 1811.04918 v5), Sec. "Experiments", Figs. 1-2.

x is Gaussian in R^4 normalised to the unit sphere (no 1/2 coordinate: the experiments use
biases instead), and the scalar label is, for ``target``:

* ``"sincos"`` (Fig. 1): ``y = (sin 3x1 + sin 3x2 + sin 3x3 - 2)^2 cos 7x4``;
* ``"tanh"`` (Fig. 2): ``y = (tanh 8x1 + tanh 8x2 + tanh 8x3 - 2)^2 tanh 8x4``.

Labels are on the paper's scale (not normalised), so test errors compare with the paper's
MSE figures: ``E y^2`` is about 31.2 (sincos) and 76.8 (tanh) (Monte Carlo; checked in
tests/test_concepts_families.py).

As a member of the three-layer class: ``p1 = 1``, ``p2 = 3`` inner units ``phi = sin(3z)`` with
``w1_j = e_j``, ``v1 = (1, 1, 1)/sqrt(3)``, outer ``Phi(z) = (sqrt(3) z - 2)^2``, and the second
factor ``cos(7 <e_4, x>)`` (``tanh(8z)`` in the tanh target). ``info()`` records the inner
complexities (``sin 3z`` and ``cos 7z``; AZLL chose 3 and 7 so that C(cos 7z) ~ C(sin 3z)^2,
their footnote 16) and the outer ``C_eps(Phi, sqrt(3) C_eps(phi, 1))``. tanh(8z) has Taylor
radius pi/16 < 1: its complexity is infinite, the target lies outside the theorem (the paper
learns it anyway), and the note says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import Field

from .._config_base import Frozen, NonNegFloat
from . import complexity, persist
from ._common import class_complexity, unit_rows
from .base import ConceptFamily

KIND = "vector"
SUMMARY = ("AZLL experiments on S^3: (sin 3x1 + sin 3x2 + sin 3x3 - 2)^2 cos 7x4, "
           "and the tanh variant")
FORMULA = ("sincos: y = (sin 3x1 + sin 3x2 + sin 3x3 - 2)^2 cos 7x4; tanh: y = (tanh 8x1 + "
           "tanh 8x2 + tanh 8x3 - 2)^2 tanh 8x4; x uniform on the unit sphere of R^4")
SOURCE = ("Allen-Zhu, Li & Liang, arXiv 1811.04918 v5, experiments (Figs. 1-2)")
LABEL_SCALE = "the paper's scale: E y^2 ~ 31.2 (sincos), ~ 76.8 (tanh)"

D_IN = 4
#: (inner link, scale) of the first factor and of the second factor, per target.
LINKS = {"sincos": (("sin", 3.0), ("cos", 7.0)), "tanh": (("tanh", 8.0), ("tanh", 8.0))}
#: The outer link Phi(z) = (sqrt(3) z - 2)^2 = 3 z^2 - 4 sqrt(3) z + 4.
OUTER = complexity.Series.polynomial([4.0, -4.0 * math.sqrt(3.0), 3.0], "(sqrt(3)z-2)^2")


class Config(Frozen):
    """``family = "azll-exp"``: AZLL's experiment targets."""

    family: Literal["azll-exp"] = "azll-exp"
    target: Literal["sincos", "tanh"] = Field("sincos", description="sincos (Fig. 1) or tanh "
                                              "(Fig. 2)")
    noise: NonNegFloat = Field(0.0, description="label noise std")


@dataclass(frozen=True, eq=False)
class AZLLExpConcept:
    """An AZLL experiment target (no random parameters)."""

    target: str
    noise: float
    cfg: Any = field(default=None, compare=False)

    family = "azll-exp"
    kind = "vector"
    positions = None
    d_in = D_IN
    d = 1

    def labels(self, x: np.ndarray) -> np.ndarray:
        if self.target == "sincos":
            y = (np.sin(3 * x[:, :3]).sum(axis=1) - 2.0) ** 2 * np.cos(7 * x[:, 3])
        else:
            y = (np.tanh(8 * x[:, :3]).sum(axis=1) - 2.0) ** 2 * np.tanh(8 * x[:, 3])
        return y[:, None]

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` samples (nested in ``n``): x (n, 4) on the sphere, y (n, 1)."""
        raw = rng.standard_normal((n, D_IN + 1))
        x = unit_rows(raw[:, :D_IN])
        Y = self.labels(x)
        if self.noise > 0:
            Y += self.noise * raw[:, D_IN:]
        return x, Y

    def info(self) -> dict[str, float | int | str]:
        first, second = LINKS[self.target]
        out: dict[str, float | int | str] = {}
        for prefix, (name, scale) in (("phi1_", first), ("phi2_", second)):
            out.update(class_complexity((name,), scale, prefix=prefix))
        for tag, cs in (("", complexity.C_STAR), ("_shape", 1.0)):
            inner = max(float(out[f"phi1_log10_C_eps{tag}"]), float(out[f"phi2_log10_C_eps{tag}"]))
            log10_R = 0.5 * math.log10(3.0) + inner
            out[f"outer_log10_C_eps{tag}"] = (
                complexity.log10_C_eps(OUTER, C_star=cs, log10_R=log10_R)
                if math.isfinite(log10_R) else math.inf)
        out["fingerprint"] = persist.fingerprint(self)
        return out


CONCEPT = AZLLExpConcept


def make(cfg: Config, rng: np.random.Generator) -> AZLLExpConcept:
    """The target of ``cfg`` (deterministic; ``rng`` is not used)."""
    return AZLLExpConcept(target=cfg.target, noise=float(cfg.noise), cfg=cfg)


#: This family's contract (:class:`pacsim.concepts.base.ConceptFamily`).
FAMILY = ConceptFamily("azll-exp", Config, make, KIND, CONCEPT, SUMMARY, FORMULA, SOURCE, LABEL_SCALE)
