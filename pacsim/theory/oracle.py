"""The linearised-training oracle: a network linearised at initialisation, trained by GD.

Linearise the network at its initial weights ``theta_0``,
``f_lin(x; theta) = f_0(x) + J(x) (theta - theta_0)`` (Lee et al. 2019, arXiv 1902.06720,
eq. 5), and train it by full-batch gradient descent with step ``eta`` on pacsim's loss
``(1/n) sum_i 0.5 ||f(x_i) - y_i||^2`` (:func:`pacsim.models.ff.loss_and_grad`). With the
empirical NTK ``K = J J^T`` over (sample, output) pairs, the training residual obeys
``r_{t+1} = (I - eta K / n) r_t``, so (Lee et al. 2019, eqs. 8-9, in discrete time)::

    f_t(X) = f_0(X) + (I - (I - eta K/n)^t) (Y - f_0(X))
    f_t(x) = f_0(x) + K(x, X) K^{-1} (I - (I - eta K/n)^t) (Y - f_0(X))

(``K^{-1} (I - (I - eta K/n)^t)`` is taken on the eigenvalues ``s`` of ``K`` as
``(1 - (1 - eta s/n)^t) / s``, which tends to ``eta t / n`` as ``s -> 0``, so a singular ``K``
needs no inverse). It is the exact limit of the trained network when the width grows in the
NTK parameterisation (Jacot et al. 2018, arXiv 1806.07572; Lee et al. 2019, Theorem 2.1), and
the distance between the two measures how "lazy" a run is.

Networks: the feed-forward nets of :mod:`pacsim.models.ff` (:func:`ff_oracle`, against
:func:`ff_gd`) and pacsim's ReLU RNN (:func:`rnn_oracle`, against :func:`rnn_gd`: the joint
kernel over (sample, scored position, output), the positions sharing ``W``).

Online SGD (one fresh sample per step): :func:`online_expected` gives the expected function
(exactly: GD on the population, estimated on ``M`` fresh samples) and the SGD variance of the
test error around it (:func:`online_modes`, a fourth-moment closure).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ..kernels import entk
from ..models import ff, rnn

__all__ = ["Oracle", "OnlineOracle", "linearised_gd", "linearised_sgd", "online_modes",
           "online_expected",
           "ff_oracle", "ff_gd", "ff_kernel", "rnn_kernel", "rnn_oracle", "rnn_gd", "rnn_eta"]

#: Largest ``(rows, L, n2, L)`` input-Gram block of :func:`rnn_kernel`, in float64 entries
#: (160 MB), as in :mod:`pacsim.learners.entk`.
RNN_BLOCK = 20_000_000


@dataclass(frozen=True)
class Oracle:
    """Predictions of the linearised network after each step count of ``steps``:
    ``train[i]`` (n, k) and ``test[i]`` (n_test, k). ``max_rate`` is ``eta s_max / n`` (the
    largest eigenvalue ``s_max`` of the training kernel): above 2, GD diverges along that
    eigenvector (the oracle then grows without bound, as the network would)."""

    steps: np.ndarray
    train: np.ndarray
    test: np.ndarray
    max_rate: float = float("nan")

    def test_nmse(self, Y_test) -> np.ndarray:
        """Per step count, the test MSE (mean over samples and outputs) over the mean label
        variance: pacsim's ``test_nmse``."""
        Y = np.asarray(Y_test, dtype=np.float64).reshape(len(Y_test), -1)
        var = float(np.mean(np.var(Y, axis=0)))
        return np.mean((self.test - Y[None]) ** 2, axis=(1, 2)) / var


def _joint(K, n1, n2, k):
    """A kernel over (sample, output) pairs as an (n1 k, n2 k) matrix, sample-major: a 2-D
    ``K`` is shared by independent outputs (``K (x) I_k``), a 4-D one is used as it is."""
    K = np.asarray(K, dtype=np.float64)
    if K.shape == (n1, n2):
        return np.kron(K, np.eye(k))
    if K.shape == (n1, n2, k, k):
        return K.transpose(0, 2, 1, 3).reshape(n1 * k, n2 * k)
    raise ValueError(f"kernel of shape {K.shape} does not fit ({n1}, {n2}) samples with {k} "
                     "outputs: (n1, n2) or (n1, n2, k, k)")


def linearised_gd(K, K_test, f0, f0_test, Y, eta: float, steps) -> Oracle:
    """Closed-form full-batch GD of the linearised network (module docstring).

    Parameters
    ----------
    K : (n, n) or (n, n, k, k)
        Empirical NTK between the training inputs (2-D: the same kernel for every output and
        no cross-output terms; 4-D: the full kernel, e.g. ``entk.mlp(..., output="full")``).
    K_test : (n_test, n) or (n_test, n, k, k)
        Between test and training inputs.
    f0, f0_test : (n, k), (n_test, k)
        The network's outputs at initialisation.
    Y : (n, k)
        Training labels.
    eta : float
        The step size (on the mean loss, as :func:`pacsim.models.ff.loss_and_grad`).
    steps : sequence of int
        Step counts to report.
    """
    return _gd(_Problem.of(K, K_test, f0, f0_test, Y), eta, steps)


@dataclass(frozen=True)
class _Problem:
    """A linearised regression in the eigenbasis of its joint training kernel ``Kj``
    (sample-major over (sample, output) pairs): ``Kj = U diag(s) U^T``, ``c = U^T (Y - f0)``."""

    Kj: np.ndarray
    Kt: np.ndarray
    s: np.ndarray | None
    U: np.ndarray | None
    c: np.ndarray | None
    f0: np.ndarray
    f0_test: np.ndarray
    r0: np.ndarray  #: Y - f0, flattened
    K: np.ndarray | None = None  #: the 2-D kernel shared by the outputs, when it was given so

    @property
    def shared(self) -> bool:
        return self.K is not None

    @functools.cached_property
    def variance_modes(self):
        """What the variance recursion of :func:`_online` needs, computed once: the modes'
        eigenvalues ``lam`` (of ``K / M``), initial mean coefficients ``m0``, ``G`` (applied
        by ``G_apply``) and the mean's term ``mean_term(m)``."""
        M, k = self.f0.shape
        if self.shared and k > 1:  # K (x) I_k: the modes of K, once per output, one-hot
            s1, U1 = np.linalg.eigh((self.K + self.K.T) / 2)
            lam = np.repeat(np.clip(s1, 0.0, None) / M, k)  # modes (a, s), a-major
            G1 = _fourth(U1[:, None, :], M)
            U2 = U1 * U1
            m0 = (U1.T @ self.r0.reshape(M, k)).reshape(-1) / np.sqrt(M)

            def G_apply(x):
                return (G1 @ x.reshape(M, k)).reshape(-1)

            def mean_term(m):  # E[(phi_a e_s . rbar)^2] = sum_i U_ia^2 rbar_is^2
                R = U1 @ (m.reshape(M, k) * np.sqrt(M))
                return (U2.T @ (R * R)).reshape(-1)

            return lam, m0, G_apply, mean_term
        U, Uk = self.U, self.U.reshape(M, k, -1)  # phi_j(x_i) = sqrt(M) U[(i, :), j]
        G = _fourth(Uk, M)

        def mean_term(m):  # E[(phi_j . rbar)^2] = sum_i (U_ij . rbar_i)^2
            R = (U @ (m * np.sqrt(M))).reshape(M, k)
            V = Uk[:, 0] * R[:, :1]
            for t in range(1, k):
                V += Uk[:, t] * R[:, t:t + 1]
            return np.einsum("ij,ij->j", V, V)

        return self.s / M, self.c / np.sqrt(M), (lambda x: G @ x), mean_term

    @classmethod
    def of(cls, K, K_test, f0, f0_test, Y, decompose: bool = True) -> _Problem:
        Y = np.asarray(Y, dtype=np.float64)
        Y = Y[:, None] if Y.ndim == 1 else Y
        n, k = Y.shape
        f0 = np.asarray(f0, dtype=np.float64).reshape(n, k)
        f0_test = np.asarray(f0_test, dtype=np.float64)
        f0_test = f0_test.reshape(f0_test.shape[0], k)
        Kj = _joint(K, n, n, k)
        Kt = _joint(K_test, f0_test.shape[0], n, k)
        r0 = (Y - f0).reshape(-1)
        K2 = np.asarray(K, dtype=np.float64) if np.ndim(K) == 2 else None
        if not decompose:
            return cls(Kj, Kt, None, None, None, f0, f0_test, r0, K2)
        s, U = np.linalg.eigh((Kj + Kj.T) / 2)
        s = np.clip(s, 0.0, None)
        return cls(Kj, Kt, s, U, U.T @ r0, f0, f0_test, r0, K2)


def _gd(pb: _Problem, eta: float, steps) -> Oracle:
    """Full-batch GD of the linearised network on ``pb`` (its ``n`` samples) after ``steps``."""
    steps = np.asarray(steps, dtype=np.int64)
    if (steps < 0).any():
        raise ValueError("steps must be >= 0")
    (n, k), n_test = pb.f0.shape, pb.f0_test.shape[0]
    s, U, c = pb.s, pb.U, pb.c
    h = eta * s / n
    train, test = [], []
    for t in steps:
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            decay = (1.0 - h) ** t
            g = np.where(s > 0, (1.0 - decay) / np.where(s > 0, s, 1.0), eta * t / n)
            train.append(pb.f0 + (pb.Kj @ (U @ (g * c))).reshape(n, k))
            test.append(pb.f0_test + (pb.Kt @ (U @ (g * c))).reshape(n_test, k))
    return Oracle(steps, np.array(train), np.array(test), float(eta * s.max(initial=0.0) / n))


def linearised_sgd(K, K_test, f0, f0_test, Y, eta: float, order, steps) -> Oracle:
    """Vanilla SGD of the linearised network on ``(X, Y)``, one sample per step in the given
    ``order``, step ``eta`` on ``0.5 ||f(x_i) - y_i||^2``: exact in function space, since the
    step on sample ``i`` changes the linearised network by ``-eta K(., x_i) (f(x_i) - y_i)``
    at every input (training and test), and nothing else changes. ``order`` (1-D ints):
    the samples in the order SGD visits them (e.g. one permutation per epoch, concatenated);
    reported after ``steps`` (increasing, ``<= len(order)``) steps, like
    :func:`linearised_gd`. ``max_rate`` is ``eta max_i lambda_max(K(x_i, x_i))``: above 2 the
    step on that sample overshoots its own residual. Cost ``O(len(order) (n + n_test) k^2)``
    after the kernels."""
    pb = _Problem.of(K, K_test, f0, f0_test, Y, decompose=False)
    (n, k), n_test = pb.f0.shape, pb.f0_test.shape[0]
    order = np.asarray(order, dtype=np.int64).ravel()
    steps = np.asarray(steps, dtype=np.int64)
    if (np.diff(steps) < 0).any() or (steps < 0).any() or (steps > len(order)).any():
        raise ValueError(f"steps must be increasing, >= 0 and <= len(order) = {len(order)}")
    if order.size and (order.min() < 0 or order.max() >= n):
        raise ValueError(f"order has indices outside [0, {n})")
    # rows of the transposed kernels are the columns of sample i's block: contiguous slices
    KT = np.ascontiguousarray(pb.Kj.T).reshape(n, k, n * k)
    KtT = np.ascontiguousarray(pb.Kt.T).reshape(n, k, n_test * k)
    f = pb.f0.reshape(-1).copy()
    ft = pb.f0_test.reshape(-1).copy()
    y = (pb.f0.reshape(-1) + pb.r0)
    train, test = [], []
    t = 0
    with np.errstate(over="ignore", invalid="ignore"):
        for target in steps:
            while t < target:
                i = order[t]
                g = eta * (f[i * k:(i + 1) * k] - y[i * k:(i + 1) * k])
                f -= g @ KT[i]
                ft -= g @ KtT[i]
                t += 1
            train.append(f.reshape(n, k).copy())
            test.append(ft.reshape(n_test, k).copy())
    blocks = pb.Kj.reshape(n, k, n, k)[np.arange(n), :, np.arange(n), :]
    rate = max((float(np.linalg.eigvalsh((b + b.T) / 2).max()) for b in blocks), default=0.0)
    return Oracle(steps, np.array(train), np.array(test), float(eta * rate))


# Online SGD in expectation


@dataclass(frozen=True)
class OnlineOracle(Oracle):
    """:func:`online_expected`: ``test[i]`` (n_test, k) and ``train[i]`` (M, k) the *expected*
    function after ``steps[i]`` online steps; ``var[i]`` the SGD variance of the test error
    around it (:func:`online_modes`), ``bias_in[i]`` the in-sample error of the expected function
    on the ``M`` samples (both mean over the ``k`` outputs, label noise included);
    ``max_rate = eta lambda_max`` (the expected function diverges above 2), ``trace_rate =
    eta sum_j lambda_j / k`` (``eta`` times the per-sample kernel trace per output: the step
    in NTK units over ``k``)."""

    var: np.ndarray = None
    bias_in: np.ndarray = None
    trace_rate: float = float("nan")

    def test_nmse(self, Y_test) -> np.ndarray:
        """Per step count, the expected test error over the mean label variance: the
        error of the expected function on ``Y_test`` (held out; noisy labels carry their
        noise) plus the SGD variance ``var``."""
        return super().test_nmse(Y_test) + self.var / _label_var(Y_test)

    def in_sample_nmse(self, Y_test) -> np.ndarray:
        """The same from the ``M`` samples themselves (``bias_in + var``): optimistic, as
        the in-sample estimate of :mod:`pacsim.theory.spectrum` (the expected function is
        GD on those ``M`` samples, which it fits better than fresh ones)."""
        return (self.bias_in + self.var) / _label_var(Y_test)


def _label_var(Y) -> float:
    Y = np.asarray(Y, dtype=np.float64).reshape(len(Y), -1)
    return float(np.mean(np.var(Y, axis=0)))


def _variance(lam, m0, eta: float, steps, G_apply, mean_term, noise: float):
    """The recursion of :func:`online_modes` (docs/theory.md, sec. 3c): per mode ``j`` the mean
    coefficient ``m_j`` and the SGD variance ``s_j`` of the residual's coefficient, with
    ``G_apply(s) = G s`` and ``mean_term(m)_j = E_x[(phi_j(x) . rbar(x))^2]`` (``rbar`` the
    expected residual). Returns ``(sum_j m_j^2, sum_j s_j)`` after each of ``steps``."""
    steps = np.asarray(steps, dtype=np.int64)
    if (steps < 0).any():
        raise ValueError("steps must be >= 0")
    h = eta * lam
    m, s = m0.copy(), np.zeros_like(m0)
    bias = np.full(len(steps), np.inf)
    var = np.full(len(steps), np.inf)
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(int(steps.max(initial=0)) + 1):
            at = steps == t
            if at.any():
                bias[at], var[at] = float(m @ m), float(s.sum())
            if not np.isfinite(s.sum()):
                break
            source = mean_term(m) - m * m + G_apply(s) + noise
            s = np.maximum((1.0 - 2.0 * h) * s + h * h * source, 0.0)
            m = (1.0 - h) * m
    var[~np.isfinite(var)] = np.inf
    return bias, var


def online_modes(lam, v2, eta: float, steps, *, fourth=3.0,
                 floor: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The expected test error of online SGD (one fresh sample per step, step ``eta`` on
    ``0.5 (f(x) - y)^2``) on a model linear in its weights, from the Mercer spectrum of its
    kernel (docs/theory.md, sec. 3c).

    ``lam`` (P,): eigenvalues ``lambda_j`` of the kernel's integral operator; ``v2`` (P,): the
    squared coefficients ``v_j^2`` of the initial residual ``f* - f_0`` on its eigenfunctions
    ``phi_j`` (``E phi_j^2 = 1``); ``fourth``: the fourth moments ``G_ja = E[phi_j^2
    phi_a^2]``, a (P, P) matrix, or kurtosis values ``kappa_j = G_jj`` (scalar or (P,)) with
    ``G_ja = 1`` off the diagonal (the squares uncorrelated; 3 and 1: Gaussian features);
    ``floor``: the error no weight can remove (label noise, the target's part outside the
    span). With ``m_j = E[c_j]`` and ``s_j = Var[c_j]`` (``c_j`` the residual's coefficient on
    ``phi_j`` after ``t`` steps, over SGD's samples), ``h_j = eta lambda_j``::

        m_j(t+1) = (1 - h_j) m_j(t),                   m_j(0) = v_j   (the expected function)
        s_j(t+1) = (1 - 2 h_j) s_j(t) + h_j^2 [sum_a G_ja (m_a^2 + s_a) - m_j^2 + floor],
        s_j(0) = 0,   E(t) = sum_j (m_j^2 + s_j) + floor                 (the test MSE)

    The mean part is exact for any input distribution. The variance drops the covariances of
    the coefficients (``Var`` diagonal in the eigenbasis) and, here, the odd moments
    ``E[phi_j^2 phi_a phi_b]`` (``a != b``): for Gaussian features both vanish and it is exact,
    the Gaussian-feature closure ``E[psi psi^T C psi psi^T] = 2 Lam C Lam + tr(Lam C) Lam`` of
    Bordelon & Pehlevan (arXiv 2106.02713). A mode of large ``h_j`` needs its own ``kappa_j``:
    a constant feature (``kappa = 1``) is stable up to ``h = 2``, a Gaussian one only to ``2/3``.

    Returns ``(bias, var)``, each of length ``len(steps)``: ``sum_j m_j^2 + floor`` and
    ``sum_j s_j`` (``inf`` once the recursion overflows).
    """
    lam = np.clip(np.asarray(lam, dtype=np.float64), 0.0, None)
    v2 = np.asarray(v2, dtype=np.float64)
    if lam.shape != v2.shape or lam.ndim != 1:
        raise ValueError(f"lam and v2 must be 1-D of one length, got {lam.shape} and "
                         f"{v2.shape}")
    G = np.asarray(fourth, dtype=np.float64)
    if G.ndim < 2:
        G = np.ones((lam.size, lam.size)) + np.diag(np.broadcast_to(G, lam.shape) - 1.0)
    if G.shape != (lam.size, lam.size):
        raise ValueError(f"fourth must be a scalar, ({lam.size},) or ({lam.size}, "
                         f"{lam.size}), got {G.shape}")
    bias, var = _variance(lam, np.sqrt(v2), eta, steps, lambda x: G @ x,
                          lambda m: G @ (m * m), floor)
    return bias + floor, var


def _fourth(U, M: int) -> np.ndarray:
    """``G_ja = E[(phi_j(x) . phi_a(x))^2]`` on ``M`` samples, ``phi_j(x_i) = sqrt(M) U[i, :, j]``
    (``U`` (M, k, P)): ``M sum_i (sum_s U_isj U_isa)^2``, as ``M Z^T Z`` over the pairs
    ``s <= s'`` (``Z = U_s U_s'``, doubled off the diagonal); ``O(M k^2 P^2 / 2)``."""
    _, k, P = U.shape
    G = np.zeros((P, P))
    for s in range(k):
        for t in range(s, k):
            Z = U[:, s] * U[:, t]
            G += (2.0 if t > s else 1.0) * (Z.T @ Z)
    return M * G


def online_expected(K, K_test, f0, f0_test, Y, eta: float, steps, *,
                    noise: float = 0.0) -> OnlineOracle:
    """Online SGD of the linearised network, in expectation over its samples.

    One fresh sample ``(x, y)`` per step, step ``eta`` on ``0.5 ||f(x) - y||^2``: the
    linearised network's function moves by ``-eta K(., x) (f_t(x) - y)``, and since ``f_t``
    does not depend on the sample it is about to see, its expectation obeys

        E f_{t+1} = E f_t - eta E_x[K(., x) (E f_t(x) - E[y | x])]

    (the population-loss GD of the same step), i.e. each eigen-coefficient of the expected
    residual decays as ``(1 - eta lambda_j)^t`` (``lambda_j`` the eigenvalues of the kernel's
    integral operator). The operator is estimated from ``M`` fresh samples (Nystrom: the
    eigendecomposition of ``K_MM / M``, eigenfunctions extended to the test points by
    ``K(x, M)``), which makes the expected function exactly full-batch GD with step ``eta``
    on those ``M`` samples (:func:`linearised_gd` with ``n = M``). The test error adds the
    SGD variance around it (the recursion of :func:`online_modes` on the same samples: their
    fourth moments ``E[(phi_j . phi_a)^2]`` and the expected residual measured there, the
    covariances between modes dropped; :func:`_online`).

    Parameters
    ----------
    K : (M, M) or (M, M, k, k)
        The (joint) kernel on ``M`` samples from the input distribution.
    K_test : (n_test, M) or (n_test, M, k, k)
    f0, f0_test : (M, k), (n_test, k)
        The network's outputs at initialisation.
    Y : (M, k)
        Their labels (noisy draws, as the run's, carry their noise in their coefficients).
    eta : float
        The raw step on ``0.5 ||f - y||^2`` per sample (``loss_and_grad`` of one sample).
    steps : sequence of int
    noise : float
        Variance per output of the labels around ``Y`` (set it when ``Y`` are noise-free
        conditional means, as in a test): it drives the SGD noise and adds to ``bias_in``.
    """
    return _online(_Problem.of(K, K_test, f0, f0_test, Y), eta, steps, noise)


def _online(pb: _Problem, eta: float, steps, noise: float = 0.0) -> OnlineOracle:
    """:func:`online_expected` on a decomposed problem (one ``eigh`` for several steps).

    The variance recursion of :func:`online_modes` on the ``M`` samples' empirical measure:
    ``G_ja = E[(phi_j . phi_a)^2]`` measured there (:func:`_fourth`), and the expected
    residual's term ``E[(phi_j . rbar)^2]`` exactly (``rbar`` the in-sample residual of the
    expected function); only the covariances between modes are dropped."""
    M, k = pb.f0.shape
    mean = _gd(pb, eta, steps)
    lam = pb.s / M
    lam_m, m0, G_apply, mean_term = pb.variance_modes
    bias, var = _variance(lam_m, m0, eta, mean.steps, G_apply, mean_term, noise)
    return OnlineOracle(mean.steps, mean.train, mean.test, float(eta * lam.max(initial=0.0)),
                        var=var / k, bias_in=bias / k + noise,
                        trace_rate=float(eta * lam.sum() / k))


def ff_kernel(p: ff.FFParams, X1, X2, rates: ff.Rates):
    """The full (sample, output) eNTK (n1, n2, k, k) of a feed-forward net at ``p`` with
    per-array rates (``X2 = None``: ``X1``)."""
    if p.arch == "resnet":
        train = {"W": (rates.W, rates.b1), "V": (rates.V, rates.b2)}
        for g, (a, b) in train.items():
            if a != b:
                raise ValueError(f"resnet: the oracle needs equal rates for {g} and its bias")
        groups = [g for g, (a, _) in train.items() if a > 0]
        return entk.azl_bottleneck(X1, X2, W=np.column_stack([p.W, p.b1]),
                                   V=np.column_stack([p.V, p.b2]), A=p.A, train=groups,
                                   scales={g: train[g][0] for g in groups}, output="full")
    weights = [p.W] if p.arch == "mlp2" else [p.W, p.V]
    biases = [p.b1] if p.arch == "mlp2" else [p.b1, p.b2]
    rate = {"W1": rates.W, "b1": rates.b1, "W2": rates.V, "b2": rates.b2, "A": rates.A}
    groups = [g for g in (["W1", "b1", "A"] if p.arch == "mlp2"
                          else ["W1", "b1", "W2", "b2", "A"]) if rate[g] > 0]
    return entk.mlp(X1, X2, weights=weights, biases=biases, readout=p.A, train=groups,
                    scales={g: rate[g] for g in groups}, output="full")


def ff_oracle(p: ff.FFParams, X, Y, X_test, eta: float, steps,
              rates: ff.Rates | None = None) -> Oracle:
    """The oracle of a feed-forward network at its weights ``p`` (``"mlp2"``, ``"mlp3"``,
    ``"resnet"`` in AZL's bottleneck form), arrays trained at ``eta * rates.a``
    (default :func:`pacsim.models.ff.default_rates`: hidden layers, ``A`` fixed)."""
    rates = ff.default_rates() if rates is None else rates
    X = np.asarray(X, dtype=np.float64)
    X_test = np.asarray(X_test, dtype=np.float64)
    K = ff_kernel(p, X, None, rates)
    K_test = ff_kernel(p, X_test, X, rates)
    return linearised_gd(K, K_test, ff.forward(p, X), ff.forward(p, X_test), Y, eta, steps)


def ff_gd(p: ff.FFParams, X, Y, X_test, eta: float, steps,
          rates: ff.Rates | None = None) -> Oracle:
    """The network itself trained by full-batch GD on ``(X, Y)`` (a copy of ``p``; the
    gradients of :func:`pacsim.models.ff.loss_and_grad`), reported like :func:`ff_oracle`."""
    rates = ff.default_rates() if rates is None else rates
    q = p.copy()
    steps = np.asarray(steps, dtype=np.int64)
    if (np.diff(steps) < 0).any() or (steps < 0).any():
        raise ValueError("steps must be increasing and >= 0")
    train, test = [], []
    t = 0
    for target in steps:
        while t < target:
            _, g = ff.loss_and_grad(q, X, Y)
            for name in ("W", "b1", "V", "b2", "A"):
                a, ga = getattr(q, name), getattr(g, name)
                rate = getattr(rates, name)
                if a is not None and rate:
                    a -= eta * rate * ga
            t += 1
        train.append(ff.forward(q, X))
        test.append(ff.forward(q, X_test))
    return Oracle(steps, np.array(train), np.array(test))


# The RNN


def _positions(positions, L: int) -> np.ndarray:
    pos = np.arange(L) if positions is None else np.asarray(positions, dtype=np.int64).ravel()
    if pos.size == 0 or pos.min() < 0 or pos.max() >= L:
        raise ValueError(f"positions must be a non-empty subset of [0, {L})")
    return pos


def rnn_kernel(p: rnn.RNNParams, X1, X2=None, positions=None, lam: float = 1.0,
               trained=("W",)) -> np.ndarray:
    """The full eNTK of pacsim's ReLU RNN at ``p`` over (sample, output) pairs, an output
    being a (scored position ``j``, coordinate ``s``) pair: shape ``(n1, n2, P d, P d)``,
    output index ``a d + s`` for the ``a``-th of ``positions`` (``None``: all ``L``), the
    layout of ``rnn.forward(p, X, lam)[:, positions].reshape(n, P d)``.

    ``K[(x, js), (x', j's')] = sum over trained matrices M of <d(lam y_js(x))/dM,
    d(lam y_j's'(x'))/dM>`` (:func:`pacsim.kernels.entk.rnn`, ``blocks = "full"``,
    ``output = "full"``, no per-width scaling): the positions share ``W``, so the blocks
    between positions are not zero and GD on the positions' summed loss couples them. Rows of
    ``X1`` are taken in blocks so the input Gram stays under :data:`RNN_BLOCK` entries.
    Cost ``O(n1 n2 (P L)^2 m)``."""
    X1 = np.asarray(X1, dtype=np.float64)
    X2_ = X1 if X2 is None else np.asarray(X2, dtype=np.float64)
    n1, L = X1.shape[:2]
    n2 = X2_.shape[0]
    pos = _positions(positions, L)
    P, d = pos.size, p.d

    def k(A, B):
        return entk.rnn(p, A, B, pos, lam=lam, train=tuple(trained), blocks="full",
                        output="full")

    rows = max(1, RNN_BLOCK // (L * n2 * L))
    if rows >= n1:
        K = k(X1, None if X2 is None else X2_)
    else:
        K = np.concatenate([k(X1[i:i + rows], X2_) for i in range(0, n1, rows)])
    return K.transpose(0, 1, 2, 4, 3, 5).reshape(n1, n2, P * d, P * d)


def rnn_eta(lr: float, p: rnn.RNNParams, X, positions=None, lam: float = 1.0,
            trained=("W",)) -> float:
    """The raw step of a step size ``lr`` in NTK-trace units (``train.lr_units = "ntk"``), as
    :mod:`pacsim.learners.rnn` converts it: ``eta = lr / T``, ``T`` the per-sample trace of
    the tangent kernel of the trained matrices (sum over the scored positions and output
    coordinates of ``||d(lam y_js)/d theta||^2``), here measured on ``X`` by
    :func:`pacsim.models.rnn.empirical_ntk_trace` (the learner measures it on 8 probe inputs,
    or, for the ReLU cell at gain ``sqrt(2)`` with full BPTT, uses its wide-limit expectation
    :func:`pacsim.models.rnn.ntk_trace`; ``learner.step_size(lr, "ntk")`` gives a run's
    own). ``train.loss = "mse"`` multiplies a run's step by ``2 / (P d)`` on top of this."""
    X = np.asarray(X)
    pos = _positions(positions, X.shape[1])
    T = rnn.empirical_ntk_trace(p, X.astype(p.dtype), pos, lam, trained=tuple(trained))
    return float(lr) / T


def rnn_oracle(p: rnn.RNNParams, X, Y, X_test, eta: float, steps, *, lam: float = 1.0,
               trained=("W",), positions=None) -> Oracle:
    """The linearised oracle of pacsim's ReLU RNN (:mod:`pacsim.models.rnn`, full BPTT) at its
    weights ``p``, trained by full-batch GD with the raw step ``eta`` on

        loss = (1/n) sum_i sum_{j in positions} 0.5 ||lam B h_j(x_i) - y_ij||^2,

    the loss of :func:`pacsim.models.rnn.loss_and_grad` (mean over samples, sum over the
    scored positions and output coordinates), every matrix of ``trained`` stepped by
    ``eta`` times its gradient. ``eta`` is raw: a run's step in NTK units is
    :func:`rnn_eta` (``lr / T``). ``X``: (n, L, d_in) encoded inputs, ``Y``: (n, L, d) labels
    (the unscored positions are ignored, as by the loss). Reported at the scored positions:
    ``train[i]`` (n, P d) and ``test[i]`` (n_test, P d), position-major
    (:func:`rnn_kernel`); ``Oracle.test_nmse(Y_test[:, positions])``."""
    X = np.asarray(X, dtype=np.float64)
    X_test = np.asarray(X_test, dtype=np.float64)
    pos = _positions(positions, X.shape[1])
    Y = np.asarray(Y, dtype=np.float64)
    if Y.ndim != 3 or Y.shape[:2] != X.shape[:2] or Y.shape[2] != p.d:
        raise ValueError(f"Y must have shape {(*X.shape[:2], p.d)}, got {Y.shape}")
    n = len(X)
    K = rnn_kernel(p, X, None, pos, lam, trained)
    K_test = rnn_kernel(p, X_test, X, pos, lam, trained)

    def out(Z):
        return rnn.forward(p, Z.astype(p.dtype), lam)[:, pos].reshape(len(Z), -1)

    return linearised_gd(K, K_test, out(X), out(X_test), Y[:, pos].reshape(n, -1), eta,
                         steps)


def rnn_gd(p: rnn.RNNParams, X, Y, X_test, eta: float, steps, *, lam: float = 1.0,
           trained=("W",), positions=None) -> Oracle:
    """The RNN itself trained by full-batch GD on ``(X, Y)`` (a copy of ``p``): each step
    ``M <- M - eta * grad_M loss`` for ``M`` in ``trained``, with the loss and gradients of
    :func:`pacsim.models.rnn.loss_and_grad` (full BPTT; the loss of :func:`rnn_oracle`),
    reported like :func:`rnn_oracle`."""
    pos = _positions(positions, np.asarray(X).shape[1])
    names = tuple(trained)
    q = p.copy()
    X = np.asarray(X, dtype=p.dtype)
    X_test = np.asarray(X_test, dtype=p.dtype)
    steps = np.asarray(steps, dtype=np.int64)
    if (np.diff(steps) < 0).any() or (steps < 0).any():
        raise ValueError("steps must be increasing and >= 0")

    def out(Z):
        return rnn.forward(q, Z, lam)[:, pos].reshape(len(Z), -1).astype(np.float64)

    train, test = [], []
    t = 0
    for target in steps:
        while t < target:
            _, g = rnn.loss_and_grad(q, X, Y, lam, pos, trained=names)
            for name in names:
                a = getattr(q, name)
                a -= p.dtype.type(eta) * getattr(g, name)
            t += 1
        train.append(out(X))
        test.append(out(X_test))
    return Oracle(steps, np.array(train), np.array(test))
