"""Concept classes: seeded target generators (NumPy only), one module per family.

Every family module declares its contract once, as ``FAMILY``, a
:class:`~pacsim.concepts.base.ConceptFamily`: ``Config`` (its ``[base.concept]`` settings, with
``family: Literal[name]``), ``make(cfg, rng) -> Concept`` (see :mod:`pacsim.concepts.base`),
``KIND`` (``"sequence"`` or ``"vector"``), ``CONCEPT`` (the class of its sampled targets) and
the strings ``SUMMARY``, ``FORMULA``, ``SOURCE`` and ``LABEL_SCALE`` shown by
``pacsim concepts``.
:data:`FAMILIES` is the registry the sweep config is built from: adding a family is adding a
module and one entry here. Complexity measures: :mod:`pacsim.concepts.complexity`; saving and
loading a sampled target: :func:`save`, :func:`load`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import (
    azl,
    azll2,
    azll3,
    azll_exp,
    complexity,
    pg21,
    regular,
    resnet,
    resnet_hard,
    resnet_parity,
)
from .base import Composite, Concept, ConceptFamily, components, n_scored, scored
from .links import LINKS
from .persist import fingerprint, load, save

if TYPE_CHECKING:
    import numpy as np

__all__ = ["FAMILIES", "LINKS", "Composite", "Concept", "azl", "catalogue", "complexity",
           "components", "describe", "fingerprint", "load", "make", "n_scored", "regenerate",
           "save", "scored"]

#: family name -> its contract (:class:`~pacsim.concepts.base.ConceptFamily`), declared by its
#: module.
FAMILIES: dict[str, ConceptFamily] = {m.FAMILY.name: m.FAMILY for m in (
    azl, pg21, regular, resnet, resnet_hard, resnet_parity, azll2, azll3, azll_exp)}


def make(cfg, rng: np.random.Generator) -> Concept:
    """Sample the target described by ``cfg`` (any family's ``Config``) from ``rng``."""
    return FAMILIES[cfg.family].make(cfg, rng)


def regenerate(cfg, seed: int) -> Concept:
    """The exact target of the run with concept config ``cfg`` and root ``seed`` (drawn again
    from the run's ``concept`` stream, as :func:`pacsim.train.run` does)."""
    from ..seeding import streams

    return make(cfg, streams(seed).concept)


def _module(name: str) -> ConceptFamily:
    from ..errors import ConfigError

    try:
        return FAMILIES[name]
    except KeyError:
        allowed = ", ".join(FAMILIES)
        raise ConfigError(f"unknown concept family {name!r}; allowed: {allowed}") from None


def parameters(name: str) -> list[tuple[str, str, str]]:
    """``(key, default as TOML, description)`` for every config key of family ``name``."""
    out = []
    for key, f in _module(name).Config.model_fields.items():
        out.append((key, _toml(f.default), f.description or ""))
    return out


def catalogue() -> str:
    """Every family, one block each: name, kind, summary, and its keys with their defaults."""
    blocks = []
    for name, mod in FAMILIES.items():
        keys = ", ".join(f"{k} = {v}" for k, v, _ in parameters(name) if k != "family")
        blocks.append(f"{name} ({mod.KIND}): {mod.SUMMARY}\n  {keys}")
    tail = "`pacsim concepts NAME` describes one family; see docs/concepts.md."
    return "\n".join(blocks) + "\n\n" + tail


def describe(name: str) -> str:
    """Formula, source, label scale and parameters of family ``name``."""
    mod = _module(name)
    width = max(len(k) for k, _, _ in parameters(name))
    lines = [f"{name} ({mod.KIND} concept): {mod.SUMMARY}", "",
             f"formula:     {mod.FORMULA}", f"source:      {mod.SOURCE}",
             f"label scale: {mod.LABEL_SCALE}", "", "parameters ([base.concept] keys, defaults):"]
    for key, default, desc in parameters(name):
        if key == "family":
            continue
        lines.append(f"  {key:<{width}} = {default:<12} {desc}")
    return "\n".join(lines)


def _toml(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, tuple | list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return str(v)
