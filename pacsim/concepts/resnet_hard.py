"""AZL-ResNet's kernel lower-bound instance: coordinates plus their k-fold product, on a cube.

Allen-Zhu & Li, *What Can ResNet Learn Efficiently, Going Beyond Kernels?* (arXiv 1905.10337
v2), eq. (7.1), Theorem 2, Theorem 3 and Corollary 7.1 (the lower bounds for kernels and for
linear regression over feature mappings).

Input ``x`` in ``{-1/sqrt(d_in), +1/sqrt(d_in)}^{d_in}`` (the scaled hypercube). The paper takes
the first ``d1`` coordinates uniform and the rest from an *arbitrary* distribution D2; pacsim
takes all coordinates uniform (D2 uniform). Draw ``k = d`` distinct indices ``i_1..i_k`` from
the first ``d1`` (uniformly, from the concept stream). Then::

    F_j(x) = sqrt(d_in) x_{i_j}  in {-1, +1}             j = 1..k
    G(y)   = prod_{j<=k} y_j, in every one of the k outputs
    H(x)   = beta F(x) + alpha G(F(x))

Theorem 2: with ``N <= C(d1, k) / 1000`` samples, *any* kernel predictor has
``E||H - K||^2 > alpha^2 / 16`` on at least 99 % of these targets (the class has C(d1, k)
members). Corollary 7.1 (after rescaling F to norm 1) gives the ResNet
``N = O~(k^2 d / alpha^8)``. The lower-bound numbers are recorded in ``info()``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, model_validator

from .._config_base import Frozen, NonNegFloat
from . import persist
from .base import Composite, ConceptFamily

KIND = "vector"
SUMMARY = ("AZL-ResNet kernel lower-bound instance: x on the scaled cube, F = coordinates, "
           "G = k-fold product")
FORMULA = ("H(x) = beta F(x) + alpha G(F(x)); F_j = sqrt(d_in) x_{i_j} (k = d distinct indices in "
           "[d1]), G(y) = prod_j y_j in every output; x uniform on {+-1/sqrt(d_in)}^d_in")
SOURCE = ("Allen-Zhu & Li, arXiv 1905.10337 v2, eq. (7.1), Theorems 2-3, Corollary 7.1")
LABEL_SCALE = "every output is +-beta +- alpha: E H_j^2 = beta^2 + alpha^2 exactly"


class Config(Frozen):
    """``family = "resnet-hard"``: the hard instance of AZL-ResNet's kernel lower bound."""

    family: Literal["resnet-hard"] = "resnet-hard"
    d_in: Annotated[int, Field(ge=2, le=4096, description="input dimension")] = 32
    d1: Annotated[int, Field(ge=2, le=4096, description="the indices are drawn from the first "
                             "d1 coordinates")] = 32
    d: Annotated[int, Field(ge=2, le=64, description="output dimension = k, the order of the "
                            "product")] = 3
    alpha: Annotated[float, Field(ge=0, lt=1, description="weight of the product G(F)")] = 0.3
    beta: NonNegFloat = Field(1.0, description="weight of the base signal F")
    noise: NonNegFloat = Field(0.0, description="label noise std")

    @model_validator(mode="after")
    def _sizes(self):
        if not self.d <= self.d1 <= self.d_in:
            raise ValueError(f"need d <= d1 <= d_in (k = d indices out of the first d1 "
                             f"coordinates); got d = {self.d}, d1 = {self.d1}, d_in = {self.d_in}")
        return self


@dataclass(frozen=True, eq=False)
class HardConcept(Composite):
    """A sampled hard instance.

    Attributes
    ----------
    idx : ndarray (k,), int
        The distinct indices ``i_1..i_k`` (0-based) into the first ``d1`` coordinates.
    d_in, d1 : int
    alpha, beta, noise : float
    """

    idx: np.ndarray
    d_in: int
    d1: int
    alpha: float
    beta: float
    noise: float
    cfg: Any = field(default=None, compare=False)

    family = "resnet-hard"
    kind = "vector"
    positions = None

    @property
    def d(self) -> int:
        return len(self.idx)

    def F(self, x: np.ndarray) -> np.ndarray:  # noqa: N802 - paper notation
        """The selected coordinates, scaled to +-1: (n, d_in) -> (n, k)."""
        return np.sqrt(self.d_in) * x[:, self.idx]

    def G(self, y: np.ndarray) -> np.ndarray:  # noqa: N802 - paper notation
        """The k-fold product, in every output: (n, k) -> (n, k)."""
        return np.repeat(np.prod(y, axis=1, keepdims=True), y.shape[1], axis=1)

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` samples (nested in ``n``): signs of one block of normal draws per sample."""
        raw = rng.standard_normal((n, self.d_in + self.d))
        x = np.where(raw[:, : self.d_in] >= 0, 1.0, -1.0) / np.sqrt(self.d_in)
        Y = self.labels(x)
        if self.noise > 0:
            Y += self.noise * raw[:, self.d_in:]
        return x, Y

    def info(self) -> dict[str, float | int | str]:
        """Theorem 2's numbers: class size C(d1, k), the sample size below which every kernel
        fails (C(d1, k)/1000), the kernel error floor alpha^2/16, and Corollary 7.1's ResNet
        sample size k^2 d_in / alpha^8 (constants and logs dropped)."""
        k, n_targets = self.d, math.comb(self.d1, self.d)
        return {"log10_n_targets": math.log10(n_targets),
                "kernel_n_bound": n_targets / 1000.0,
                "kernel_error_floor": self.alpha**2 / 16.0,
                "log10_resnet_n_cor71": (math.log10(k * k * self.d_in / self.alpha**8)
                                         if self.alpha > 0 else math.inf),
                "fingerprint": persist.fingerprint(self)}


CONCEPT = HardConcept


def make(cfg: Config, rng: np.random.Generator) -> HardConcept:
    """Draw the ``k`` distinct indices from ``rng``."""
    idx = rng.choice(cfg.d1, size=cfg.d, replace=False).astype(np.int64)
    return HardConcept(idx=idx, d_in=cfg.d_in, d1=cfg.d1, alpha=float(cfg.alpha),
                       beta=float(cfg.beta), noise=float(cfg.noise), cfg=cfg)


#: This family's contract (:class:`pacsim.concepts.base.ConceptFamily`).
FAMILY = ConceptFamily("resnet-hard", Config, make, KIND, CONCEPT, SUMMARY, FORMULA, SOURCE, LABEL_SCALE)
