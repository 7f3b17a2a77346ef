"""Regular languages over {0, 1}: recognise membership from the whole string, label at the end.

PG21 (Panigrahi & Goyal, arXiv 2106.00047) Sec. 5 and its appendix on regular languages and
Tomita grammars (Tomita 1982; definitions as in Weiss, Goldberg & Yahav, ICML 2018).

Layout (as PG21): position 0 is the start position, positions ``1..L-2`` carry the string
``z`` of length ``ell = L - 2``, position ``L-1`` is the end position (rows 0 and L-1 are zero);
only the end position is scored, with label ``+1`` if ``z`` is in the language and ``-1`` if not.

Token embedding (PG21's token normalisation, Def. 3.1): symbol 0 -> ``sqrt(3)/2 e_1 + 1/2 e_{d_x}``,
symbol 1 -> ``sqrt(3)/2 e_2 + 1/2 e_{d_x}``: unit vectors with last coordinate 1/2, as the RNN
theorems require (``d_x >= 3``; extra coordinates are zero).

Languages (``language``):

* ``exactly-one``: exactly one 1 (PG21's D_{L_1}: not in the AZL class, one quadratic neuron
  in the PG21 class);
* ``contains``: contains ``pattern`` (a string over {0, 1}) as a substring;
* ``parity``: an odd number of 1s;
* Tomita grammars (Tomita 1982), with the definitions of the widely used reference
  implementation of Weiss, Goldberg & Yahav (ICML 2018, ``tech-srl/lstar_extraction``):
  ``tomita1`` 1*; ``tomita2`` (10)*; ``tomita3``: no odd-length block of 1s followed (at once
  or later) by an odd-length block of 0s (blocks are maximal runs); ``tomita4``: no ``000``;
  ``tomita5``: even number of 0s and even number of 1s; ``tomita6``: (#0 - #1) divisible by 3;
  ``tomita7``: 0*1*0*1*. (Some papers read Tomita 3 as "an odd block of 1s *immediately*
  followed by an odd block of 0s"; pacsim uses the "at once or later" reading above.)

Sampling (``sampling``), each sample consuming exactly ``1 + ell`` uniform draws so that
``sample`` is nested in ``n``:

* ``"balanced"`` (default): the first draw ``u_0`` picks the class (member if ``u_0 < 1/2``),
  then the string is a **uniformly random string of that class and length**: walking the
  language's DFA from its start state, symbol ``t`` is 1 with probability
  ``#(class completions after 1) / #(class completions)``, counted exactly (Python integers)
  by dynamic programming over the DFA, and compared with draw ``u_{t+1}``. Members and
  non-members are therefore equally likely at every length, and uniform within their class.
  A length at which one class is empty (e.g. ``tomita2`` at odd lengths, ``tomita7`` at lengths
  <= 3, ``contains`` shorter than the pattern) cannot be balanced: the config is refused with
  a message naming the empty class (use another ``L`` or ``sampling = "uniform"``).
* ``"uniform"``: ``u_0`` is unused and the string is uniform over {0, 1}^ell (symbol t = 1 iff
  ``u_{t+1} < 1/2``); labels follow the language's natural proportion (recorded in ``info()``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, model_validator

from .._config_base import Frozen
from . import persist
from ._common import TOKEN_SCALE
from .base import ConceptFamily

KIND = "sequence"
SUMMARY = "regular languages over {0,1} (exactly-one, contains, parity, Tomita 1-7), +-1 at the end"
FORMULA = ("y = +1 if z in language else -1, at position L-1; z = tokens 1..L-2 in {0,1}, "
           "0 -> sqrt(3)/2 e_1 + 1/2 e_dx, 1 -> sqrt(3)/2 e_2 + 1/2 e_dx")
SOURCE = ("Panigrahi & Goyal, arXiv 2106.00047, Sec. 5 (regular languages); Tomita 1982; "
          "Tomita definitions as in Weiss, Goldberg & Yahav, ICML 2018")
LABEL_SCALE = "+1 / -1 (balanced sampling: mean 0, variance 1)"

LANGUAGES = ("exactly-one", "contains", "parity",
             "tomita1", "tomita2", "tomita3", "tomita4", "tomita5", "tomita6", "tomita7")


@dataclass(frozen=True)
class DFA:
    """A complete DFA over {0, 1}: ``delta[q, a]`` is the next state, state 0 is the start."""

    delta: tuple[tuple[int, int], ...]
    accept: tuple[bool, ...]

    @property
    def n_states(self) -> int:
        return len(self.accept)

    def accepts(self, z) -> bool:
        q = 0
        for a in z:
            q = self.delta[q][int(a)]
        return self.accept[q]


def _contains(pattern: str) -> DFA:
    """KMP automaton of 'contains pattern': state = length of the longest matched prefix."""
    m = len(pattern)
    delta = []
    for q in range(m + 1):
        row = []
        for a in "01":
            if q == m:
                row.append(m)
                continue
            s = pattern[:q] + a
            while s and not pattern.startswith(s):
                s = s[1:]
            row.append(len(s))
        delta.append(tuple(row))
    return DFA(tuple(delta), tuple(q == m for q in range(m + 1)))


_DFAS: dict[str, DFA] = {
    # state: number of 1s so far (0, 1, 2 = more)
    "exactly-one": DFA(((0, 1), (1, 2), (2, 2)), (False, True, False)),
    "parity": DFA(((0, 1), (1, 0)), (False, True)),
    # 0: all 1s so far, 1: dead
    "tomita1": DFA(((1, 0), (1, 1)), (True, False)),
    # 0: expect 1 (accepting), 1: expect 0, 2: dead
    "tomita2": DFA(((2, 1), (0, 2), (2, 2)), (True, False, False)),
    # 0: no odd 1-block completed yet (in 0s, at start, or in an even 1-block)
    # 1: in an odd 1-block (none completed before)  2: odd 1-block seen, now in an odd 0-block
    # 3: odd 1-block seen, current 0-block even (or in 1s)  4: dead
    "tomita3": DFA(((0, 1), (2, 0), (3, 4), (2, 3), (4, 4)), (True, True, False, True, False)),
    # state: number of trailing 0s (0, 1, 2), 3: dead
    "tomita4": DFA(((1, 0), (2, 0), (3, 0), (3, 3)), (True, True, True, False)),
    # state = 2 * (#0 mod 2) + (#1 mod 2)
    "tomita5": DFA(((2, 1), (3, 0), (0, 3), (1, 2)), (True, False, False, False)),
    # state = (#0 - #1) mod 3
    "tomita6": DFA(((1, 2), (2, 0), (0, 1)), (True, False, False)),
    # 0*1*0*1*: phase 0 (0s), 1 (1s), 2 (0s), 3 (1s), 4 dead
    "tomita7": DFA(((0, 1), (2, 1), (2, 3), (4, 3), (4, 4)), (True, True, True, True, False)),
}


def dfa(language: str, pattern: str = "101") -> DFA:
    """The DFA of ``language`` (``pattern`` is used by ``contains`` only)."""
    if language == "contains":
        return _contains(pattern)
    try:
        return _DFAS[language]
    except KeyError:
        allowed = ", ".join(LANGUAGES)
        raise ValueError(f"unknown language {language!r}; allowed: {allowed}") from None


def _member_counts(a: DFA, ell: int):
    """Yield ``cnt_r`` for ``r = 0..ell``: ``cnt_r[q]`` = number of accepted strings of length
    ``r`` read from state ``q`` (exact Python integers)."""
    cnt = [int(x) for x in a.accept]
    yield cnt
    for _ in range(ell):
        cnt = [cnt[d0] + cnt[d1] for d0, d1 in a.delta]
        yield cnt


def class_sizes(language: str, ell: int, pattern: str = "101") -> tuple[int, int]:
    """(members, non-members) of length ``ell`` (exact)."""
    *_, last = _member_counts(dfa(language, pattern), ell)
    return last[0], 2**ell - last[0]


@lru_cache(maxsize=32)
def _p_one(a: DFA, ell: int) -> np.ndarray:
    """``P[c, r, q]``: probability that the next symbol is 1, for class ``c`` (0: non-member,
    1: member), with ``r`` symbols left (1..ell) in state ``q``; 1/2 where the class is empty."""
    out = np.full((2, ell + 1, a.n_states), 0.5)
    prev = None
    for r, cnt in enumerate(_member_counts(a, ell)):
        if r:
            for q, (_, d1) in enumerate(a.delta):
                mem, mem1 = cnt[q], prev[d1]
                non, non1 = 2**r - mem, 2 ** (r - 1) - mem1
                if mem:
                    out[1, r, q] = mem1 / mem
                if non:
                    out[0, r, q] = non1 / non
        prev = cnt
    out.flags.writeable = False
    return out


class Config(Frozen):
    """``family = "regular"``: membership of a binary string in a regular language."""

    family: Literal["regular"] = "regular"
    language: Literal[LANGUAGES] = Field(  # type: ignore[valid-type]
        "parity", description="exactly-one, contains, parity, tomita1 ... tomita7")
    pattern: Annotated[str, Field(pattern=r"^[01]{1,32}$", description="substring for "
                                  "language = \"contains\" (ignored otherwise)")] = "101"
    L: Annotated[int, Field(ge=3, le=4096, description="sequence length: start, L - 2 "
                            "symbols, end")] = 8
    d_x: Annotated[int, Field(ge=3, le=4096, description="token dimension (symbols use "
                              "coordinates 1, 2 and d_x)")] = 3
    sampling: Literal["balanced", "uniform"] = Field(
        "balanced", description="balanced: members and non-members equally likely, uniform "
        "within each; uniform: uniform strings")

    @model_validator(mode="after")
    def _both_classes_exist(self):
        if self.sampling != "balanced":
            return self
        ell = self.L - 2
        members, non = class_sizes(self.language, ell, self.pattern)
        if members == 0 or non == 0:
            empty = "members" if members == 0 else "non-members"
            raise ValueError(
                f"language {self.language!r} has no {empty} of length {ell} (L = {self.L}), so "
                f"sampling = \"balanced\" is impossible; choose another L or sampling = \"uniform\""
            )
        return self


@dataclass(frozen=True, eq=False)
class RegularConcept:
    """A regular-language recogniser target (deterministic given its config).

    Attributes
    ----------
    language, pattern, sampling : str
    L, d_x : int
    """

    language: str
    pattern: str
    sampling: str
    L: int
    d_x: int
    cfg: Any = field(default=None, compare=False)

    family = "regular"
    kind = "sequence"
    d = 1

    @property
    def ell(self) -> int:
        """String length ``L - 2``."""
        return self.L - 2

    @property
    def positions(self) -> np.ndarray:
        return np.array([self.L - 1])

    @property
    def dfa(self) -> DFA:
        return dfa(self.language, self.pattern)

    def info(self) -> dict[str, float | int | str]:
        members, non = class_sizes(self.language, self.ell, self.pattern)
        return {"language": self.language, "string_length": self.ell,
                "dfa_states": self.dfa.n_states,
                "member_fraction_uniform": members / 2**self.ell,
                "member_fraction": 0.5 if self.sampling == "balanced" else members / 2**self.ell,
                "fingerprint": persist.fingerprint(self)}

    def embed(self, z: np.ndarray) -> np.ndarray:
        """Strings (n, ell) of 0/1 -> tokens (n, L, d_x) (rows 0 and L-1 zero)."""
        z = np.asarray(z, dtype=np.int64)
        n = z.shape[0]
        tokens = np.zeros((n, self.L, self.d_x))
        tokens[:, 1:-1, 0] = TOKEN_SCALE * (z == 0)
        tokens[:, 1:-1, 1] = TOKEN_SCALE * (z == 1)
        tokens[:, 1:-1, -1] = 0.5
        return tokens

    def strings(self, tokens: np.ndarray) -> np.ndarray:
        """Tokens -> strings (n, ell) of 0/1 (inverse of :meth:`embed`)."""
        return (tokens[:, 1:-1, 1] > tokens[:, 1:-1, 0]).astype(np.int64)

    def member(self, z: np.ndarray) -> np.ndarray:
        """Membership (n,) bool of strings (n, ell), by running the DFA."""
        a = self.dfa
        delta = np.array(a.delta)
        q = np.zeros(z.shape[0], dtype=np.int64)
        for t in range(z.shape[1]):
            q = delta[q, z[:, t]]
        return np.array(a.accept)[q]

    def labels(self, tokens: np.ndarray) -> np.ndarray:
        """Labels (n, L, 1): +-1 at position L-1, zero elsewhere."""
        Y = np.zeros((tokens.shape[0], self.L, 1))
        Y[:, -1, 0] = np.where(self.member(self.strings(tokens)), 1.0, -1.0)
        return Y

    def sample_strings(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` strings (n, ell) of 0/1, consuming exactly ``n * (1 + ell)`` uniform draws."""
        ell = self.ell
        u = rng.random((n, 1 + ell))
        if self.sampling == "uniform":
            return (u[:, 1:] < 0.5).astype(np.int64)
        a = self.dfa
        delta = np.array(a.delta)
        p1 = _p_one(a, ell)
        cls = (u[:, 0] < 0.5).astype(np.int64)  # 1: member
        q = np.zeros(n, dtype=np.int64)
        z = np.empty((n, ell), dtype=np.int64)
        for t in range(ell):
            z[:, t] = u[:, 1 + t] < p1[cls, ell - t, q]
            q = delta[q, z[:, t]]
        return z

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` labelled strings (nested in ``n``): tokens (n, L, d_x), labels (n, L, 1)."""
        tokens = self.embed(self.sample_strings(n, rng))
        return tokens, self.labels(tokens)


CONCEPT = RegularConcept


def make(cfg: Config, rng: np.random.Generator) -> RegularConcept:
    """The target of ``cfg`` (it has no random parameters; ``rng`` is not used)."""
    return RegularConcept(language=cfg.language, pattern=cfg.pattern, sampling=cfg.sampling,
                          L=cfg.L, d_x=cfg.d_x, cfg=cfg)


def min_length(language: str, pattern: str = "101", upto: int = 64) -> int | None:
    """The smallest string length with both members and non-members (None if none <= upto)."""
    for ell in range(1, upto + 1):
        m, nm = class_sizes(language, ell, pattern)
        if m and nm:
            return ell
    return None


#: This family's contract (:class:`pacsim.concepts.base.ConceptFamily`).
FAMILY = ConceptFamily("regular", Config, make, KIND, CONCEPT, SUMMARY, FORMULA, SOURCE, LABEL_SCALE)
