"""Kernel ridge regression and ridge readouts, with hyper-parameters chosen on a validation split.

Predictor (Arora et al. 2019, section 3): ``f(x) = K(x, X) (K(X, X) + ridge I)^{-1} Y``, no
intercept (the NTK regressions have none; include a constant feature or kernel offset if wanted),
solved by Cholesky (``scipy.linalg.cho_factor``/``cho_solve``) in float64.

Selection never sees test labels, by construction: :func:`fit`, :func:`fit_gram` and
:func:`fit_features` receive only the N training inputs and labels and return a fitted predictor;
test data is given to its ``predict`` method, which returns predictions and nothing else, and
scoring (:func:`mse`) happens outside. Inside ``fit`` a random validation split (fraction
``val_fraction = 0.2``, at least one sample, permutation from ``seed``) is carved from the N
training samples; every (kernel parameters, ridge) pair is fitted on the rest and scored by the
validation mean squared error (summed over output columns); the best pair (ties: larger ridge)
is refitted on all N samples.

Ridges are relative: ``ridge_abs = ridge * trace(K) / n`` for the Gram matrix ``K`` being
solved (neural-tangents' ``diag_reg`` convention), so a grid means the same for kernels of any
scale. Default grid :data:`RIDGES` = 0 and 1e-6 ... 1 in decades (1 for noisy labels).
``ridge = 0`` is the interpolating (min-norm) solution: the
Cholesky then gets a jitter of ``1e-12 trace(K)/n``, multiplied by 10 until the factorisation
succeeds (at most 1e-4 trace(K)/n); the jitter used is recorded on the fitted model.

Multi-output labels ``Y`` of shape (n, k) (or (n,), returned as such). The kernel may be:

* 2-D (n1, n2): one kernel shared by the k output columns (one factorisation for all);
* 3-D (n1, n2, k): a separate kernel per output column (e.g. ``rntk(..., blocks="diag")``
  with one column per scored position);
* 4-D (n1, n2, k, k): a joint kernel over (sample, output) pairs (e.g. ``rntk(...,
  blocks="full")``), solved as one (n k) x (n k) system, ridge relative to its trace / (n k).

"Random features": :func:`fit_features` is the same selection for a ridge readout on given
features ``F`` (n, p) (e.g. RNN hidden states), solved in the primal (p x p) when ``p <= n`` and
in the dual otherwise; its relative ridge is ``ridge * trace(F^T F) / n``; ``ridge = 0`` is
least squares (``np.linalg.lstsq``, min-norm).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve

__all__ = [
    "RIDGES",
    "VAL_FRACTION",
    "solve",
    "fit",
    "fit_gram",
    "fit_features",
    "ridge_coef",
    "KernelModel",
    "GramModel",
    "FeatureModel",
    "mse",
    "split",
]

#: Default relative ridge grid (multiples of trace(K)/n).
RIDGES: tuple[float, ...] = (0.0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
#: Default fraction of the N training samples held out for selection.
VAL_FRACTION = 0.2
_JITTER0, _JITTER_MAX = 1e-12, 1e-4


def mse(Yhat, Y) -> float:
    """Mean over samples of the squared error summed over output columns (no 1/2)."""
    Yhat = np.asarray(Yhat, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    if Yhat.shape != Y.shape:
        raise ValueError(f"shapes differ: {Yhat.shape} vs {Y.shape}")
    r = (Yhat - Y).reshape(Y.shape[0], -1)
    return float(np.mean(np.sum(r * r, axis=1)))


def split(n: int, val_fraction: float = VAL_FRACTION, seed: int = 0):
    """``(fit_idx, val_idx)``: a random partition of ``range(n)``, ``n_val = max(1, round(f n))``.

    Deterministic in ``seed``; both index arrays are sorted.
    """
    if n < 2:
        raise ValueError("need at least 2 training samples to carve a validation split")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError("val_fraction must lie in (0, 1)")
    n_val = min(n - 1, max(1, int(round(val_fraction * n))))
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def solve(K, Y, ridge: float = 0.0, *, relative: bool = True):
    """``(K + ridge_abs I)^{-1} Y`` by Cholesky; returns ``(alpha, ridge_abs, jitter)``.

    ``K`` is a 2-D symmetric PSD (n, n) matrix, ``Y`` (n,) or (n, k). ``relative``: the ridge
    is a multiple of ``trace(K)/n``. ``jitter`` is the extra diagonal needed for the factorisation
    (0 unless ``K + ridge_abs I`` is numerically singular; see the module docstring).
    """
    K = np.asarray(K, dtype=np.float64)
    n = K.shape[0]
    if K.ndim != 2 or K.shape != (n, n):
        raise ValueError(f"K must be square, got {K.shape}")
    scale = float(np.trace(K)) / n if n else 1.0
    if not np.isfinite(scale) or scale <= 0:
        scale = 1.0
    r_abs = float(ridge) * scale if relative else float(ridge)
    jitter = 0.0
    while True:
        A = K.copy()
        A.flat[:: n + 1] += r_abs + jitter
        try:
            c = cho_factor(A, lower=True, check_finite=True)
            return cho_solve(c, Y, check_finite=False), r_abs, jitter
        except LinAlgError:
            jitter = _JITTER0 * scale if jitter == 0.0 else jitter * 10.0
            if jitter > _JITTER_MAX * scale * (1 + 1e-9):
                raise


def _flat(K, Y2):
    """Reduce any supported kernel layout to a list of (2-D system, columns) pairs."""
    if K.ndim == 2:
        return [(K, slice(None))]
    if K.ndim == 3:
        return [(K[:, :, c], slice(c, c + 1)) for c in range(K.shape[2])]
    n, _, k, _ = K.shape
    return [(K.transpose(0, 2, 1, 3).reshape(n * k, n * k), None)]


def _fit_alpha(K, Y2, ridge):
    """Dual coefficients (n, k) for a training Gram ``K`` in any supported layout."""
    K = np.asarray(K, dtype=np.float64)
    _check_layout(K, Y2.shape[0], Y2.shape[1])
    alpha = np.zeros_like(Y2)
    jit = 0.0
    for Ks, cols in _flat(K, Y2):
        if cols is None:  # joint 4-D kernel over (sample, output)
            a, _, j = solve(Ks, Y2.reshape(-1), ridge)
            alpha = a.reshape(Y2.shape)
        else:
            a, _, j = solve(Ks, Y2[:, cols], ridge)
            alpha[:, cols] = a
        jit = max(jit, j)
    return alpha, jit


def _predict(Kx, alpha):
    Kx = np.asarray(Kx, dtype=np.float64)
    if Kx.ndim == 2:
        return Kx @ alpha
    if Kx.ndim == 3:
        return np.einsum("ijk,jk->ik", Kx, alpha)
    return np.einsum("ijab,jb->ia", Kx, alpha)


def _check_layout(K, n, k):
    ok = (
        (K.ndim == 2 and K.shape == (n, n))
        or (K.ndim == 3 and K.shape == (n, n, k))
        or (K.ndim == 4 and K.shape == (n, n, k, k))
    )
    if not ok:
        raise ValueError(f"kernel of shape {K.shape} does not fit {n} samples with {k} outputs")


def _as_labels(Y):
    Y = np.asarray(Y, dtype=np.float64)
    if Y.ndim not in (1, 2):
        raise ValueError(f"Y must have shape (n,) or (n, k), got {Y.shape}")
    if not np.all(np.isfinite(Y)):
        raise ValueError("training labels must be finite")
    return (Y[:, None] if Y.ndim == 1 else Y), Y.ndim == 1


def _sub(K, rows, cols):
    return K[np.ix_(rows, cols)]


def _param_grid(params) -> list[dict]:
    if params is None:
        return [{}]
    if isinstance(params, Mapping):
        keys = list(params)
        return [dict(zip(keys, vals, strict=True)) for vals in itertools.product(*params.values())]
    grid = [dict(p) for p in params]
    return grid or [{}]


@dataclass(frozen=True)
class Selection:
    """One scored candidate: kernel parameters, relative ridge, validation MSE."""

    params: dict
    ridge: float
    val_mse: float


def choose(candidates, score) -> tuple[int, tuple[Selection, ...]]:
    """The one rule every kernel learner chooses its hyper-parameters by: score each
    ``(params, ridge)`` of ``candidates`` with ``score(i)``, ``i`` its index (a validation
    MSE; a candidate
    that cannot be fitted, or scores NaN/inf, scores inf) and take the smallest score, ties
    going to the larger ridge. Returns the index of the choice and every scored candidate;
    :class:`LinAlgError` if none could be fitted."""
    records, best = [], (np.inf, -np.inf, None)  # (score, ridge, index)
    for i, (params, ridge) in enumerate(candidates):
        try:
            s = float(score(i))
        except LinAlgError:
            s = np.inf
        s = s if np.isfinite(s) else np.inf
        records.append(Selection(dict(params), float(ridge), s))
        if s < best[0] or (s == best[0] and ridge > best[1]):
            best = (s, float(ridge), i)
    if best[2] is None or not np.isfinite(best[0]):
        raise LinAlgError("no (parameters, ridge) candidate could be fitted")
    return best[2], tuple(records)


def _select(grams, Y2, ridges, val_fraction, seed):
    """Score every (params, ridge) on the validation split; return (best index, ridge, records)."""
    fi, vi = split(Y2.shape[0], val_fraction, seed)
    subs = [(_sub(K, fi, fi), _sub(K, vi, fi)) for _, K in grams]
    which = [(gi, float(r)) for gi in range(len(grams)) for r in ridges]

    def score(i):
        gi, r = which[i]
        Kff, Kvf = subs[gi]
        return mse(_predict(Kvf, _fit_alpha(Kff, Y2[fi], r)[0]), Y2[vi])

    i, records = choose([(grams[gi][0], r) for gi, r in which], score)
    return which[i][0], which[i][1], records


@dataclass(frozen=True)
class KernelModel:
    """A fitted kernel ridge predictor (from :func:`fit`). Call :meth:`predict` on new inputs."""

    kernel: Callable = field(repr=False)
    params: dict
    ridge: float
    X: np.ndarray = field(repr=False)
    alpha: np.ndarray = field(repr=False)
    jitter: float
    selection: tuple = field(repr=False)
    squeeze: bool = False

    def predict(self, X) -> np.ndarray:
        """Predictions (n_new, k) (or (n_new,) if fitted on 1-D labels)."""
        out = _predict(self.kernel(X, self.X, **self.params), self.alpha)
        return out[:, 0] if self.squeeze else out


@dataclass(frozen=True)
class GramModel:
    """A fitted predictor on precomputed kernels (from :func:`fit_gram`)."""

    ridge: float
    alpha: np.ndarray = field(repr=False)
    jitter: float
    selection: tuple = field(repr=False)
    squeeze: bool = False

    def predict(self, K_new_train) -> np.ndarray:
        """Predictions from the kernel between new inputs and the N training inputs."""
        out = _predict(K_new_train, self.alpha)
        return out[:, 0] if self.squeeze else out


def fit(
    kernel: Callable,
    X,
    Y,
    *,
    params: Mapping[str, Sequence] | Sequence[Mapping] | None = None,
    ridges: Sequence[float] = RIDGES,
    val_fraction: float = VAL_FRACTION,
    seed: int = 0,
) -> KernelModel:
    """Kernel ridge regression with (kernel parameters, ridge) chosen on a validation split.

    Parameters
    ----------
    kernel : callable ``kernel(X1, X2, **params) -> K``
        ``K`` of shape (n1, n2), (n1, n2, k) or (n1, n2, k, k) (module docstring), e.g.
        ``functools.partial(pacsim.kernels.relu.ntk, depth=2)`` or a lambda around ``rntk``.
    X : array_like
        The N training inputs (anything ``kernel`` accepts, indexed along axis 0).
    Y : array_like of shape (N,) or (N, k)
        Training labels.
    params : dict of lists (a product grid) or list of dicts, optional
        Kernel-parameter grid, e.g. ``{"bandwidth": [0.5, 1, 2]}``.
    ridges : sequence of float
        Relative ridge grid (default :data:`RIDGES`).
    val_fraction, seed : split of the training samples (default 0.2, 0).

    Returns
    -------
    KernelModel
        ``.predict(X_new)``; ``.params``, ``.ridge`` the chosen values; ``.selection`` the
        scored candidates.
    """
    Y2, squeeze = _as_labels(Y)
    X = np.asarray(X)
    if X.shape[0] != Y2.shape[0]:
        raise ValueError(f"X has {X.shape[0]} samples, Y has {Y2.shape[0]}")
    grid = _param_grid(params)
    grams = [(p, np.asarray(kernel(X, None, **p), dtype=np.float64)) for p in grid]
    gi, ridge, records = _select(grams, Y2, ridges, val_fraction, seed)
    alpha, jit = _fit_alpha(grams[gi][1], Y2, ridge)
    return KernelModel(kernel, dict(grid[gi]), ridge, X, alpha, jit, records, squeeze)


def fit_gram(
    K,
    Y,
    *,
    ridges: Sequence[float] = RIDGES,
    val_fraction: float = VAL_FRACTION,
    seed: int = 0,
) -> GramModel:
    """:func:`fit` for a precomputed training Gram ``K`` (N, N[, k[, k]]): ridge selection only."""
    Y2, squeeze = _as_labels(Y)
    K = np.asarray(K, dtype=np.float64)
    _check_layout(K, Y2.shape[0], Y2.shape[1])
    _, ridge, records = _select([({}, K)], Y2, ridges, val_fraction, seed)
    alpha, jit = _fit_alpha(K, Y2, ridge)
    return GramModel(ridge, alpha, jit, records, squeeze)


@dataclass(frozen=True)
class FeatureModel:
    """A fitted ridge readout on features (from :func:`fit_features`)."""

    ridge: float
    coef: np.ndarray = field(repr=False)  # (p, k)
    selection: tuple = field(repr=False)
    squeeze: bool = False

    def predict(self, F) -> np.ndarray:
        out = np.asarray(F, dtype=np.float64) @ self.coef
        return out[:, 0] if self.squeeze else out


def ridge_coef(F, Y2, ridge):
    """Coefficients ``(p, k)`` of the ridge readout ``Y2 ~ F coef`` for one relative ridge
    (a multiple of ``trace(F F^T) / n``; ``0``: min-norm least squares), fitted on all rows."""
    n, p = F.shape
    if ridge == 0.0:
        return np.linalg.lstsq(F, Y2, rcond=None)[0]
    scale = float(np.einsum("ij,ij->", F, F)) / n  # trace(F^T F)/n = trace(F F^T)/n
    r_abs = ridge * (scale if scale > 0 else 1.0)
    if p <= n:
        return solve(F.T @ F, F.T @ Y2, r_abs, relative=False)[0]
    return F.T @ solve(F @ F.T, Y2, r_abs, relative=False)[0]


def fit_features(
    F,
    Y,
    *,
    ridges: Sequence[float] = RIDGES,
    val_fraction: float = VAL_FRACTION,
    seed: int = 0,
) -> FeatureModel:
    """Ridge readout ``Y ~ F coef`` with the ridge chosen on a validation split (module docstring).

    ``F`` (N, p) features of the N training samples (add a constant column for an intercept).
    """
    Y2, squeeze = _as_labels(Y)
    F = np.ascontiguousarray(F, dtype=np.float64)
    if F.ndim != 2 or F.shape[0] != Y2.shape[0]:
        raise ValueError(f"F must have shape ({Y2.shape[0]}, p), got {F.shape}")
    fi, vi = split(F.shape[0], val_fraction, seed)
    rs = [float(r) for r in ridges]
    i, records = choose([({}, r) for r in rs],
                        lambda i: mse(F[vi] @ ridge_coef(F[fi], Y2[fi], rs[i]), Y2[vi]))
    ridge = records[i].ridge
    return FeatureModel(ridge, ridge_coef(F, Y2, ridge), records, squeeze)
