"""What a learner learned of a target ``H = beta F + alpha G(F)``: its F and G coefficients.

AZL-ResNet (arXiv 1905.10337) claims more than a lower test error: the ResNet learns the
composite signal ``alpha G(F)``, which kernels cannot, while every learner picks up the base
signal ``F``. :func:`decompose` measures that on the test set. For every output ``r`` it fits
the learned function by least squares in the span of a constant and the target's two signals::

    f_r(x) ~ c_r + a_r F_r(x) + b_r alpha G_r(F(x))

and records (``decomp.*`` columns of the test rows, :func:`pacsim.train.run`):

* ``decomp.F_coef``: ``a_r`` averaged over the outputs (the target itself has ``beta``, 1 by
  default; 0: F absent);
* ``decomp.G_coef``: ``b_r`` averaged over the outputs (the target has 1; 0: G absent);
* ``decomp.rest_sse``: what the fit leaves, the residual's squared error summed over the
  outputs and averaged over the test inputs (the papers' ``test_sse`` units).

The constant ``c_r`` is in the model because a constant is not a signal: a learner that outputs
``F + E[alpha G]`` has not learned G (``b = 0``), and the resnet family's G (e.g. ``z^2`` links)
has a nonzero mean. On the parity targets F and G are orthogonal and centred, so the constant
changes nothing there. The residual is orthogonal to the span, which holds the noise-free labels,
so the test error against noise-free labels splits exactly as
``sum_r E[(c_r + (a_r - beta) F_r + (b_r - 1) alpha G_r)^2] + rest_sse``.

A signal that is constant on the test inputs (``alpha = 0``, say) has no coefficient: NaN for
its outputs, and the mean is over the outputs where it is defined. A learner whose predictions
are not finite (a diverged run) gets NaN everywhere.
"""

from __future__ import annotations

import math

import numpy as np

#: The columns :func:`decompose` returns.
COLUMNS = ("decomp.F_coef", "decomp.G_coef", "decomp.rest_sse")


def decompose(F: np.ndarray, alpha_G: np.ndarray,  # noqa: N803 - paper notation
              Yhat: np.ndarray) -> dict[str, float]:
    """Least-squares coefficients of ``Yhat`` on ``(1, F, alpha G)``, output by output.

    Parameters
    ----------
    F, alpha_G : ndarray of shape (n, d)
        The target's two signals at the test inputs
        (:meth:`pacsim.concepts.base.Composite.components`).
    Yhat : ndarray of shape (n, d)
        The learner's predictions at the same inputs.

    Returns
    -------
    dict with the keys of :data:`COLUMNS`.
    """
    F, alpha_G, Yhat = (np.asarray(a, dtype=np.float64) for a in (F, alpha_G, Yhat))
    if not (F.shape == alpha_G.shape == Yhat.shape and F.ndim == 2):
        raise ValueError(f"F, alpha_G and Yhat must have one shape (n, d); got {F.shape}, "
                         f"{alpha_G.shape}, {Yhat.shape}")
    nan = dict.fromkeys(COLUMNS, math.nan)
    if not np.isfinite(Yhat).all():
        return nan
    d = Yhat.shape[1]
    coefs = np.full((d, 2), np.nan)
    rest = 0.0
    for r in range(d):
        signals = np.stack([F[:, r], alpha_G[:, r]], axis=1)
        centred = signals - signals.mean(axis=0)
        # A signal whose spread is at rounding level of its size is a constant on these inputs.
        size = np.maximum(np.abs(signals).max(axis=0), np.finfo(np.float64).tiny)
        keep = np.flatnonzero(centred.std(axis=0) > 1e-12 * size)
        y = Yhat[:, r] - Yhat[:, r].mean()
        if keep.size:
            c, *_ = np.linalg.lstsq(centred[:, keep], y, rcond=None)
            coefs[r, keep] = c
            y = y - centred[:, keep] @ c
        rest += float(np.mean(y**2))
    F_coef, G_coef = (float(np.mean(c[np.isfinite(c)])) if np.isfinite(c).any() else math.nan
                      for c in coefs.T)
    return {"decomp.F_coef": F_coef, "decomp.G_coef": G_coef, "decomp.rest_sse": rest}
