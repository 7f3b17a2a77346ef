"""Milliseconds per mini-batch gradient of the feed-forward networks, with roofline fractions.

What is measured: the mean loss and its gradient with respect to every array over a batch of
``--batch`` samples (50, the papers' experiments' batch; what the momentum preset's
``learner.batch_grad`` calls), for ``mlp2``, ``mlp3`` and ``resnet`` at ``d_in = 30``,
``d_out = 8`` (AZL-ResNet's experiment) and widths ``m`` in {500, 1000, 2000}:

* ``pacsim``: :func:`pacsim.models.ff.loss_and_grad` as the learners call it (``path="auto"``:
  BLAS matrix-matrix products over the batch from ``ff.BATCH_MIN`` samples on);
* ``per-sample``: the same call with ``path="samples"``, the jitted matrix-vector kernel that
  vanilla SGD runs (the path every batch took before the batched one);
* ``numpy``: the same gradient written plainly as NumPy matrix products (one product per layer
  forward and two per layer backward, new arrays throughout), the reference the issue names;
* ``torch autograd``: the forward pass over the batch in PyTorch and ``loss.backward()``.

Everything runs on one thread (``*_NUM_THREADS=1`` before the imports, threadpoolctl,
``torch.set_num_threads(1)``). Each figure is the median over ``--repeats`` rounds, the
implementations taking turns in every round in a shuffled order (``benchmarks/_timing.py``; torch
reads pacsim's arrays in place). The roofline columns come from
``benchmarks/_roofline.py`` (GEMM peak and bandwidths measured at the start of the same run):
pacsim's achieved GFLOP/s and its fraction of the bound (flops counted from the products:
``n (4 m d_in + 6 m d_out)`` for mlp2, ``+ 6 n m^2`` for mlp3's m x m layer, and
``n (4 m d_in + 18 m d_out)`` for the ResNet; bytes: the weights read twice and the gradients
written once, the activations of the batch written and read three times). Before timing, all
implementations must agree on a small float64 case.

Run it by hand (torch is optional and never a pacsim dependency)::

    python benchmarks/ff_batch.py [--dtype float64] [--batch 50] [--widths 500 1000 2000]
"""

# ruff: noqa: E402  (the thread counts must be set before numpy, numba or torch is imported)
from _threads import optional_torch, set_threads

set_threads(1)

import argparse
import sys
from importlib.metadata import version

import numba
import numpy as np
from _roofline import Roofline, limit_threads
from _timing import median_times

from pacsim.models import ff

torch = optional_torch()

ARCHS = ("mlp2", "mlp3", "resnet")
WIDTHS = (500, 1000, 2000)
D_IN = 30
D_OUT = 8


def make_problem(arch, m, n, dtype, seed=0):
    rng = np.random.default_rng(seed)
    p = ff.init_params(arch, m, D_IN, D_OUT, rng, dtype, init="experiment")
    X = rng.choice([-1.0, 1.0], size=(n, D_IN)).astype(dtype)
    Y = rng.standard_normal((n, D_OUT)).astype(dtype)
    return p, X, Y


def numpy_grad(p, X, Y):
    """The gradient as plain NumPy matrix products (dict of arrays, float loss)."""
    n = len(X)
    relu = lambda z: np.maximum(z, 0)  # noqa: E731
    H1 = relu(X @ p.W.T + p.b1)
    g = {}
    if p.arch == "mlp2":
        R = (H1 @ p.A.T - Y) / n
        D1 = (R @ p.A) * (H1 > 0)
        g["A"] = R.T @ H1
    elif p.arch == "mlp3":
        H2 = relu(H1 @ p.V.T + p.b2)
        R = (H2 @ p.A.T - Y) / n
        D2 = (R @ p.A) * (H2 > 0)
        D1 = (D2 @ p.V) * (H1 > 0)
        g.update(A=R.T @ H2, V=D2.T @ H1, b2=D2.sum(0))
    else:
        O1 = H1 @ p.A.T
        H2 = relu(O1 @ p.V.T + p.b2)
        R = (O1 + H2 @ p.A.T - Y) / n
        D2 = (R @ p.A) * (H2 > 0)
        E1 = R + D2 @ p.V
        D1 = (E1 @ p.A) * (H1 > 0)
        g.update(A=R.T @ H2 + E1.T @ H1, V=D2.T @ O1, b2=D2.sum(0))
    g.update(W=D1.T @ X, b1=D1.sum(0))
    return 0.5 * n * float(np.sum(R * R)), g


def torch_setup(p, X, Y):
    """Tensors sharing pacsim's arrays (no copy: every implementation reads the same memory,
    so none finds the weights colder in cache than another)."""
    w = {k: torch.from_numpy(getattr(p, k)).requires_grad_()
         for k in ff.NAMES if getattr(p, k) is not None}
    return w, torch.from_numpy(X), torch.from_numpy(Y)


def torch_grad(arch, w, X, Y):
    """Forward over the batch and ``loss.backward()``; returns the loss tensor."""
    for t in w.values():
        t.grad = None
    h1 = torch.relu(X @ w["W"].T + w["b1"])
    if arch == "mlp2":
        out = h1 @ w["A"].T
    elif arch == "mlp3":
        out = torch.relu(h1 @ w["V"].T + w["b2"]) @ w["A"].T
    else:
        o1 = h1 @ w["A"].T
        out = o1 + torch.relu(o1 @ w["V"].T + w["b2"]) @ w["A"].T
    loss = 0.5 * (out - Y).square().sum() / X.shape[0]
    loss.backward()
    return loss


def check_agreement():
    """pacsim (both paths), NumPy and torch give the same gradients on a small float64 case."""
    for arch in ARCHS:
        p, X, Y = make_problem(arch, 40, 50, np.float64, seed=1)
        loss, g = ff.loss_and_grad(p, X, Y)
        refs = {"per-sample": ff.loss_and_grad(p, X, Y, path="samples")}
        lnp, gnp = numpy_grad(p, X, Y)
        refs["numpy"] = (lnp, ff.FFGrad(**{k: gnp.get(k) for k in ff.NAMES}))
        if torch is not None:
            w, Xt, Yt = torch_setup(p, X, Y)
            lt = torch_grad(arch, w, Xt, Yt)
            refs["torch"] = (lt.item(), ff.FFGrad(**{k: (w[k].grad.numpy() if k in w else None)
                                                     for k in ff.NAMES}))
        for name, (l2, g2) in refs.items():
            # sums of <= 50 * 40 float64 products in different orders: ~1e-14 relative
            if abs(l2 - loss) > 1e-10 * abs(loss):
                raise AssertionError(f"check FAILED: {arch} {name} loss {l2} vs {loss}")
            for k, a in zip(ff.NAMES, g, strict=True):
                if a is not None and np.abs(a - getattr(g2, k)).max() > 1e-10 * np.abs(a).max():
                    raise AssertionError(f"check FAILED: {arch} {name} gradient {k}")
    print("check: OK (m=40, batch 50, float64: pacsim batched and per-sample, NumPy"
          + (" and torch" if torch is not None else "") + " agree)")


def counts(arch, m, n, itemsize):
    """``(flops, bytes, working_set)`` of one mini-batch gradient (see the module)."""
    flops = n * (4 * m * D_IN + 6 * m * D_OUT)
    params = m * D_IN + m + D_OUT * m
    act = 2 * n * m  # H1, D1
    if arch == "mlp3":
        flops += 6 * n * m * m
        params += m * m + m
        act += 2 * n * m
    elif arch == "resnet":
        flops += 12 * n * m * D_OUT
        params += m * D_OUT + m
        act += 2 * n * m
    nbytes = itemsize * (3 * params + 6 * act)
    return flops, nbytes, itemsize * (2 * params + act)


def bench(arch, m, n, dtype, repeats):
    p, X, Y = make_problem(arch, m, n, dtype)
    impls = {
        "pacsim": lambda: ff.loss_and_grad(p, X, Y),
        "per-sample": lambda: ff.loss_and_grad(p, X, Y, path="samples"),
        "numpy": lambda: numpy_grad(p, X, Y),
    }
    if torch is not None:
        w, Xt, Yt = torch_setup(p, X, Y)
        impls["torch autograd"] = lambda: torch_grad(arch, w, Xt, Yt)
    return median_times(impls, repeats)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--widths", type=int, nargs="+", default=list(WIDTHS))
    parser.add_argument("--archs", nargs="+", choices=ARCHS, default=list(ARCHS))
    args = parser.parse_args(argv)
    limit_threads(1)
    dtype = np.dtype(args.dtype)
    tv = torch.__version__ if torch is not None else "not installed"
    print(f"pacsim {version('pacsim')} | numba {numba.__version__} | numpy {np.__version__} | "
          f"torch {tv} | python {sys.version.split()[0]}")
    roof = Roofline.measure()
    print(roof.header())
    print(f"dtype {dtype.name} | batch {args.batch} | d_in={D_IN} d_out={D_OUT} | median over "
          f"{args.repeats} rounds; ratio = other / pacsim (> 1: pacsim faster)")
    check_agreement()
    cols = ["per-sample", "numpy"] + (["torch autograd"] if torch is not None else [])
    head = f"{'model':>6} | {'m':>5} | {'pacsim ms':>9} | " + " | ".join(
        f"{c + ' ms':>17} {'ratio':>5}" for c in cols) + " | pacsim roofline"
    print(head)
    print("-" * len(head))
    for arch in args.archs:
        for m in args.widths:
            t = bench(arch, m, args.batch, dtype, args.repeats)
            line = f"{arch:>6} | {m:>5} | {1e3 * t['pacsim']:>9.2f} | " + " | ".join(
                f"{1e3 * t[c]:>17.2f} {t[c] / t['pacsim']:>5.2f}" for c in cols)
            fl, nb, ws = counts(arch, m, args.batch, dtype.itemsize)
            print(line + " | " + roof.describe(t["pacsim"], fl, nb, dtype, ws), flush=True)


if __name__ == "__main__":
    main()
