"""``eps_x`` as a number or as a rule of the sequence length ``L``.

The AZL and PG21 encodings shrink every concept token to ``eps_x x*_t`` (``||x*_t|| = 1``), so
``||x||^2 = 1 + (L - 1) eps_x^2`` (azl, start token included) grows with ``L`` at a fixed
``eps_x``. A rule makes ``eps_x`` a function of the concept's ``L``; ``"1/sqrt(L)"`` keeps
``||x||^2`` below 2 at every ``L``. The grammar is small on purpose (spaces are ignored)::

    <c>/sqrt(L)        c / sqrt(L)        e.g. "1/sqrt(L)", "0.5/sqrt(L)"
    <c>*L^<a>          c * L^a            e.g. "0.3*L^-0.5", "2*L^-1"
    L^<a>              L^a                e.g. "L^-0.5"

with ``c > 0`` and ``a`` any decimal number. The resolved value must lie in (0, 1], the range
of a numeric ``eps_x``; :func:`resolve` raises a one-line error otherwise.
"""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import AfterValidator, Field

from .base import LearnerError

_NUM = r"[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?"
_SQRT = re.compile(rf"^({_NUM})/sqrt\(L\)$")
_POWER = re.compile(rf"^(?:({_NUM})\*)?L\^([-+]?{_NUM})$")

#: The allowed forms, for error messages.
FORMS = 'a number in (0, 1], or a rule of L: "c/sqrt(L)", "c*L^a" or "L^a" (c > 0)'


def parse(rule: str) -> tuple[float, float]:
    """``(c, a)`` of a rule string (value ``c * L^a``); ``ValueError`` naming the allowed forms."""
    s = "".join(str(rule).split())
    m = _SQRT.match(s)
    if m:
        c, a = float(m.group(1)), -0.5
    else:
        m = _POWER.match(s)
        if not m:
            raise ValueError(f"{rule!r} is not a rule; allowed: {FORMS}")
        c = 1.0 if m.group(1) is None else float(m.group(1))
        a = float(m.group(2))
    if not (c > 0 and math.isfinite(c) and math.isfinite(a)):
        raise ValueError(f"{rule!r}: c must be a finite number > 0; allowed: {FORMS}")
    return c, a


def _check_rule(v: str) -> str:
    parse(v)
    return v


#: A config value: a number in (0, 1] or a rule string (checked when the config is read).
EpsX = Annotated[float, Field(gt=0, le=1)] | Annotated[str, AfterValidator(_check_rule)]


def resolve(eps_x: float | str, L: int, key: str = "model.eps_x") -> float:  # noqa: N803
    """The value of ``eps_x`` at sequence length ``L`` (a number is returned as it is).

    Raises :class:`LearnerError` if a rule gives a value outside (0, 1] at this ``L``.
    """
    if not isinstance(eps_x, str):
        return float(eps_x)
    c, a = parse(eps_x)
    value = c * float(L) ** a
    if not 0.0 < value <= 1.0:
        raise LearnerError(f"{key} = {eps_x!r} gives {value:.4g} at L = {L}; allowed: a rule "
                           "whose value lies in (0, 1] at every L of the sweep")
    return value


def rule(eps_x: float | str) -> str:
    """The rule as recorded (``learner_info.eps_x_rule``): the string, or ``"fixed"``."""
    return "".join(eps_x.split()) if isinstance(eps_x, str) else "fixed"
