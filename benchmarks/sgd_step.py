"""Microseconds per SGD step of pacsim's RNN against the same computation in PyTorch (CPU).

What is measured: one vanilla SGD step at batch 1 on the AZL Elman ReLU RNN (``d_in = 9``,
``d = 1``, ``L = 16``, scored positions ``2..L-1``, ``lam = 1``, only ``W`` trained): the
forward pass over the sequence, full backpropagation through time and the in-place update
``W <- W - eta * grad_W``, for hidden widths ``m`` in {64, 256, 1024}. Every implementation runs
the same samples in the same order from the same initial weights, in the same dtype:

* ``pacsim``: :func:`pacsim.models.rnn.sgd_chunk` (Numba), compiled before timing;
* ``torch manual``: the same per-sample BPTT written by hand under ``torch.no_grad`` with
  ``addmv``/``mv`` per position and one ``addmm_`` for ``W -= eta * sum_t outer(dz_t, h_{t-1})``;
* ``torch autograd``: a Python loop over positions, ``loss.backward()`` and an in-place SGD
  update of ``W``.

Everything runs on one thread (``torch.set_num_threads(1)``; OMP/OpenBLAS/MKL/Numba thread
counts set to 1 before numpy, numba or torch is imported). Each figure is the median over
``--repeats`` repeats of ``--steps`` steps; the ratio is torch time over pacsim time. Before
timing, one step of each implementation on a tiny float64 case must give the same updated ``W``.

Run it by hand (torch is optional and never a pacsim dependency)::

    python benchmarks/sgd_step.py [--dtype float32] [--repeats 5] [--steps N]
"""

# ruff: noqa: E402  (the thread counts must be set before numpy, numba or torch is imported)
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import statistics
import sys
import time
from importlib.metadata import version

import numba
import numpy as np

from pacsim.models import rnn

try:
    import torch
except ImportError:
    torch = None
else:
    torch.set_num_threads(1)

WIDTHS = (64, 256, 1024)
L = 16
D_X = 8
D = 1
LAM = 1.0
EPS_X = 0.5
N_SAMPLES = 64
#: Default steps per repeat, so that the slowest implementation takes ~0.2-1 s per repeat.
DEFAULT_STEPS = {64: 400, 256: 150, 1024: 20}


def make_problem(m, seq_len, dtype, seed=0):
    """AZL weights and a batch of ``N_SAMPLES`` random samples.

    Returns
    -------
    p : RNNParams
    X : ndarray of shape (N_SAMPLES, seq_len, D_X + 1)
    Y : ndarray of shape (N_SAMPLES, seq_len, D)
    """
    rng = np.random.default_rng(seed)
    p = rnn.init_params(m, D_X + 1, D, rng, dtype)
    X = rnn.azl_inputs(rng.standard_normal((N_SAMPLES, seq_len, D_X)), EPS_X, dtype)
    Y = rng.standard_normal((N_SAMPLES, seq_len, D)).astype(dtype)
    return p, X, Y


def scored_positions(seq_len):
    """0-based scored positions ``2..seq_len-1`` (AZL scores 1-based ``j >= 3``)."""
    return tuple(range(2, seq_len))


def pacsim_sgd(p, X, Y, eta, order):
    """Run ``len(order)`` pacsim SGD steps on ``p.W`` in place."""
    n_steps, _ = rnn.sgd_chunk(p, X, Y, eta, LAM, scored_positions(X.shape[1]), order)
    if n_steps != len(order):
        raise RuntimeError(f"pacsim diverged at step {n_steps}")


def torch_manual_sgd(W, A, B, X, Y, eta, order):
    """SGD steps with hand-written BPTT; updates the torch tensor ``W`` in place.

    Parameters
    ----------
    W, A, B : Tensor
        Weights of shapes (m, m), (m, d_in), (d, m).
    X, Y : Tensor
        Samples of shapes (n, L, d_in) and (n, L, d).
    eta : float
    order : sequence of int
        Sample index of each step.
    """
    L, m = X.shape[1], W.shape[0]
    scored = [t in scored_positions(L) for t in range(L)]
    H = W.new_zeros(L + 1, m)  # H[t + 1] = h_t, H[0] = h_0 = 0
    Dz = W.new_empty(L, m)  # Dz[t] = dLoss/dz_t
    with torch.no_grad():
        for j in order:
            AX = X[j] @ A.T  # (L, m)
            for t in range(L):
                torch.addmv(AX[t], W, H[t], out=H[t + 1]).clamp_(min=0)
            g = W.new_zeros(m)  # dLoss/dh_t from later positions
            for t in range(L - 1, -1, -1):
                if scored[t]:
                    r = torch.addmv(Y[j, t], B, H[t + 1], alpha=LAM, beta=-1.0)
                    g.addmv_(B.T, r, alpha=LAM)
                torch.mul(g, H[t + 1] > 0, out=Dz[t])
                g = torch.mv(W.T, Dz[t])
            W.addmm_(Dz.T, H[:L], alpha=-eta)


def torch_autograd_sgd(W, A, B, X, Y, eta, order):
    """SGD steps with autograd through a Python time loop; updates ``W`` in place.

    Parameters are as in :func:`torch_manual_sgd`; ``W`` must have ``requires_grad=True``.
    """
    L, m = X.shape[1], W.shape[0]
    scored = scored_positions(L)
    for j in order:
        AX = X[j] @ A.T
        h = W.new_zeros(m)
        loss = 0.0
        for t in range(L):
            h = torch.relu(W @ h + AX[t])
            if t in scored:
                loss = loss + 0.5 * (LAM * (B @ h) - Y[j, t]).square().sum()
        loss.backward()
        with torch.no_grad():
            W.add_(W.grad, alpha=-eta)
        W.grad = None


def to_torch(p, X, Y, requires_grad=False):
    """Copies of the weights and samples as torch tensors; ``W`` optionally a leaf with grad."""
    W, A, B, Xt, Yt = (torch.tensor(a) for a in (p.W, p.A, p.B, X, Y))
    W.requires_grad_(requires_grad)
    return W, A, B, Xt, Yt


def check_agreement():
    """One SGD step of every implementation on a tiny float64 case must give the same ``W``.

    The step size makes the update a sizeable fraction of ``W``, so the check is not trivial.
    """
    if torch is None:
        print("check: skipped (torch not installed)")
        return
    p, X, Y = make_problem(8, 5, np.float64, seed=1)
    order = [3]
    eta = 0.05
    W, *rest = to_torch(p, X, Y)
    torch_manual_sgd(W, *rest, eta, order)
    results = {"torch manual": W.numpy()}
    W, *rest = to_torch(p, X, Y, requires_grad=True)
    torch_autograd_sgd(W, *rest, eta, order)
    results["torch autograd"] = W.detach().numpy()
    W0 = p.W.copy()
    pacsim_sgd(p, X, Y, eta, np.array(order))
    if np.allclose(p.W, W0, rtol=1e-3, atol=0):
        raise AssertionError("check: the pacsim step barely moved W; the check would be vacuous")
    for name, W in results.items():
        if not np.allclose(W, p.W, rtol=1e-10, atol=1e-13):
            err = np.max(np.abs(W - p.W))
            raise AssertionError(f"check FAILED: {name} W differs from pacsim by {err:.3g}")
    print("check: OK (m=8, L=5, float64: pacsim and torch give the same updated W)")


def median_us_per_step(sgd, reset, order, repeats):
    """Median over repeats of the wall time per step of ``sgd(order)``, in µs.

    ``reset()`` restores the initial weights before every repeat, outside the timed region;
    two untimed steps first warm up (compile pacsim, load torch kernels).
    """
    reset()
    sgd(order[:2])
    times = []
    for _ in range(repeats):
        reset()
        t0 = time.perf_counter()
        sgd(order)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) / len(order) * 1e6


def bench_width(m, dtype, steps, repeats):
    """Median µs/step of each implementation at width ``m``, keyed by implementation name."""
    p, X, Y = make_problem(m, L, dtype)
    eta = 1e-4 / m
    order = np.arange(steps) % N_SAMPLES
    W0 = p.W.copy()
    out = {
        "pacsim": median_us_per_step(
            lambda o: pacsim_sgd(p, X, Y, eta, o), lambda: np.copyto(p.W, W0), order, repeats
        )
    }
    if torch is None:
        return out
    for name, sgd, grad in (
        ("torch manual", torch_manual_sgd, False),
        ("torch autograd", torch_autograd_sgd, True),
    ):
        W, A, B, Xt, Yt = to_torch(p, X, Y, requires_grad=grad)
        W_init = W.detach().clone()

        def run(o, sgd=sgd, W=W, A=A, B=B, Xt=Xt, Yt=Yt):
            sgd(W, A, B, Xt, Yt, eta, o.tolist())

        def reset(W=W, W_init=W_init):
            with torch.no_grad():
                W.copy_(W_init)

        out[name] = median_us_per_step(run, reset, order, repeats)
    return out


def print_header(dtype, repeats):
    """Versions, thread settings and problem sizes."""
    torch_version = torch.__version__ if torch is not None else "not installed"
    print(
        f"pacsim {version('pacsim')} | numba {numba.__version__} | numpy {np.__version__} | "
        f"torch {torch_version} | python {sys.version.split()[0]}"
    )
    print(
        "single thread: OMP/OPENBLAS/MKL/NUMBA_NUM_THREADS=1"
        + (", torch.set_num_threads(1)" if torch is not None else "")
    )
    print(
        f"dtype {np.dtype(dtype).name} | L={L} d_in={D_X + 1} d={D} lam={LAM} "
        f"scored positions 2..{L - 1} | eta=1e-4/m | batch 1, full BPTT"
    )
    print(f"median over {repeats} repeats of µs per SGD step; ratio = torch / pacsim")
    if torch is None:
        print("torch not installed: pip install torch==2.13.0 to compare; pacsim numbers only")


def print_table(rows):
    """One line per width: µs/step of each implementation and the torch/pacsim ratios."""
    header = f"{'m':>5} | {'steps':>5} | {'pacsim µs/step':>14}"
    if torch is not None:
        header += (
            f" | {'torch manual µs/step':>20} | {'ratio':>6}"
            f" | {'torch autograd µs/step':>22} | {'ratio':>6}"
        )
    print(header)
    print("-" * len(header))
    for m, steps, r in rows:
        line = f"{m:>5} | {steps:>5} | {r['pacsim']:>14.1f}"
        if torch is not None:
            for name, width in (("torch manual", 20), ("torch autograd", 22)):
                line += f" | {r[name]:>{width}.1f} | {r[name] / r['pacsim']:>6.1f}"
        print(line)


def main(argv=None):
    """Parse the options, check agreement, time every width and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--steps", type=int, default=None, help=f"steps per repeat (default {DEFAULT_STEPS})"
    )
    args = parser.parse_args(argv)
    dtype = np.dtype(args.dtype).type
    print_header(dtype, args.repeats)
    check_agreement()
    rows = []
    for m in WIDTHS:
        steps = args.steps or DEFAULT_STEPS[m]
        rows.append((m, steps, bench_width(m, dtype, steps, args.repeats)))
    print_table(rows)


if __name__ == "__main__":
    main()
