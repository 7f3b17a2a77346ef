"""The base class of every config model (strict, frozen, unknown keys rejected).

Concept families (:mod:`pacsim.concepts`) and learners (:mod:`pacsim.learners`) each define
their own config class on this base; :mod:`pacsim.config` assembles them into the sweep file
schema, discriminated by ``concept.family`` and ``model.kind``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

PosInt = Annotated[int, Field(ge=1)]
PosFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class Frozen(BaseModel):
    """Strict (``"8"`` is not an int), frozen, and closed (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
