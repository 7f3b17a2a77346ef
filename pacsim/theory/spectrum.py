"""Kernel spectra and target coefficients: estimated from samples, or exact on the hypercube.

**Estimate**: the Mercer eigenvalues of a kernel under the input distribution are
approximated by those of the Gram matrix of ``M`` fresh samples divided by ``M`` (they converge
to them as ``M`` grows: Koltchinskii & Gine 2000, Bernoulli 6(1), "Random matrix approximation
of spectra of integral operators"); its eigenvectors ``u_k`` give the eigenfunctions at the
samples, ``phi_k(x_i) ~ sqrt(M) u_ki``, so the target's coefficients are
``v_k = <u_k, y> / sqrt(M)`` and ``sum_k v_k^2 = |y|^2 / M`` (the labels' second moment, all of
it in the ``M`` modes). :func:`estimate` doubles ``M`` until the in-sample and held-out versions
of the prediction agree within a stated tolerance (:func:`predict_nmse`, docs/theory.md).

**Exact** (O'Donnell, *Analysis of Boolean Functions*, 2014, ch. 1; Yang & Salman 2019, arXiv
1907.10599, "A fine-grained spectral perspective on neural networks"): a kernel
``K(x, x') = k(<x, x'>)`` on the uniform hypercube ``{-1, 1}^d`` has the parities
``chi_S(x) = prod_{i in S} x_i`` as eigenfunctions, and the eigenvalue of the ``C(d, |S|)``
parities of degree ``|S|`` is
``mu_|S| = 2^-d sum_x k(<x, 1>) chi_S(x) = 2^-d sum_w k(d - 2w) Kr_w(|S|)``, the sum over the
Hamming weight ``w`` of ``x`` (its number of -1 coordinates), with the Krawtchouk polynomial
``Kr_w(j) = sum_i (-1)^i C(j, i) C(d - j, w - i)``: the sum of ``chi_S`` over the points of
weight ``w`` for one ``S`` of size ``j`` (:func:`hypercube_eigenvalues`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .curves import absolute_ridge, learning_curve

__all__ = ["Spectrum", "Estimate", "from_gram", "from_kernel", "predict_nmse", "estimate",
           "cube", "krawtchouk", "hypercube_eigenvalues", "walsh_power"]


@dataclass(frozen=True)
class Spectrum:
    """Eigenvalues of one kernel and the power of the target columns that share it.

    ``power[k]`` is ``v_k^2`` summed over the ``n_outputs`` columns (and over the
    ``multiplicity[k]`` modes of eigenvalue ``k`` when given). An estimated spectrum
    (:func:`from_gram` with held-out samples) also keeps what the held-out residual needs:
    ``proj = K(X', X) U`` (M', P), ``coef = U^T Y`` (P, k) and ``Y_out`` (M', k).
    """

    eigenvalues: np.ndarray
    power: np.ndarray
    n_outputs: int
    multiplicity: np.ndarray | None = None
    proj: np.ndarray | None = None
    coef: np.ndarray | None = None
    Y_out: np.ndarray | None = None


def _cols(Y):
    Y = np.asarray(Y, dtype=np.float64)
    return Y[:, None] if Y.ndim == 1 else Y.reshape(len(Y), -1)


def from_gram(G, Y, K_out=None, Y_out=None) -> Spectrum:
    """The estimated spectrum of a kernel from its Gram matrix ``G`` (M, M) on ``M`` samples
    and the labels ``Y`` (M,) or (M, k) of those samples (module docstring); with ``K_out``
    (M', M), the kernel between ``M'`` held-out samples and the ``M``, and their labels
    ``Y_out``, it can also give the held-out residual (:func:`predict_nmse`)."""
    G = np.asarray(G, dtype=np.float64)
    Y = _cols(Y)
    M = G.shape[0]
    if G.shape != (M, M) or Y.shape[0] != M:
        raise ValueError(f"Gram {G.shape} does not fit labels {Y.shape}")
    w, U = np.linalg.eigh((G + G.T) / (2.0 * M))
    w, U = w[::-1], U[:, ::-1]
    # eigh's error is about M * machine eps * the largest eigenvalue: below 10x that an
    # eigenvalue is rounding (e.g. the null space of a rank-m random-features kernel), zero
    w = np.where(w > 10 * M * np.finfo(float).eps * max(float(w[0]), 0.0), w, 0.0)
    coef = U.T @ Y
    power = np.sum(coef**2, axis=1) / M
    if K_out is None:
        return Spectrum(w, power, Y.shape[1])
    K_out = np.asarray(K_out, dtype=np.float64)
    Y_out = _cols(Y_out)
    if K_out.shape != (Y_out.shape[0], M) or Y_out.shape[1] != Y.shape[1]:
        raise ValueError(f"held-out kernel {K_out.shape} does not fit labels {Y_out.shape}")
    return Spectrum(w, power, Y.shape[1], proj=K_out @ U, coef=coef, Y_out=Y_out)


def from_kernel(G, Y, K_out=None, Y_out=None) -> list[Spectrum]:
    """Spectra of a kernel in :mod:`pacsim.kernels.krr`'s layouts: one for a 2-D Gram shared
    by every column of ``Y``; one per distinct kernel of a 3-D Gram ``(M, M, k)`` (one kernel
    per column; identical kernels, e.g. one per position repeated over the ``d`` outputs,
    are decomposed once). A 4-D joint kernel over (sample, output) pairs has no spectrum in
    this theory (the ``k`` outputs of one sample are not independent samples): ValueError.
    ``K_out``, ``Y_out``: held-out kernel rows and labels in the same layout (optional)."""
    G = np.asarray(G, dtype=np.float64)
    Y = _cols(Y)
    Yo = None if Y_out is None else _cols(Y_out)
    if G.ndim == 2:
        return [from_gram(G, Y, K_out, Yo)]
    if G.ndim == 3 and G.shape[2] == Y.shape[1]:
        groups: list[tuple[int, list[int]]] = []
        for c in range(G.shape[2]):
            for first, cols in groups:
                if np.array_equal(G[:, :, first], G[:, :, c]):
                    cols.append(c)
                    break
            else:
                groups.append((c, [c]))
        Ko = None if K_out is None else np.asarray(K_out, dtype=np.float64)
        return [from_gram(G[:, :, first], Y[:, cols],
                          None if Ko is None else Ko[:, :, first],
                          None if Yo is None else Yo[:, cols]) for first, cols in groups]
    raise ValueError(f"a kernel of shape {G.shape} (labels {Y.shape}) has no per-output "
                     "spectrum: the theory takes 2-D kernels or one kernel per output column")


def predict_nmse(spectra: Sequence[Spectrum], Ns, ridge: float, label_var: float,
                 noise: float = 0.0, side: str = "in") -> np.ndarray:
    """Predicted normalised test error at every ``N`` of ``Ns``, as pacsim's ``test_nmse``:
    the mean over all output columns of the predicted test MSE, over ``label_var`` (the mean
    label variance). ``ridge`` is pacsim's relative ridge (:func:`~.curves.absolute_ridge`,
    per kernel); ``noise`` the label-noise variance per output column (0 when the labels'
    noise is left in the estimated target power, as :func:`from_gram` does).

    ``side``: how the target term ``sum_k (1 - L_k)^2 v_k^2`` is computed. ``"in"``: from the
    power per mode (exact for an exact spectrum; for an estimate it is the *in-sample*
    residual of KRR on the ``M`` samples with ridge ``M kappa``, which is optimistic, biased
    low). ``"out"``: the *held-out* residual of that same regression, the mean over the
    ``M'`` held-out samples of ``|y' - K(x', X) (G + M kappa I)^{-1} Y|^2`` (pessimistic,
    biased high by the regression's variance). Both tend to the population value
    ``|kappa (T + kappa)^{-1} f*|^2`` as ``M`` grows (docs/theory.md).
    """
    Ns = np.atleast_1d(np.asarray(Ns, dtype=np.float64))
    total = np.zeros(len(Ns))
    n_out = 0
    for s in spectra:
        delta = absolute_ridge(s.eigenvalues, ridge, s.multiplicity)
        c = learning_curve(s.eigenvalues, s.power, Ns, delta, noise=noise * s.n_outputs,
                           multiplicity=s.multiplicity)
        if side == "in":
            total += c.mse
        elif side == "out":
            if s.proj is None:
                raise ValueError("side='out' needs a spectrum estimated with held-out samples")
            M = len(s.eigenvalues)
            for i, (kap, e0) in enumerate(zip(c.kappa, c.E0, strict=True)):
                # kappa = 0 (interpolation, N >= rank): the pseudo-inverse, dropping the
                # eigenvalues at rounding level (1e-12 of the largest; eigh's error ~1e-16 M)
                den = M * (s.eigenvalues + kap)
                keep = den > 1e-12 * M * float(s.eigenvalues.max(initial=0.0))
                inv = np.divide(1.0, den, out=np.zeros_like(den), where=keep)
                h = s.proj @ (s.coef * inv[:, None])
                resid = float(np.mean(np.sum((s.Y_out - h) ** 2, axis=1)))
                if math.isfinite(e0):
                    total[i] += e0 * resid + (e0 - 1) * noise * s.n_outputs
                else:  # N = rank without a ridge: the variance term diverges
                    total[i] += math.inf if resid + noise > 0 else 0.0
        else:
            raise ValueError(f"side must be 'in' or 'out', got {side!r}")
        n_out += s.n_outputs
    return total / n_out / label_var


@dataclass(frozen=True)
class Estimate:
    """Result of :func:`estimate`.

    ``lo[r, i]`` and ``hi[r, i]`` are the in-sample and held-out predictions
    (:func:`predict_nmse` ``side="in"``, ``"out"``) of ``test_nmse`` at ridge ``ridges[r]``
    and ``Ns[i]`` from ``M`` samples, ``pred = sqrt(lo hi)`` the prediction (NaN where
    ``N > max_fraction * M``: out of the estimate's reach). ``spread`` is the largest
    ``abs(log(hi / lo))`` over the entries where ``hi >= floor``; ``stable``:
    ``spread <= log(1 + tol)``.
    """

    Ns: np.ndarray
    ridges: tuple[float, ...]
    M: int
    pred: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    spread: float
    stable: bool
    label_var: float
    spectra: list


def estimate(draw: Callable[[int], tuple], kernel: Callable, Ns, ridges: Sequence[float], *,
             M0: int = 256, M_max: int = 4096, tol: float = 0.1,
             max_fraction: float = 0.5, floor: float = 0.01,
             check: Sequence[float] | None = None) -> Estimate:
    """Predicted learning curves from estimated spectra, doubling ``M`` until they are tight.

    Parameters
    ----------
    draw : callable ``draw(M) -> (inputs, Y)``
        ``M`` fresh samples (inputs indexable along axis 0), ``Y`` (M, k) the scored labels.
        It is called with ``2 M``: the first ``M`` give the Gram matrix, the rest are held out.
    kernel : callable ``kernel(A, B=None) -> K``
        The kernel between inputs (``B = None``: the Gram matrix of ``A``), in a layout of
        :func:`from_kernel`.
    Ns, ridges
        Sample sizes and relative ridges to predict at.
    M0, M_max, tol, max_fraction, floor
        ``M`` starts at ``M0`` and doubles until (a) it is at least ``max(Ns) / max_fraction``
        and (b) the held-out prediction exceeds the in-sample one by at most a factor
        ``1 + tol`` at every (ridge, N), leaving out held-out predictions below ``floor`` (a
        normalised error under 1% of the label variance is below every target pacsim sweeps
        at); or until the next doubling would exceed ``M_max`` (then ``stable`` says whether
        (b) held).
    check : sequence of float, optional
        The ridges whose predictions (b) and ``spread`` look at (default: all; e.g. only the
        ridges a run chose, since the interpolating ridge 0 near ``N = M / 2`` is the last to
        become tight and may not matter).
    """
    Ns = np.asarray(Ns, dtype=np.float64)
    ridges = tuple(float(r) for r in ridges)
    if M0 < 2 or M_max < 2 * M0:
        raise ValueError(f"need 2 <= M0 and 2 M0 <= M_max, got M0={M0}, M_max={M_max}")
    if not 0 < tol or not 0 < max_fraction < 1:
        raise ValueError("tol must be > 0 and max_fraction in (0, 1)")
    rows = np.array([check is None or any(math.isclose(r, c, rel_tol=1e-12) for c in check)
                     for r in ridges], dtype=bool)
    M = M0
    while True:
        inputs, Y = draw(2 * M)
        Y = np.asarray(Y, dtype=np.float64).reshape(2 * M, -1)
        A, B = inputs[:M], inputs[M:]
        spectra = from_kernel(kernel(A), Y[:M], kernel(B, A), Y[M:])
        label_var = float(np.mean(np.var(Y, axis=0)))
        ok = Ns <= max_fraction * M
        lo = np.full((len(ridges), len(Ns)), np.nan)
        hi = np.full_like(lo, np.nan)
        for r, ridge in enumerate(ridges):
            if ok.any():
                lo[r, ok] = predict_nmse(spectra, Ns[ok], ridge, label_var, side="in")
                hi[r, ok] = predict_nmse(spectra, Ns[ok], ridge, label_var, side="out")
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.abs(np.log(hi / lo))
        use = np.isfinite(hi) & (hi >= floor) & rows[:, None]
        spread = float(np.max(np.where(np.isfinite(ratio[use]), ratio[use], np.inf),
                              initial=0.0))
        stable = spread <= math.log1p(tol)
        if (stable and ok.all()) or 2 * M > M_max:
            pred = np.sqrt(lo * hi)
            return Estimate(Ns, ridges, M, pred, lo, hi, spread, stable, label_var, spectra)
        M *= 2


# The hypercube


def cube(d: int, scale: float = 1.0) -> np.ndarray:
    """All ``2^d`` points of ``{-scale, scale}^d``, row ``i`` the binary digits of ``i``
    (bit ``j`` set: coordinate ``j`` is ``-scale``)."""
    if not 1 <= d <= 24:
        raise ValueError(f"d must be in 1..24 to list the cube, got {d}")
    idx = np.arange(2**d)[:, None]
    bits = (idx >> np.arange(d)[None, :]) & 1
    return scale * (1.0 - 2.0 * bits)


def krawtchouk(d: int) -> np.ndarray:
    """Integer matrix ``Kr[w, j] = sum_i (-1)^i C(j, i) C(d - j, w - i)``: the sum of one
    parity ``chi_S`` with ``|S| = j`` over the ``C(d, w)`` points of Hamming weight ``w``
    (``i`` of their ``w`` flipped coordinates fall in ``S``); Python ints, exact."""
    return np.array([[sum((-1) ** i * math.comb(j, i) * math.comb(d - j, w - i)
                           for i in range(0, min(w, j) + 1)) for j in range(d + 1)]
                     for w in range(d + 1)], dtype=object)


def hypercube_eigenvalues(kernel: Callable, d: int, scale: float = 1.0):
    """Exact eigenvalues of a dot-product kernel on the uniform cube ``{-scale, scale}^d``.

    ``kernel(X1, None) -> (n1, n1)`` (the Gram matrix) must depend on ``<x, x'>`` only (every
    point of the cube has the same norm, so any kernel of the distance qualifies too). Returns
    ``(mu, mult)``: ``mu[j]`` the eigenvalue of the ``mult[j] = C(d, j)`` parities of degree
    ``j``, for ``j = 0..d`` (module docstring). Sums of integers times kernel values are accumulated
    with ``math.fsum`` (exactly rounded), so cancellation costs nothing beyond the rounding
    of each kernel value.
    """
    w = np.arange(d + 1)
    X = scale * np.where(np.arange(d)[None, :] < w[:, None], -1.0, 1.0)  # weight w rows
    # k(d - 2w), w = 0..d, from one symmetric Gram (X2 = None): kernels such as the arccos
    # ReLU forms are exact on their diagonal there, and lose ~sqrt(machine eps) relative on
    # identical points given as two arrays
    k = np.asarray(kernel(X, None), dtype=np.float64)[0]
    Kr = krawtchouk(d)
    mu = np.array([math.fsum(float(Kr[i, j]) * k[i] for i in range(d + 1)) / 2.0**d
                   for j in range(d + 1)])
    mult = np.array([math.comb(d, j) for j in range(d + 1)], dtype=np.float64)
    # a PSD kernel has mu >= 0; a vanishing one comes out as +-(rounding of the k values)
    return np.clip(mu, 0.0, None), mult


def walsh_power(values, d: int) -> np.ndarray:
    """Power per parity degree of functions on the cube: ``P[j] = sum_{|S| = j} v_S^2``,
    ``v_S = 2^-d sum_x f(x) chi_S(x)``, summed over columns. ``values`` (2^d,) or (2^d, k)
    in the order of :func:`cube`. Fast Walsh-Hadamard transform, O(d 2^d)."""
    F = np.array(values, dtype=np.float64).reshape(2**d, -1)
    h = 1
    while h < 2**d:  # in-place butterflies
        F = F.reshape(-1, 2, h, F.shape[-1])
        F = np.concatenate([F[:, 0] + F[:, 1], F[:, 0] - F[:, 1]], axis=1)
        F = F.reshape(2**d, -1)
        h *= 2
    coef = F / 2.0**d  # coef[S] with S the bitmask of the point index
    deg = np.array([bin(i).count("1") for i in range(2**d)])
    return np.bincount(deg, weights=np.sum(coef**2, axis=1), minlength=d + 1)
