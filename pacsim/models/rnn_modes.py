"""The RNN's modes: presets of input encoding, initial scales of ``A`` and ``B``, trained
matrices and scored outputs (docs/learners.md, "Modes"), and the input encodings themselves
(AZL's and PG21's normalisation of the tokens, or the plain tokens). NumPy only; re-exported
by :mod:`pacsim.models.rnn`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Mode:
    """A preset of encoding, initial scales, trained matrices and scored outputs.

    Attributes
    ----------
    name : str
    trained : tuple of str
        Default trained matrices (a subset of :data:`PARAM_NAMES`).
    a_var, b_var : float
        ``A ~ N(0, a_var / m)`` and ``B ~ N(0, b_var / d)``.
    start_token, end_token : bool
        ``x_0`` (and ``x_{L-1}``) is the special token ``(0, ..., 0, 1)``.
    scale_tokens : bool
        Tokens enter as ``(eps_x * x*_t, 0)`` (else as ``x*_t`` itself, no extra coordinate).
    lam : float or None
        Fixed output scale (``None``: a hyper-parameter).
    scored : str
        ``"from_third"``: 0-based positions ``2..L-1``; ``"last"``: position ``L-1`` only.
    source : str
        Where the preset comes from.
    """

    name: str
    trained: tuple[str, ...]
    a_var: float
    b_var: float
    start_token: bool
    end_token: bool
    scale_tokens: bool
    lam: float | None
    scored: str
    source: str


#: The mode presets (docs/learners.md, "Modes").
MODES = {
    "azl": Mode(
        "azl", ("W",), 2.0, 1.0, True, False, True, None, "from_third",
        "Allen-Zhu & Li 2019 (arXiv 1902.01028); [RECALL]: "
        "B ~ N(0, 1/d), start token, outputs j >= 3 (1-based), only W trained",
    ),
    "pg21": Mode(
        "pg21", ("W", "A"), 2.0, 2.0, True, True, True, None, "last",
        "Panigrahi & Goyal 2021 (arXiv 2106.00047) Def. 3.1-3.2, Thm 3.1 [READ]: W, A ~ N(0, 2/m) trained, B ~ N(0, 2/d_out) fixed, start and "
        "end tokens, only the last output",
    ),
    "plain": Mode(
        "plain", ("W",), 2.0, 1.0, False, False, False, 1.0, "from_third",
        "pacsim's contrast mode 'plain': unit tokens at every position, no special "
        "token, no eps_x, lam = 1; AZL's initial scales; any subset of {W, A, B} trained",
    ),
}  # fmt: skip


def mode_spec(name: str) -> Mode:
    """The :class:`Mode` preset called ``name`` (one of :data:`MODES`)."""
    if name not in MODES:
        raise ValueError(f"mode must be one of {tuple(MODES)}, got {name!r}")
    return MODES[name]


def input_dim(mode_name: str, d_x: int) -> int:
    """``d_in`` of the network for tokens of dimension ``d_x``: ``d_x + 1`` with the special
    tokens' extra coordinate (azl, pg21), ``d_x`` for plain."""
    return d_x + 1 if mode_spec(mode_name).scale_tokens else d_x


def scored_positions(mode_name: str, L: int) -> np.ndarray:  # noqa: N803
    """0-based scored output positions: ``2..L-1`` (azl, plain: AZL's ``j >= 3``, 1-based) or
    ``[L-1]`` (pg21: the end of the sequence only)."""
    if mode_spec(mode_name).scored == "last":
        return np.array([L - 1], dtype=np.int64)
    return np.arange(2, L, dtype=np.int64)


def azl_inputs(tokens: np.ndarray, eps_x: float, dtype=np.float64) -> np.ndarray:
    """AZL input normalisation: (n, L, d_x) tokens -> (n, L, d_x + 1) network inputs.

    ``x_0 = (0, ..., 0, 1)`` (start token) and ``x_t = (eps_x * x*_t, 0)`` for ``t >= 1``;
    ``tokens[:, 0]`` is ignored.
    """
    n, L, d_x = tokens.shape
    X = np.zeros((n, L, d_x + 1), dtype=dtype)
    X[:, 0, -1] = 1.0
    X[:, 1:, :-1] = eps_x * tokens[:, 1:]
    return X


def pg21_inputs(tokens: np.ndarray, eps_x: float, dtype=np.float64) -> np.ndarray:
    """PG21 input normalisation (arXiv 2106.00047, Def. 3.1): (n, L, d_x) -> (n, L, d_x + 1).

    ``x_0 = x_{L-1} = (0, ..., 0, 1)`` (start and end tokens) and ``x_t = (eps_x * x*_t, 0)``
    for ``1 <= t <= L-2``; ``tokens[:, 0]`` and ``tokens[:, L-1]`` are ignored (the true
    sequence has length ``L - 2``).
    """
    X = azl_inputs(tokens, eps_x, dtype)
    X[:, -1] = 0.0
    X[:, -1, -1] = 1.0
    return X


def plain_inputs(tokens: np.ndarray, dtype=np.float64) -> np.ndarray:
    """Plain encoding: the tokens themselves at every position, (n, L, d_x) -> (n, L, d_x)."""
    return np.array(tokens, dtype=dtype, order="C", copy=True)


def encode_inputs(mode_name: str, tokens: np.ndarray, eps_x: float = 1.0, dtype=np.float64):
    """Network inputs of ``mode_name`` for (n, L, d_x) tokens (``eps_x`` ignored for plain)."""
    if mode_name == "pg21":
        return pg21_inputs(tokens, eps_x, dtype)
    if mode_spec(mode_name).scale_tokens:
        return azl_inputs(tokens, eps_x, dtype)
    return plain_inputs(tokens, dtype)
