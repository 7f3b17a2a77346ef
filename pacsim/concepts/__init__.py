"""Concept classes: seeded target generators (NumPy only).

A concept is sampled once from its run's ``concept`` stream and can then label any number of
inputs: ``tokens, Y = concept.sample(n, rng)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import azl
from .links import LINKS

if TYPE_CHECKING:
    import numpy as np

    from ..config import ConceptConfig

__all__ = ["LINKS", "azl", "make"]


def make(cfg: ConceptConfig, rng: np.random.Generator) -> azl.AZLConcept:
    """Sample the target described by ``cfg`` from ``rng``."""
    return azl.sample(
        rng,
        L=cfg.L,
        d_x=cfg.d_x,
        d=cfg.d,
        p=cfg.p,
        links=tuple(cfg.links),
        b=cfg.b,
        normalization=cfg.normalization,
        noise=cfg.noise,
    )
