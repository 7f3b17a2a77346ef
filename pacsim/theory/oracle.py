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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..kernels import entk
from ..models import ff, rnn

__all__ = ["Oracle", "linearised_gd", "ff_oracle", "ff_gd", "ff_kernel", "rnn_kernel",
           "rnn_oracle", "rnn_gd", "rnn_eta"]

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
    Y = np.asarray(Y, dtype=np.float64)
    Y = Y[:, None] if Y.ndim == 1 else Y
    n, k = Y.shape
    f0 = np.asarray(f0, dtype=np.float64).reshape(n, k)
    f0_test = np.asarray(f0_test, dtype=np.float64)
    n_test = f0_test.shape[0]
    f0_test = f0_test.reshape(n_test, k)
    steps = np.asarray(steps, dtype=np.int64)
    if (steps < 0).any():
        raise ValueError("steps must be >= 0")
    Kj = _joint(K, n, n, k)
    Kt = _joint(K_test, n_test, n, k)
    s, U = np.linalg.eigh((Kj + Kj.T) / 2)
    s = np.clip(s, 0.0, None)
    c = U.T @ (Y - f0).reshape(-1)
    h = eta * s / n
    train, test = [], []
    for t in steps:
        decay = (1.0 - h) ** t
        with np.errstate(divide="ignore", invalid="ignore"):
            g = np.where(s > 0, (1.0 - decay) / np.where(s > 0, s, 1.0), eta * t / n)
        train.append(f0 + (Kj @ (U @ (g * c))).reshape(n, k))
        test.append(f0_test + (Kt @ (U @ (g * c))).reshape(n_test, k))
    return Oracle(steps, np.array(train), np.array(test), float(eta * s.max(initial=0.0) / n))


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
