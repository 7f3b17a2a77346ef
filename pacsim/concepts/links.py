"""Link functions Phi of the concept classes: entire functions with Phi(0) = 0.

Names are ASCII so they can be written in a TOML config. Every link is entire (infinite Taylor
radius), so the complexity measures of Allen-Zhu, Li & Liang (arXiv 1811.04918) are finite for
every one of them (rnn_theory.md section 2.1).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: name -> (vectorised function, formula shown to users)
LINKS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], str]] = {
    "z2": (np.square, "z^2"),
    "z3": (lambda z: z * z * z, "z^3"),
    "sin": (np.sin, "sin(z)"),
    "expm1": (np.expm1, "exp(z) - 1"),
    "cosm1": (lambda z: np.cos(z) - 1.0, "cos(z) - 1"),
}


def link(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """The vectorised link function called ``name`` (see :data:`LINKS`)."""
    try:
        return LINKS[name][0]
    except KeyError:
        raise ValueError(f"unknown link {name!r}; allowed: {', '.join(LINKS)}") from None
