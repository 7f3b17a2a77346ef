"""Kernel and NTK baselines on the same data as the trained networks.

Array-level, float64, no config. Modules (see ``docs/kernels.md``):

* :mod:`~pacsim.kernels.relu`: closed-form NNGP/NTK of deep fully connected ReLU and
  LeakyReLU nets (Arora et al. 2019 convention), jitted;
* :mod:`~pacsim.kernels.residual`: pre-activation ResNet and AZL-ResNet kernels;
* :mod:`~pacsim.kernels.rntk`: recurrent NTK/NNGP of exactly pacsim's RNN (AZL W-only and
  PG21 W+A modes), jitted;
* :mod:`~pacsim.kernels.entk`: finite-width empirical NTKs (RNN, MLP, ResNets) without a
  Jacobian;
* :mod:`~pacsim.kernels.classical`: polynomial, Gaussian, arc-cosine, arcsin kernels and
  monomial least squares;
* :mod:`~pacsim.kernels.krr`: kernel ridge regression / ridge readouts with validation-split
  selection that never sees test labels.
"""

from . import classical, entk, krr, relu, residual, rntk

__all__ = ["classical", "entk", "krr", "relu", "residual", "rntk", "warmup"]


def warmup() -> None:
    """Compile (or load from the on-disk cache) the jitted kernels on tiny inputs."""
    import numpy as np

    X = np.ones((2, 3))
    relu.ntk_and_nngp(X, None, 1)
    relu.ntk_and_nngp(X, X.copy(), 1)
    S = np.ones((2, 3, 2))
    for blocks in ("full", "diag", "sum"):
        rntk.rntk(S, None, blocks=blocks)
        rntk.rntk(S, S.copy(), blocks=blocks)
