"""Validated, frozen config models and TOML loading.

A sweep file has a ``name``, the ``seeds``, a ``base`` run (``[base.concept]``,
``[base.model]``, ``[base.train]``), a ``grid`` of lists of values for any ``base`` keys
(``"concept.L" = [4, 8, 16]``, or the nested form ``[grid.concept] L = [...]``) and the
sample-complexity ``target``. Unknown keys are rejected, values are type-checked strictly
(``"8"`` is not an integer), and every error is one line naming the key path, the bad value and
what is allowed, raised before any work starts.
"""

from __future__ import annotations

import copy
import itertools
import math
import tomllib
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

from . import concepts, learners
from ._config_base import Frozen as _Frozen
from ._config_base import PosFloat, PosInt
from .errors import ConfigError


def _union(registry: dict, key: str, default: str, section: str):
    """The configs of a registry as one type, discriminated by ``key`` (default ``default``)."""

    def tag(v):
        return v.get(key, default) if isinstance(v, dict) else getattr(v, key, None)

    members = tuple(Annotated[mod.Config, Tag(name)] for name, mod in registry.items())
    allowed = ", ".join(repr(n) for n in registry)
    return Annotated[
        Union[members],  # noqa: UP007 - a runtime-built union
        Discriminator(tag, custom_error_type="unknown_tag",
                      custom_error_message=f"unknown {section}.{key}; allowed: {allowed}"),
    ]


#: ``[base.concept]``: one of the families of :data:`pacsim.concepts.FAMILIES`, by ``family``.
ConceptConfig = _union(concepts.FAMILIES, "family", "azl", "concept")
#: ``[base.model]``: one of the learners of :data:`pacsim.learners.LEARNERS`, by ``kind``.
ModelConfig = _union(learners.LEARNERS, "kind", "rnn", "model")
#: The sections whose class is chosen by a tag, and the registries of their classes.
_TAGGED = {"concept": concepts.FAMILIES, "model": learners.LEARNERS}


class TrainConfig(_Frozen):
    """Vanilla SGD by default: batch 1, constant step, no momentum, weight decay or clipping.

    ``optimizer = "momentum"`` is the papers' *experimental* optimiser instead (AZL-ResNet and
    AZLL experiments, arXiv 1905.10337 v2 and arXiv 1811.04918 v5, Figs. 1-2: mini-batch
    50, heavy-ball momentum 0.9, step size divided by 10 half-way): not vanilla SGD, and not
    what the theorems analyse. It needs the finite protocol. ``optimizer = "minibatch"`` is
    plain mini-batch SGD over the finite protocol's N samples (batch ``batch``, constant step,
    no momentum or weight decay; early stopping with ``patience`` as for vanilla SGD), on the
    learners' batched gradient paths.
    """

    protocol: Literal["online", "finite"] = "online"
    #: "auto": search a geometric grid up to the stability edge (lr_start, lr_factor, lr_max)
    #: and choose on the validation set; or a step size; or a list of step sizes to choose from
    lr: Literal["auto"] | PosFloat | Annotated[tuple[PosFloat, ...], Field(min_length=1)] = "auto"
    #: "ntk": eta = lr / T with T the per-sample NTK trace (rnn.ntk_trace); "raw": eta = lr
    lr_units: Literal["ntk", "raw"] = "ntk"
    lr_start: PosFloat = 0.25  #: lr = "auto": the first step size tried (far below the edge)
    lr_factor: Annotated[float, Field(gt=1, le=16)] = 2.0  #: lr = "auto": grid ratio
    #: lr = "auto": the largest step size tried upwards (the search stops there if nothing
    #: diverged; lr_edge is then NaN)
    lr_max: PosFloat = 4096.0
    #: lr = "auto": the smallest step size tried downwards (when the best is the smallest)
    lr_min: PosFloat = 1e-6
    #: vanilla SGD: after this many steps (finite: at the first epoch boundary past it),
    #: re-measure the NTK trace and rescale the step to lr in units of the trace now
    lr_warmup: PosInt | None = None
    epochs: PosInt = 10  #: finite protocol: passes over the N samples (the most, with patience)
    #: finite protocol, vanilla SGD: stop when the validation error has not improved for this
    #: many epochs and keep the best epoch's weights (None: run every epoch, keep the last);
    #: ignored by the online protocol, like epochs
    patience: PosInt | None = None
    n_test: Annotated[int, Field(ge=2)] = 1000  #: held-out test samples
    n_val: Annotated[int, Field(ge=2)] = 500  #: validation samples (used to choose lr)
    #: "sgd": vanilla SGD (batch 1); "minibatch": plain mini-batch SGD (finite protocol);
    #: "momentum": the papers' experimental preset (finite protocol)
    optimizer: Literal["sgd", "minibatch", "momentum"] = "sgd"
    batch: PosInt = 50  #: minibatch and momentum: mini-batch size
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9  #: momentum: heavy-ball coefficient
    decay_at: Annotated[float, Field(gt=0, le=1)] = 0.5  #: momentum: fraction of epochs before the decay
    decay_factor: Annotated[float, Field(gt=0, le=1)] = 0.1  #: momentum: step-size factor after it
    #: momentum: L2 coefficient, or a list chosen jointly with lr per cell on validation
    weight_decay: (Annotated[float, Field(ge=0, allow_inf_nan=False)]
                   | Annotated[tuple[Annotated[float, Field(ge=0, allow_inf_nan=False)], ...],
                               Field(min_length=1)]) = 0.0
    #: "half_sse": mean over the batch of 1/2 ||f - y||^2 summed over the k = S d scored outputs;
    #: "mse": PyTorch's nn.MSELoss(), the mean over the batch and the k outputs (2/k times
    #: half_sse), so lr and weight_decay mean what they mean in the papers' PyTorch code
    loss: Literal["half_sse", "mse"] = "half_sse"

    @model_validator(mode="after")
    def _momentum_needs_finite(self):
        if self.optimizer != "sgd" and self.protocol != "finite":
            raise ValueError(f'optimizer = "{self.optimizer}" needs protocol = "finite"')
        return self

    @model_validator(mode="after")
    def _optimizer_keys(self):
        if self.optimizer != "momentum" and any(self.weight_decays):
            raise ValueError('weight_decay belongs to optimizer = "momentum" (the papers\' '
                             f'preset); optimizer = "{self.optimizer}" has none')
        if self.lr_warmup is not None and (self.optimizer != "sgd" or self.lr_units != "ntk"):
            raise ValueError('lr_warmup rescales a step in NTK units: it needs optimizer = "sgd" '
                             'and lr_units = "ntk"')
        if self.patience is not None and self.optimizer == "momentum":
            raise ValueError('patience (early stopping) is for optimizer = "sgd" or '
                             '"minibatch"; the momentum preset runs all its epochs, as the '
                             "papers do")
        if self.lr_min > self.lr_start or self.lr_start > self.lr_max:
            raise ValueError(f"need lr_min <= lr_start <= lr_max; got {self.lr_min}, "
                             f"{self.lr_start}, {self.lr_max}")
        return self

    @field_validator("weight_decay", mode="before")
    @classmethod
    def _wd_values(cls, v):
        if isinstance(v, list):
            if len(set(map(repr, v))) != len(v):
                raise ValueError("duplicate weight decays; list each once")
            return tuple(v)
        return v

    @property
    def weight_decays(self) -> tuple[float, ...]:
        """The candidate weight decays (one when ``weight_decay`` is a number)."""
        wd = self.weight_decay
        return wd if isinstance(wd, tuple) else (wd,)

    @field_validator("lr", mode="before")
    @classmethod
    def _lr_values(cls, v):
        if v == "auto":
            return v
        values = v if isinstance(v, list | tuple) else [v]
        ok = values and all(_is_positive_number(x) for x in values)
        if not ok:
            raise ValueError('allowed: "auto", a positive number or a non-empty list of positive '
                             "numbers")
        if len(set(values)) != len(values):
            raise ValueError("duplicate step sizes; list each once")
        return tuple(values) if isinstance(v, list | tuple) else v

    @property
    def lrs(self) -> tuple[float, ...]:
        """The step sizes to run first: the list, the one number, or ``lr_start`` for "auto"
        (whose search then extends the grid, :func:`auto_lr_next`)."""
        if self.lr == "auto":
            return (self.lr_start,)
        return self.lr if isinstance(self.lr, tuple) else (self.lr,)

    @property
    def lr_search(self) -> str:
        """How the step size is found: "auto" (searched), "list" (chosen from a list) or
        "fixed" (one value)."""
        return "auto" if self.lr == "auto" else "list" if isinstance(self.lr, tuple) else "fixed"

    def auto_lr(self, k: int) -> float:
        """The ``k``-th step size of the "auto" grid: ``lr_start * lr_factor ** k``."""
        return float(self.lr_start * self.lr_factor ** k)


class TargetConfig(_Frozen):
    """What counts as learned, and how hard to look for N_eps."""

    eps: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 0.2  #: normalised test error target
    n_min: PosInt = 16  #: smallest N tried (first checkpoint for the online protocol)
    n_max: PosInt = 16384  #: sample budget; a cell that needs more is censored
    points_per_doubling: Annotated[int, Field(ge=1, le=32)] = 4  #: online checkpoint density
    grid_factor: Annotated[float, Field(gt=1, le=16)] = 2.0  #: finite: geometric bracketing ratio
    rel_tol: Annotated[float, Field(gt=0, lt=1)] = 0.1  #: finite: bisect until hi/lo - 1 <= rel_tol
    n_boot: Annotated[int, Field(ge=100)] = 1000  #: bootstrap resamples over seeds
    ci: Annotated[float, Field(gt=0, lt=1)] = 0.95  #: confidence level
    max_steps: PosInt | None = None  #: cap on SGD steps per run (None: no cap beyond n_max)
    max_wall_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None  #: per-run wall cap

    @model_validator(mode="after")
    def _range(self):
        if self.n_min > self.n_max:
            raise ValueError(f"n_min = {self.n_min} exceeds n_max = {self.n_max}")
        return self


class RunSpec(_Frozen):
    """Everything about one cell of a sweep but the seed and N."""

    concept: ConceptConfig = concepts.azl.Config()
    model: ModelConfig = learners.rnn.Config()
    train: TrainConfig = TrainConfig()

    @model_validator(mode="after")
    def _learner_fits_concept(self):
        try:  # the concept's kind, and e.g. an RNN mode's scored positions
            learners.check_concept(self.model, self.concept)
        except learners.LearnerError as e:
            raise ValueError(str(e)) from None
        return self


_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class SweepConfig(_Frozen):
    """A sweep: the grid of cells, the seeds and the sample-complexity target."""

    name: Annotated[str, Field(pattern=_NAME, max_length=100)]
    seeds: Annotated[tuple[Annotated[int, Field(ge=0, lt=2**63)], ...], Field(min_length=1)]
    base: RunSpec = RunSpec()
    grid: dict[str, tuple[Any, ...]] = {}
    target: TargetConfig = TargetConfig()

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, v):
        if isinstance(v, list):
            if not v:
                raise ValueError("at least one seed is required")
            try:
                dup = sorted({s for s in v if v.count(s) > 1}, key=str)
            except TypeError:  # unhashable entries: the type check names the first one
                return tuple(v)
            if dup:
                raise ValueError(f"duplicate seeds {dup}; each seed may appear once")
            return tuple(v)
        return v

    @field_validator("grid", mode="before")
    @classmethod
    def _flatten_grid(cls, v):
        if not isinstance(v, dict):
            return v
        flat = _flatten(v)
        for key, values in flat.items():
            if not isinstance(values, list) or not values:
                raise ValueError(f"{key} must be a non-empty list of values, got {values!r}")
            if any(values.count(x) > 1 for x in values):
                raise ValueError(f"{key} has duplicate values {values}")
            if key in _TAGGED and not all(isinstance(x, dict) for x in values):
                raise ValueError(f"{key} must be a list of tables ([[grid.{key}]] entries)")
        return {k: tuple(vals) for k, vals in flat.items()}

    @model_validator(mode="after")
    def _grid_keys(self):
        for key in self.grid:
            if not (key in _TAGGED or _is_field_path(RunSpec, key.split("."))):
                raise ValueError(
                    f"grid key {key!r} is not a base setting; allowed: concept.*, model.*, "
                    "train.*, or a list of whole concept or model tables"
                )
        self.cells()  # every combination must validate
        return self

    def cells(self) -> list[tuple[dict[str, Any], RunSpec]]:
        """Every grid point as ``(grid values, validated RunSpec)``, in grid order.

        A whole-section grid key (``[[grid.model]]`` tables) is applied first: its table is
        merged over the base section's keys that the table's family or kind also has. Dotted
        keys are applied after it.
        """
        keys = list(self.grid)
        out = []
        base = self.base.model_dump()
        explicit = self.base.model_dump(exclude_unset=True)  # what the user wrote in [base.*]
        for combo in itertools.product(*(self.grid[k] for k in keys)):
            values = dict(zip(keys, combo, strict=True))
            raw = copy.deepcopy(base)
            for key, value in sorted(values.items(), key=lambda kv: "." in kv[0]):
                if key in _TAGGED:
                    raw[key] = _merge_section(key, base[key], explicit.get(key, {}), value)
                    continue
                *parents, leaf = key.split(".")
                node = raw
                try:
                    for part in parents:
                        node = node[part]
                    node[leaf] = list(value) if isinstance(value, tuple) else value
                except (KeyError, TypeError):
                    raise ValueError(f"grid key {key!r} does not name a setting") from None
            try:
                out.append((values, RunSpec.model_validate(raw)))
            except ValidationError as e:
                where = ", ".join(f"{k}={_short(v)}" for k, v in values.items())
                raise ValueError(f"grid point ({where}): {_first_error(e)}") from None
        return out


def section_label(value: Any) -> Any:
    """A short label for a grid value: a whole-section table becomes ``"rnn(m=128)"``."""
    return _short(value) if isinstance(value, dict) else value


def load_sweep(path: str | Path) -> SweepConfig:
    """Read and validate a sweep TOML file; raise :class:`ConfigError` with a one-line message."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} not found") from None
    except OSError as e:
        raise ConfigError(f"cannot read config file {str(path)!r}: {e.strerror}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
    return parse_sweep(raw, source=str(path))


def parse_sweep(raw: dict, source: str = "config") -> SweepConfig:
    """Validate a sweep from a dict (as parsed from TOML)."""
    try:
        return SweepConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(f"{source}: {_first_error(e)}") from None


def geometric_grid(lo: int, hi: int, per_doubling: int) -> list[int]:
    """Integers from ``lo`` to ``hi`` (both included), ``per_doubling`` points per factor 2."""
    k = math.ceil(per_doubling * math.log2(hi / lo) - 1e-9)
    pts = {round(lo * 2 ** (i / per_doubling)) for i in range(k + 1)}
    return sorted(p for p in pts | {lo, hi} if lo <= p <= hi)


# Internal helpers


def _is_positive_number(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and 0 < x < math.inf


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _is_field_path(model: type[BaseModel], parts: list[str]) -> bool:
    """Whether ``parts`` names a leaf setting. Keys inside the tagged sections (concept, model)
    depend on the family or kind, so they are checked when each grid point is validated."""
    if model is RunSpec and parts[0] in _TAGGED:
        return len(parts) == 2  # concept and model settings are flat
    field = model.model_fields.get(parts[0])
    if field is None:
        return False
    if len(parts) == 1:
        return not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel))
    sub = field.annotation
    return isinstance(sub, type) and issubclass(sub, BaseModel) and _is_field_path(sub, parts[1:])


def _merge_section(section: str, base: dict, explicit: dict, table: dict) -> dict:
    """``table`` over the keys set explicitly in the base section (``explicit``; the base's
    defaults are not inherited) that the table's class also has, with a value it allows: a key
    two kinds share with different options (``init = "azl"`` of the rnn is no ``init`` of an
    entk) is not carried over; other values are, and validated there."""
    tag_key = "family" if section == "concept" else "kind"
    registry = _TAGGED[section]
    tag = table.get(tag_key, base[tag_key])
    fields = registry[tag].Config.model_fields if tag in registry else {}
    inherited = {k: v for k, v in explicit.items()
                 if k in fields and k != tag_key and _allows(fields[k], v)}
    return {**inherited, **table, tag_key: tag}


def _allows(field: FieldInfo, value: Any) -> bool:
    """Whether ``value`` is one of ``field``'s options when the field is a choice among names
    (a ``Literal``, possibly ``| None``); any value for other fields, where a bad value is
    reported by validation rather than left behind."""
    options = _literal_options(field.annotation)
    if options is None:
        return True
    try:
        return value in options
    except TypeError:  # unhashable: a list is no option of a Literal
        return False


def _literal_options(annotation) -> set | None:
    """The values a ``Literal`` annotation (or a union of them and ``None``) allows; ``None``
    for any other annotation."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return set(args)
    if origin is Annotated:
        return _literal_options(args[0])
    if origin in (Union, types.UnionType):
        options: set = set()
        for arg in args:
            sub = {None} if arg is type(None) else _literal_options(arg)
            if sub is None:
                return None
            options |= sub
        return options
    return None


def _short(value: Any) -> str:
    if not isinstance(value, dict):
        return repr(value)
    tag = value.get("kind", value.get("family"))
    rest = ",".join(f"{k}={v}" for k, v in value.items() if k not in ("kind", "family"))
    if tag is None:  # the table keeps the base section's family or kind
        return rest
    return f"{tag}({rest})" if rest else str(tag)


def _clean_loc(loc: tuple) -> tuple:
    """Drop the union tag pydantic inserts after a tagged section (``model.rnn.m`` -> ``model.m``)."""
    out = []
    for i, part in enumerate(loc):
        if i > 0 and loc[i - 1] in _TAGGED and part in _TAGGED[loc[i - 1]]:
            continue
        out.append(part)
    return tuple(out)


def _first_error(e: ValidationError) -> str:
    """One line for the first error: key path, bad value, what is allowed (+ count of others)."""
    errors = e.errors(include_url=False)
    err = errors[0]
    loc = ".".join(str(p) for p in _clean_loc(err["loc"]))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    if err["type"] == "unknown_tag":
        return f"{loc}: {err['msg']}{more}"
    if err["type"] == "extra_forbidden":
        allowed = _allowed_keys(err["loc"][:-1])
        return f"unknown key {loc!r}; allowed here: {allowed}{more}"
    if err["type"] == "missing":
        return f"missing required key {loc!r}{more}"
    msg = err["msg"].removeprefix("Value error, ")
    if not loc:
        return f"{msg}{more}"
    if isinstance(err["input"], dict):  # a check across keys: the message names them
        return f"{loc}: {msg}{more}"
    return f"{loc} = {err['input']!r}: {msg}{more}"


def _allowed_keys(loc: tuple) -> str:
    parts = list(loc)
    model: type[BaseModel] = RunSpec if parts and parts[0] in RunSpec.model_fields else SweepConfig
    while parts:
        part = str(parts.pop(0))
        field = model.model_fields.get(part)
        if field is None:
            return "(see docs)"
        if part in _TAGGED and model is RunSpec:
            tag = str(parts.pop(0)) if parts else None
            if tag not in _TAGGED[part]:
                return "(see docs)"
            model = _TAGGED[part][tag].Config
            continue
        if not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            return "(see docs)"
        model = field.annotation
    return ", ".join(model.model_fields)
