"""Concept classes: seeded target generators (NumPy only), one module per family.

Every family module defines ``Config`` (its ``[base.concept]`` settings, with
``family: Literal[name]``) and ``make(cfg, rng) -> Concept`` (see :mod:`pacsim.concepts.base`).
:data:`FAMILIES` is the registry the sweep config is built from: adding a family is adding a
module and one entry here.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

from . import azl
from .base import Concept, n_scored, scored
from .links import LINKS

if TYPE_CHECKING:
    import numpy as np

__all__ = ["FAMILIES", "LINKS", "Concept", "azl", "make", "n_scored", "scored"]

#: family name -> module with ``Config`` and ``make``.
FAMILIES: dict[str, ModuleType] = {
    "azl": azl,
}


def make(cfg, rng: np.random.Generator) -> Concept:
    """Sample the target described by ``cfg`` (any family's ``Config``) from ``rng``."""
    return FAMILIES[cfg.family].make(cfg, rng)
