"""Milliseconds per RNN gradient (one sequence, and a mini-batch) against PyTorch autograd,
with roofline fractions.

What is measured: :func:`pacsim.models.rnn.loss_and_grad` of the Elman ReLU RNN (AZL inputs,
``d_in = 9``, ``d = 1``, ``L = 16``, scored positions ``2..L-1``, ``lam = 1``, only ``W``
trained, full BPTT) from weights of :func:`pacsim.models.rnn.init_params`:

1. **one sequence** (batch 1; the jitted per-sample kernels), float32 and float64,
   ``m`` in {64, 256, 1024}, against PyTorch autograd on the same sequence (a loop over the
   positions, ``loss.backward()``);
2. **a mini-batch** (``--batch 50``, float64, ``m`` in {256, 1024}; what the momentum preset's
   ``learner.batch_grad`` calls): pacsim as the learners call it (``path="auto"``: one BLAS
   product over the batch per position), the per-sample kernels (``path="samples"``) and
   PyTorch autograd on the batch (the same loop over positions, each a product over the batch).

Everything runs on one thread (``*_NUM_THREADS=1`` before the imports, threadpoolctl,
``torch.set_num_threads(1)``); every figure is the median over ``--repeats`` rounds, the
implementations taking turns in every round in a shuffled order (``_timing.py``). Roofline
(``benchmarks/_roofline.py``, ceilings measured at the start of the same run), dense count:
``2 n m^2 (3L - 4)`` flops (``L - 1`` forward and ``L - 2`` backward products with ``W``,
and the gradient ``sum_t D_t^T H_{t-1}``),
``m^2 (2L - 2) + 4 L n m`` elements moved (``W`` read by every product, its gradient written;
the states and their gradients written and read), working set ``2 m^2 + 2 L n m`` elements.
The ReLU kernels skip closed units, so a batch-1 fraction of the dense bound can pass 100%.
Before timing, pacsim and torch must agree on a small float64 case.

Run it by hand (torch is optional and never a pacsim dependency)::

    python benchmarks/rnn_grad.py [--repeats 7] [--batch 50] [--single-widths 64 256 1024]
        [--batch-widths 256 1024]
"""

# ruff: noqa: E402  (the thread counts must be set before numpy, numba or torch is imported)
from _threads import optional_torch, set_threads

set_threads(1)

import argparse
import sys

import numba
import numpy as np
from _roofline import Roofline, limit_threads
from _timing import median_times

from pacsim.models import rnn

torch = optional_torch()

L, D_X, D, LAM, EPS_X = 16, 8, 1, 1.0, 0.5
POS = list(range(2, L))


def make_problem(m, n, dtype, seed=0):
    rng = np.random.default_rng(seed)
    p = rnn.init_params(m, D_X + 1, D, rng, dtype)
    X = rnn.azl_inputs(rng.standard_normal((n, L, D_X)), EPS_X, dtype)
    Y = rng.standard_normal((n, L, D)).astype(dtype)
    return p, X, Y


def torch_setup(p, X, Y):
    W = torch.from_numpy(np.ascontiguousarray(p.W)).requires_grad_()  # torch's own layout
    return W, torch.from_numpy(p.A), torch.from_numpy(p.B), torch.from_numpy(X), \
        torch.from_numpy(Y)


def torch_grad(W, A, B, X, Y):
    """Loss over the batch (mean over samples) and ``W.grad`` by autograd."""
    W.grad = None
    XA = X @ A.T  # (n, L, m)
    h, loss = None, 0.0
    for t in range(L):
        e = XA[:, t] if h is None else XA[:, t] + h @ W.T
        h = torch.relu(e)
        if t >= 2:
            loss = loss + 0.5 * (LAM * (h @ B.T) - Y[:, t]).square().sum()
    loss = loss / X.shape[0]
    loss.backward()
    return loss


def check_agreement():
    if torch is None:
        print("check: skipped (torch not installed)")
        return
    for n in (1, 50):
        p, X, Y = make_problem(24, n, np.float64, seed=1)
        loss, g = rnn.loss_and_grad(p, X, Y, LAM, POS)
        W, *rest = torch_setup(p, X, Y)
        lt = torch_grad(W, *rest).item()
        # sums over <= 50 samples x 16 positions of 24-term products: ~1e-14 relative
        err = np.abs(W.grad.numpy() - g.W).max() / np.abs(g.W).max()
        if abs(lt - loss) > 1e-10 * abs(loss) or err > 1e-10:
            raise AssertionError(f"check FAILED at batch {n}: loss {loss} vs {lt}, W {err:.2g}")
    print("check: OK (m=24, float64, batch 1 and 50: pacsim and torch autograd agree)")


def counts(m, n, itemsize):
    flops = 2 * n * m * m * (3 * L - 4)
    nbytes = itemsize * (m * m * (2 * L - 2) + 4 * L * n * m)
    return flops, nbytes, itemsize * (2 * m * m + 2 * L * n * m)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--single-widths", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--batch-widths", type=int, nargs="+", default=[256, 1024])
    args = parser.parse_args(argv)
    limit_threads(1)
    rnn.warmup(("float64", "float32"))
    tv = torch.__version__ if torch is not None else "not installed"
    print(f"numba {numba.__version__} | numpy {np.__version__} | torch {tv} | "
          f"python {sys.version.split()[0]}")
    roof = Roofline.measure()
    print(roof.header())
    print(f"ReLU, L={L} d_in={D_X + 1} d={D}, scored 2..{L - 1}, only W, full BPTT | median "
          f"over {args.repeats} rounds; ratio = other / pacsim (> 1: pacsim faster)")
    check_agreement()
    rows = [("one sequence", dt, m, 1) for dt in ("float32", "float64")
            for m in args.single_widths]
    rows += [(f"batch {args.batch}", "float64", m, args.batch) for m in args.batch_widths]
    head = (f"{'case':>12} | {'dtype':>7} | {'m':>5} | {'pacsim ms':>9} | "
            f"{'per-sample ms':>13} {'ratio':>5} | {'torch autograd ms':>17} {'ratio':>5} | "
            "pacsim roofline (dense count)")
    print(head)
    print("-" * len(head))
    for case, dt, m, n in rows:
        p, X, Y = make_problem(m, n, np.dtype(dt))
        impls = {"pacsim": lambda p=p, X=X, Y=Y: rnn.loss_and_grad(p, X, Y, LAM, POS)}
        if n > 1:
            impls["per-sample"] = lambda p=p, X=X, Y=Y: rnn.loss_and_grad(
                p, X, Y, LAM, POS, path="samples")
        if torch is not None:
            tt = torch_setup(p, X, Y)
            impls["torch"] = lambda tt=tt: torch_grad(*tt)
        t = median_times(impls, args.repeats)
        cells = []
        for k, w in (("per-sample", 13), ("torch", 17)):
            cells.append(f"{1e3 * t[k]:>{w}.2f} {t[k] / t['pacsim']:>5.2f}" if k in t
                         else f"{'-':>{w}} {'-':>5}")
        fl, nb, ws = counts(m, n, np.dtype(dt).itemsize)
        print(f"{case:>12} | {dt:>7} | {m:>5} | {1e3 * t['pacsim']:>9.2f} | " + " | ".join(cells)
              + " | " + roof.describe(t["pacsim"], fl, nb, dt, ws), flush=True)


if __name__ == "__main__":
    main()
