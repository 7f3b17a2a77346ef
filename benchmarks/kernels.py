"""Seconds to build kernel Gram matrices with pacsim.kernels against plain vectorised NumPy.

What is measured (float64, one thread for BLAS and Numba, set before numpy is imported):

* ``rntk diag``: the recurrent NTK of pacsim's RNN (:func:`pacsim.kernels.rntk.rntk`, W-only,
  ``blocks="diag"``: one (N, N) kernel per scored position) for N = 2000 AZL sequences of
  length L = 16 (``d_x = 8``, ``eps_x = 0.1``, scored positions 2..L-1), output (N, N, 14);
* ``rntk sum``: the same inputs, ``blocks="sum"``: the kernel of the summed scored outputs,
  which needs every (j, j') position pair, i.e. the whole L x L grid of cells per pair;
* ``fc ntk``: the depth-2 ReLU NTK (:func:`pacsim.kernels.relu.ntk`) of N = 10000 Gaussian
  inputs in d = 100, output (N, N).

Each is the Gram matrix of one set with itself (pacsim computes one triangle; the NumPy twins
in ``pacsim/kernels/_reference.py`` compute the full matrix with whole-array operations, as a
straightforward NumPy implementation would). Before timing, both are run once on a small
problem (which also compiles / loads the Numba code) and must agree to 1e-9 relative; after
timing, the full results are compared off the diagonal. Each figure is the median over
``--repeats`` runs (``--numpy-repeats`` for the slower twin); the ratio is NumPy over pacsim.

The header also gives the machine's ceilings measured in the same run
(``benchmarks/_roofline.py``: GEMM peak, L2/last-level cache/memory read bandwidth). The kernel Gram
matrices are elementwise arc-cosine recursions over pairs (a few dozen flops and one ``arccos``
or ``sqrt`` per pair and cell) on top of one Gram product of the inputs, so neither GEMM nor a
bandwidth bounds them: each line prints the pairs (cells) per second instead, with the output
bytes written per second against the memory bandwidth.

Run it by hand::

    python benchmarks/kernels.py [--repeats 3] [--numpy-repeats 1] [--threads 1] [--quick]
"""

# ruff: noqa: E402  (the thread counts must be set before numpy or numba is imported)
import argparse
import os
import sys

from _threads import set_threads

_threads = "1"
for _i, _a in enumerate(sys.argv):
    if _a == "--threads" and _i + 1 < len(sys.argv):
        _threads = sys.argv[_i + 1]
set_threads(_threads)

import platform
import statistics
import time

import numpy as np
from _roofline import Roofline, limit_threads

from pacsim.kernels import _reference, relu, rntk
from pacsim.models import rnn


def _timed(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        out = None  # free the previous result first
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def _offdiag_relerr(A, B):
    n = min(A.shape[0], A.shape[1])
    A = A.reshape(A.shape[0], A.shape[1], -1).copy()
    B = B.reshape(B.shape[0], B.shape[1], -1).copy()
    idx = np.arange(n)
    A[idx, idx] = 0.0  # the twins round cos = 1 on the diagonal differently
    B[idx, idx] = 0.0
    return float(np.abs(A - B).max() / np.abs(B).max())


def _rnn_inputs(n, L, d_x=8, eps_x=0.1, seed=0):
    tok = np.random.default_rng(seed).standard_normal((n, L, d_x))
    tok /= np.linalg.norm(tok, axis=2, keepdims=True)
    return rnn.azl_inputs(tok, eps_x)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--numpy-repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="N = 500 / 2000 (a smoke run)")
    args = ap.parse_args()

    n_rnn, L = (500, 16) if args.quick else (2000, 16)
    n_fc, d_fc = (2000, 100) if args.quick else (10000, 100)
    depth = 2
    pos = list(range(2, L))
    print(f"pacsim.kernels benchmark: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, threads={args.threads}, numpy {np.__version__}")  # fmt: skip
    limit_threads(args.threads)
    roof = Roofline.measure(dtypes=("float64",))
    print(roof.header())

    cases = []
    X = _rnn_inputs(n_rnn, L)
    for blocks in ("diag", "sum"):
        ref = _reference.rntk_diag if blocks == "diag" else _reference.rntk
        kw = {} if blocks == "diag" else {"blocks": "sum"}
        cases.append((
            f"rntk {blocks:4s} N={n_rnn} L={L}",
            lambda b=blocks: rntk.rntk(X, None, pos, blocks=b),
            lambda ref=ref, kw=kw: ref(X, X, pos, **kw),
            lambda b=blocks, ref=ref, kw=kw: (rntk.rntk(X[:40], X[40:110], pos, blocks=b),
                                              ref(X[:40], X[40:110], pos, **kw)),
        ))  # fmt: skip
    Xf = np.random.default_rng(1).standard_normal((n_fc, d_fc))
    cases.append((
        f"fc ntk  N={n_fc} d={d_fc} depth={depth}",
        lambda: relu.ntk(Xf, None, depth),
        lambda: _reference.fc_ntk_nngp(Xf, Xf, depth)[0],
        lambda: (relu.ntk(Xf[:40], Xf[40:110], depth),
                 _reference.fc_ntk_nngp(Xf[:40], Xf[40:110], depth)[0]),
    ))  # fmt: skip

    print(f"{'case':34s} {'pacsim s':>10s} {'numpy s':>10s} {'ratio':>7s} {'max rel diff':>13s}"
          "  pacsim rate")
    for name, fast, slow, small in cases:
        a, b = small()
        err = float(np.abs(a - b).max() / np.abs(b).max())
        assert err < 1e-9, (name, err)
        t_fast, out_fast = _timed(fast, args.repeats)
        t_slow, out_slow = _timed(slow, args.numpy_repeats)
        diff = _offdiag_relerr(out_fast, out_slow)
        n_out, n_bytes = out_fast.size, out_fast.nbytes
        del out_fast, out_slow
        rate = (f"{n_out / t_fast / 1e6:.1f} M entries/s, {n_bytes / t_fast / 1e9:.2f} GB/s "
                f"= {100 * n_bytes / t_fast / 1e9 / roof.bw_mem:.1f}% of mem bw")
        print(f"{name:34s} {t_fast:10.2f} {t_slow:10.2f} {t_slow / t_fast:6.1f}x {diff:13.1e}"
              f"  {rate}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
