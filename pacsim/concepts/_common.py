"""Helpers shared by the concept families: token geometry, link-name types, complexity info."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Literal

import numpy as np

from . import complexity
from .links import ALL_LINKS, LINKS

#: A link of the RNN classes (entire, phi(0) = 0): names of :data:`pacsim.concepts.links.LINKS`.
LinkName = Literal[tuple(LINKS)]  # type: ignore[valid-type]
#: A link of the feed-forward classes: any name of :data:`pacsim.concepts.links.ALL_LINKS`.
AnyLinkName = Literal[tuple(ALL_LINKS)]  # type: ignore[valid-type]

#: Cosine of the angle of the "bias" coordinate: tokens are (sqrt(3)/2 * u, 1/2).
TOKEN_SCALE = math.sqrt(3.0) / 2.0
#: Points drawn (from the concept stream) to estimate a target's mean square for normalisation.
N_NORMALISE = 4096


def unit_rows(v: np.ndarray) -> np.ndarray:
    """Normalise the last axis to unit length (uniform on the sphere for Gaussian ``v``)."""
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def half_tokens(raw: np.ndarray) -> np.ndarray:
    """Gaussian ``raw`` (..., d - 1) -> unit vectors (..., d) with last coordinate 1/2:
    ``(sqrt(3)/2 * u, 1/2)`` with ``u`` uniform on the sphere."""
    out = np.empty(raw.shape[:-1] + (raw.shape[-1] + 1,))
    out[..., :-1] = TOKEN_SCALE * unit_rows(raw)
    out[..., -1] = 0.5
    return out


def coefficients(rng: np.random.Generator, law: str, shape) -> np.ndarray:
    """Output coefficients: ``"uniform"`` U[-1, 1] or ``"sign"`` +-1."""
    if law == "uniform":
        return rng.uniform(-1.0, 1.0, size=shape)
    if law == "sign":
        return rng.choice([-1.0, 1.0], size=shape)
    raise ValueError(f"coefficient law must be 'uniform' or 'sign', got {law!r}")


def per_unit(links: tuple[str, ...], n: int) -> tuple[str, ...]:
    """``links`` of length 1 or ``n`` -> one link per unit (length ``n``)."""
    if len(links) not in (1, n):
        raise ValueError(f"links must have length 1 or {n}, got {len(links)}")
    return tuple(links) * (n if len(links) == 1 else 1)


@lru_cache(maxsize=4096)
def _log10(measure: str, name: str, scale: float, R: float, C_star: float, variant: str,
           log10_R: float | None) -> float:
    phi = (name, scale)
    if measure == "C_eps":
        return complexity.log10_C_eps(phi, R, complexity.INFO_EPS, C_star, log10_R=log10_R)
    return complexity.log10_C_s(phi, R, C_star, variant, log10_R=log10_R)


def class_complexity(links, scale: float, R: float = 1.0, variant: str = "azll", prefix: str = "",
                     log10_R: float | None = None) -> dict[str, float | str]:
    """``info()`` entries for a class using ``links`` (each scaled by ``scale``) at radius R.

    ``log10_C_eps`` and ``log10_C_s`` at the papers' C* = 10^4 and eps = INFO_EPS, and the
    same at C* = 1 (``*_shape``: only the shape in R matters), each the max over the links;
    ``complexity_note`` explains an infinite value."""
    links = tuple(dict.fromkeys(links))
    out: dict[str, float | str] = {}
    for tag, cs in (("", complexity.C_STAR), ("_shape", 1.0)):
        for measure in ("C_eps", "C_s"):
            v = max(_log10(measure, n, float(scale), float(R), cs, variant, log10_R) for n in links)
            out[f"{prefix}log10_{measure}{tag}"] = float(v)
    note = complexity.class_reason([(n, scale) for n in links])
    if not note and not all(math.isfinite(v) for v in out.values()):
        note = ("too large to sum (more than 5e7 Taylor terms, i.e. C* R beyond ~5e7): "
                "astronomically large, reported as inf")
    out[f"{prefix}complexity_note"] = note
    return out


def link_arg_rms(w: np.ndarray, scale: float) -> float:
    """Root-mean-square argument ``a <w, x>`` of the links at the data's scale (``a`` = the link
    scale ``scale``), averaged over the units: how far into its non-linearity a link is driven.

    ``w`` has shape (..., T, d_x): one unit's weights over ``T`` tokens (T = 1 for AZL's
    per-token units, ``L - 2`` for PG21's whole sequence). For tokens ``(sqrt(3)/2 u, 1/2)``
    with ``u`` uniform on the sphere and independent across tokens (:func:`half_tokens`),
    ``E <w, x>^2 = sum_i (3/4) ||w_i[:-1]||^2 / (d_x - 1) + (sum_i w_i[-1] / 2)^2`` exactly.
    """
    w = np.asarray(w, dtype=np.float64)
    d_x = w.shape[-1]
    var = 0.75 * np.sum(np.square(w[..., :-1]), axis=(-2, -1)) / (d_x - 1)
    mean = 0.5 * np.sum(w[..., -1], axis=-1)
    return float(scale) * float(np.sqrt(np.mean(var + mean**2)))


class HalfSphereTarget:
    """What the AZLL targets (``azll2``, ``azll3``) share: inputs ``x = (sqrt(3)/2 u, 1/2)``
    with ``u`` uniform on the sphere, ``d_in`` from ``w1``, ``d`` from ``a``, optional label
    noise. A subclass (a frozen dataclass with ``w1``, ``a``, ``noise``) defines
    :meth:`labels`."""

    kind = "vector"
    positions = None

    @property
    def d_in(self) -> int:
        return self.w1.shape[1]

    @property
    def d(self) -> int:
        return self.a.shape[0]

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` samples (nested in ``n``): x (n, d_in) with last coordinate 1/2, f(x) (n, d)."""
        raw = rng.standard_normal((n, self.d_in - 1 + self.d))
        x = half_tokens(raw[:, : self.d_in - 1])
        Y = self.labels(x)
        if self.noise > 0:
            Y += self.noise * raw[:, self.d_in - 1:]
        return x, Y


def unit_scale(raw, d_in: int, rng: np.random.Generator) -> float:
    """The ``c`` of ``normalize = "unit"``: ``1 / sqrt(mean over outputs of E raw(x)^2)``,
    estimated on ``N_NORMALISE`` half-sphere inputs drawn from ``rng`` (1 if that is 0)."""
    x = half_tokens(rng.standard_normal((N_NORMALISE, d_in - 1)))
    ms = float(np.mean(raw(x) ** 2))
    return float(1.0 / np.sqrt(ms)) if ms > 0 else 1.0
