"""Microseconds per SGD step of pacsim's feed-forward networks against PyTorch (CPU).

What is measured: one vanilla SGD step at batch 1 (forward, backward, in-place update of the
trained arrays) for each network of :mod:`pacsim.models.ff`, with the papers' trained arrays:

* ``resnet``: ``out1 = A ReLU(W x + b1)``, ``out = out1 + A ReLU(V out1 + b2)``; ``W, b1, V, b2``
  trained (``eta_V = eta_W / 2``, so that the rates are exercised), ``A`` fixed;
* ``mlp2``: ``out = A ReLU(W x + b1)``; ``W, b1`` trained;
* ``mlp3``: ``out = A ReLU(V ReLU(W x + b1) + b2)``; ``W, b1, V, b2`` trained;

at the sizes of AZL-ResNet's experiment (``d_in = 30``, ``d_out = 8``; arXiv 1905.10337 v2, Fig. 2)
for hidden widths ``m`` in {64, 256, 1024, 4096}. Every implementation runs the same samples in
the same order from the same initial weights, in the same dtype:

* ``pacsim``: :func:`pacsim.models.ff.sgd_chunk` (Numba), compiled before timing;
* ``torch manual``: the same backpropagation written by hand under ``torch.no_grad``
  (``addmv``/``mv`` per layer, ``addr_`` for the rank-1 updates);
* ``torch autograd``: the forward pass, ``loss.backward()`` and in-place updates.

Everything runs on one thread (``torch.set_num_threads(1)``; OMP/OpenBLAS/MKL/Numba thread
counts set to 1 before numpy, numba or torch is imported). Each figure is the median over
``--repeats`` repeats of ``--steps`` steps; the ratio is torch time over pacsim time. Before
timing, one step of each implementation on a tiny float64 case must give the same weights.

The last column is pacsim's roofline (``benchmarks/_roofline.py``, ceilings measured at the
start of the same run): achieved GFLOP/s and GB/s and the fraction of the bound, from the
count of one step: ``4 m d_in + 4 m d_out`` flops for mlp2, ``+ 6 m^2`` for mlp3,
``4 m d_in + 14 m d_out`` for the ResNet (matrix-vector products forward and backward, rank-1
updates), and the weights moved (a trained matrix read forward, read backward where it is, read
and written by its update; ``A`` read forward and backward). The working set is the weights,
so the bound is a bandwidth (L2 while they fit): a batch-1 step does about 1/4 flop per byte.
The mini-batch gradient is ``benchmarks/ff_batch.py``.

Run it by hand (torch is optional and never a pacsim dependency)::

    python benchmarks/ff_step.py [--dtype float32] [--repeats 5] [--steps N]
"""

# ruff: noqa: E402  (the thread counts must be set before numpy, numba or torch is imported)
from _threads import optional_torch, set_threads

set_threads(1)

import argparse
import statistics
import sys
import time
from importlib.metadata import version

import numba
import numpy as np
from _roofline import Roofline, limit_threads

from pacsim.models import ff

torch = optional_torch()

ARCHS = ("resnet", "mlp2", "mlp3")
WIDTHS = (64, 256, 1024, 4096)
D_IN = 30
D_OUT = 8
N_SAMPLES = 64
#: eta_V / eta_W of the ResNet (not 1, so that a wrong rate would show in the check).
RATIO_V = 0.5
#: Default steps per repeat, so that the slowest implementation takes ~0.1-1 s per repeat.
DEFAULT_STEPS = {64: 2000, 256: 1000, 1024: 200, 4096: 40}


def rates(arch):
    """The trained arrays of the benchmark: hidden layers, A fixed."""
    return ff.default_rates(lr_ratio_v=RATIO_V if arch == "resnet" else 1.0)


def make_problem(arch, m, dtype, seed=0):
    """Initialised weights and ``N_SAMPLES`` random samples (inputs on {-1, 1}^D_IN).

    Returns
    -------
    p : FFParams
    X : ndarray of shape (N_SAMPLES, D_IN)
    Y : ndarray of shape (N_SAMPLES, D_OUT)
    """
    rng = np.random.default_rng(seed)
    init = "experiment" if arch == "resnet" else None
    p = ff.init_params(arch, m, D_IN, D_OUT, rng, dtype, init=init)
    X = rng.choice([-1.0, 1.0], size=(N_SAMPLES, D_IN)).astype(dtype)
    Y = rng.standard_normal((N_SAMPLES, D_OUT)).astype(dtype)
    return p, X, Y


def pacsim_sgd(p, X, Y, eta, order):
    """Run ``len(order)`` pacsim SGD steps on ``p`` in place."""
    n_steps, _ = ff.sgd_chunk(p, X, Y, eta, order, rates(p.arch))
    if n_steps != len(order):
        raise RuntimeError(f"pacsim diverged at step {n_steps}")


def torch_manual_sgd(arch, w, X, Y, eta, order):
    """SGD steps with hand-written backpropagation; updates the tensors of ``w`` in place.

    Parameters
    ----------
    arch : str
    w : dict of Tensor
        ``W (m, d_in)``, ``b1 (m,)``, ``A (d_out, m)`` and, but for mlp2, ``V``, ``b2``.
    X, Y : Tensor
        Samples of shapes (n, d_in) and (n, d_out).
    eta : float
    order : sequence of int
        Sample index of each step.
    """
    W, b1, A, V, b2 = w["W"], w["b1"], w["A"], w.get("V"), w.get("b2")
    eta_v = eta * (RATIO_V if arch == "resnet" else 1.0)
    with torch.no_grad():
        for j in order:
            x = X[j]
            h1 = torch.addmv(b1, W, x).clamp_(min=0)
            if arch == "mlp2":
                r = torch.mv(A, h1) - Y[j]
                d1 = torch.mv(A.T, r).mul_(h1 > 0)
            elif arch == "mlp3":
                h2 = torch.addmv(b2, V, h1).clamp_(min=0)
                r = torch.mv(A, h2) - Y[j]
                d2 = torch.mv(A.T, r).mul_(h2 > 0)
                d1 = torch.mv(V.T, d2).mul_(h1 > 0)
                V.addr_(d2, h1, alpha=-eta_v)
                b2.add_(d2, alpha=-eta_v)
            else:
                o1 = torch.mv(A, h1)
                h2 = torch.addmv(b2, V, o1).clamp_(min=0)
                r = torch.addmv(o1, A, h2) - Y[j]
                d2 = torch.mv(A.T, r).mul_(h2 > 0)
                e1 = torch.addmv(r, V.T, d2)
                d1 = torch.mv(A.T, e1).mul_(h1 > 0)
                V.addr_(d2, o1, alpha=-eta_v)
                b2.add_(d2, alpha=-eta_v)
            W.addr_(d1, x, alpha=-eta)
            b1.add_(d1, alpha=-eta)


def torch_autograd_sgd(arch, w, X, Y, eta, order):
    """SGD steps with autograd; updates the trained tensors of ``w`` in place.

    Parameters are as in :func:`torch_manual_sgd`; the trained tensors require grad.
    """
    W, b1, A, V, b2 = w["W"], w["b1"], w["A"], w.get("V"), w.get("b2")
    trained = [(W, eta), (b1, eta)]
    if arch != "mlp2":
        eta_v = eta * (RATIO_V if arch == "resnet" else 1.0)
        trained += [(V, eta_v), (b2, eta_v)]
    for j in order:
        h1 = torch.relu(W @ X[j] + b1)
        if arch == "mlp2":
            out = A @ h1
        elif arch == "mlp3":
            out = A @ torch.relu(V @ h1 + b2)
        else:
            o1 = A @ h1
            out = o1 + A @ torch.relu(V @ o1 + b2)
        loss = 0.5 * (out - Y[j]).square().sum()
        loss.backward()
        with torch.no_grad():
            for t, e in trained:
                t.add_(t.grad, alpha=-e)
                t.grad = None


def to_torch(p, X, Y, requires_grad=False):
    """Copies of the weights (a dict) and samples as torch tensors; the trained ones
    optionally leaves with grad."""
    w = {n: torch.tensor(getattr(p, n)) for n in ff.NAMES if getattr(p, n) is not None}
    for n in ("W", "b1", "V", "b2"):
        if n in w:
            w[n].requires_grad_(requires_grad)
    return w, torch.tensor(X), torch.tensor(Y)


def check_agreement():
    """One SGD step of every implementation on a tiny float64 case must give the same weights.

    The step size makes the update a sizeable fraction of the weights, so the check is not
    trivial.
    """
    if torch is None:
        print("check: skipped (torch not installed)")
        return
    for arch in ARCHS:
        p, X, Y = make_problem(arch, 8, np.float64, seed=1)
        order, eta = [3], 0.05
        w, Xt, Yt = to_torch(p, X, Y)
        torch_manual_sgd(arch, w, Xt, Yt, eta, order)
        results = {"torch manual": w}
        w, Xt, Yt = to_torch(p, X, Y, requires_grad=True)
        torch_autograd_sgd(arch, w, Xt, Yt, eta, order)
        results["torch autograd"] = w
        W0 = p.W.copy()
        pacsim_sgd(p, X, Y, eta, np.array(order))
        if np.allclose(p.W, W0, rtol=1e-3, atol=0):
            raise AssertionError(f"check: the pacsim {arch} step barely moved W; vacuous check")
        for name, w in results.items():
            for n, t in w.items():
                err = np.max(np.abs(t.detach().numpy() - getattr(p, n)))
                if err > 1e-12:
                    raise AssertionError(f"check FAILED: {arch} {name} {n} differs by {err:.3g}")
    print("check: OK (m=8, float64: pacsim and torch give the same updated weights, all models)")


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


def bench(arch, m, dtype, steps, repeats):
    """Median µs/step of each implementation, keyed by implementation name."""
    p, X, Y = make_problem(arch, m, dtype)
    eta = 1e-4 / m
    order = np.arange(steps) % N_SAMPLES
    p0 = p.copy()

    def reset_pacsim():
        for n in ff.NAMES:
            if getattr(p, n) is not None:
                np.copyto(getattr(p, n), getattr(p0, n))

    out = {"pacsim": median_us_per_step(lambda o: pacsim_sgd(p, X, Y, eta, o), reset_pacsim,
                                        order, repeats)}
    if torch is None:
        return out
    for name, sgd, grad in (
        ("torch manual", torch_manual_sgd, False),
        ("torch autograd", torch_autograd_sgd, True),
    ):
        w, Xt, Yt = to_torch(p0, X, Y, requires_grad=grad)
        w0 = {n: t.detach().clone() for n, t in w.items()}

        def run(o, sgd=sgd, w=w, Xt=Xt, Yt=Yt):
            sgd(arch, w, Xt, Yt, eta, o.tolist())

        def reset(w=w, w0=w0):
            with torch.no_grad():
                for n, t in w.items():
                    t.copy_(w0[n])

        out[name] = median_us_per_step(run, reset, order, repeats)
    return out


def step_counts(arch, m, itemsize):
    """``(flops, bytes, working_set)`` of one SGD step (see the module)."""
    flops = 4 * m * D_IN + 4 * m * D_OUT
    moved = 3 * m * D_IN + 2 * m * D_OUT  # W: forward, update (read + write); A: twice
    size = m * D_IN + D_OUT * m
    if arch == "mlp3":
        flops, moved, size = flops + 6 * m * m, moved + 4 * m * m, size + m * m
    elif arch == "resnet":
        flops += 10 * m * D_OUT
        moved += 4 * m * D_OUT + 2 * m * D_OUT  # V as mlp3's; A used twice more
        size += m * D_OUT
    return flops, itemsize * moved, itemsize * size


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
    print(f"dtype {np.dtype(dtype).name} | d_in={D_IN} d_out={D_OUT} | eta=1e-4/m | batch 1")
    print(f"median over {repeats} repeats of µs per SGD step; ratio = torch / pacsim")
    if torch is None:
        print("torch not installed: pip install torch to compare; pacsim numbers only")


def print_table(rows, dtype=np.float64, roof=None):
    """One line per (model, width): µs/step of each implementation and the ratios, and
    pacsim's roofline fraction when ``roof`` is given."""
    header = f"{'model':>6} | {'m':>5} | {'steps':>5} | {'pacsim µs/step':>14}"
    if torch is not None:
        header += (
            f" | {'torch manual µs/step':>20} | {'ratio':>6}"
            f" | {'torch autograd µs/step':>22} | {'ratio':>6}"
        )
    if roof is not None:
        header += " | pacsim roofline"
    print(header)
    print("-" * len(header))
    for arch, m, steps, r in rows:
        line = f"{arch:>6} | {m:>5} | {steps:>5} | {r['pacsim']:>14.1f}"
        if torch is not None:
            for name, width in (("torch manual", 20), ("torch autograd", 22)):
                line += f" | {r[name]:>{width}.1f} | {r[name] / r['pacsim']:>6.1f}"
        if roof is not None:
            fl, nb, ws = step_counts(arch, m, np.dtype(dtype).itemsize)
            line += " | " + roof.describe(r["pacsim"] * 1e-6, fl, nb, dtype, ws)
        print(line)


def main(argv=None):
    """Parse the options, check agreement, time every model and width, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--steps", type=int, default=None, help=f"steps per repeat (default {DEFAULT_STEPS})"
    )
    parser.add_argument("--widths", type=int, nargs="+", default=list(WIDTHS))
    args = parser.parse_args(argv)
    dtype = np.dtype(args.dtype).type
    limit_threads(1)
    roof = Roofline.measure()
    print(roof.header())
    print_header(dtype, args.repeats)
    check_agreement()
    rows = []
    for arch in ARCHS:
        for m in args.widths:
            steps = args.steps or DEFAULT_STEPS.get(m, 100)
            rows.append((arch, m, steps, bench(arch, m, dtype, steps, args.repeats)))
    print_table(rows, dtype, roof)


if __name__ == "__main__":
    main()
