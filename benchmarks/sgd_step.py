"""Microseconds per SGD step of pacsim's RNN cells against the same computation in PyTorch (CPU).

What is measured: one vanilla SGD step at batch 1 (``d_in = 9``, ``d = 1``, ``L = 16``, AZL
inputs with ``eps_x = 0.5``, scored positions ``2..L-1``, ``lam = 1``, only ``W`` trained, full
BPTT): the forward pass over the sequence, backpropagation through time and the in-place update
``W <- W - eta * grad_W``, for hidden widths ``m`` in {64, 256, 1024}, for each cell (Elman
ReLU, Elman tanh, minimalRNN) and dtype. Every implementation runs the same samples in the same
order from the same initial weights, in the same dtype:

* ``pacsim``: :func:`pacsim.models.rnn.sgd_chunk` (Numba), compiled before timing;
* ``torch manual``: the same per-sample BPTT written by hand under ``torch.no_grad`` with
  ``addmv``/``mv`` per position and one ``addmm_`` for ``W -= eta * sum_t outer(de_t, h_{t-1})``
  (for the minimalRNN the fixed gate input ``V A x_t + b`` is precomputed, as pacsim does);
* ``torch autograd``: a Python loop over positions, ``loss.backward()`` and an in-place SGD
  update of ``W``.

Everything runs on one thread (``torch.set_num_threads(1)``; OMP/OpenBLAS/MKL/Numba thread
counts set to 1 before numpy, numba or torch is imported). Each figure is the median over
``--repeats`` repeats of ``--steps`` steps, the implementations taking turns in every round of
repeats; the ratio is torch time over pacsim time. Before
timing, one step of each implementation on a tiny float64 case of each cell must give the same
updated ``W``.

The last column is pacsim's roofline (``benchmarks/_roofline.py``, ceilings measured at the
start of the same run): achieved GFLOP/s and GB/s and the fraction of the bound, from the
dense count of one step with only ``W`` trained, ``2 m^2 (3L - 4)`` flops (``L - 1`` forward
and ``L - 2`` backward products with ``W``, the rank-``(L - 1)`` update) and
``m^2 (2L - 1)`` elements of ``W`` moved (each product reads ``W``, the update reads and
writes it); the working set is ``W``, so the bound is the L2 bandwidth while ``W`` fits in
L2. The ReLU kernels skip closed units and read about half of ``W`` per product, so their
fraction of the dense bound can pass 100%.

``--learner`` also times the feed-forward learners (``resnet``, ``mlp2``, ``mlp3``) the same
way, through ``benchmarks/ff_step.py`` (its docstring says what it measures), so one run covers
every SGD learner; by default only the RNN runs.

Run it by hand (torch is optional and never a pacsim dependency)::

    python benchmarks/sgd_step.py [--dtype float32 float64] [--cell relu tanh minimal]
                                  [--learner rnn resnet mlp2 mlp3] [--repeats 5] [--steps N]
"""

# ruff: noqa: E402  (the thread counts must be set before numpy, numba or torch is imported)
from _threads import optional_torch, set_threads

set_threads(1)

import argparse
import statistics
import sys
import time
from importlib.metadata import PackageNotFoundError, version

import numba
import numpy as np
from _roofline import Roofline, limit_threads

from pacsim.models import rnn

torch = optional_torch()

WIDTHS = (64, 256, 1024)
#: The feed-forward SGD learners (timed by ff_step.py).
FF_LEARNERS = ("resnet", "mlp2", "mlp3")
L = 16
D_X = 8
D = 1
LAM = 1.0
EPS_X = 0.5
N_SAMPLES = 64
#: Default steps per repeat, so that the slowest implementation takes ~0.2-1 s per repeat.
DEFAULT_STEPS = {64: 400, 256: 150, 1024: 20}


def make_problem(m, seq_len, dtype, cell="relu", seed=0):
    """AZL-initialised weights of ``cell`` and a batch of ``N_SAMPLES`` random samples.

    Returns
    -------
    p : RNNParams
    X : ndarray of shape (N_SAMPLES, seq_len, D_X + 1)
    Y : ndarray of shape (N_SAMPLES, seq_len, D)
    """
    rng = np.random.default_rng(seed)
    p = rnn.init_params(m, D_X + 1, D, rng, dtype, cell=cell)
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


def torch_manual_sgd(cell, W, A, B, V, b, X, Y, eta, order):
    """SGD steps with hand-written BPTT; updates the torch tensor ``W`` in place.

    Parameters
    ----------
    cell : {"relu", "tanh", "minimal"}
    W, A, B : Tensor
        Weights of shapes (m, m), (m, d_in), (d, m).
    V, b : Tensor or None
        minimalRNN gate-input weights (m, m) and bias (m,).
    X, Y : Tensor
        Samples of shapes (n, L, d_in) and (n, L, d).
    eta : float
    order : sequence of int
        Sample index of each step.
    """
    L, m = X.shape[1], W.shape[0]
    scored = [t in scored_positions(L) for t in range(L)]
    H = W.new_zeros(L + 1, m)  # H[t + 1] = h_t, H[0] = h_{-1} = 0
    U = W.new_empty(L, m)  # minimalRNN gates
    De = W.new_empty(L, m)  # De[t] = dLoss/de_t
    with torch.no_grad():
        for j in order:
            Z = X[j] @ A.T  # (L, m): A x_t, or the embedded inputs z_t
            if cell == "minimal":
                GX = torch.addmm(b, Z, V.T)  # V z_t + b, fixed while A is
                for t in range(L):
                    torch.sigmoid(torch.addmv(GX[t], W, H[t]), out=U[t])
                    torch.addcmul(Z[t], U[t], H[t] - Z[t], out=H[t + 1])  # u h + (1-u) z
            else:
                act = torch.relu_ if cell == "relu" else torch.tanh_
                for t in range(L):
                    act(torch.addmv(Z[t], W, H[t], out=H[t + 1]))
            g = W.new_zeros(m)  # dLoss/dh_t from later positions
            for t in range(L - 1, -1, -1):
                if scored[t]:
                    r = torch.addmv(Y[j, t], B, H[t + 1], alpha=LAM, beta=-1.0)
                    g.addmv_(B.T, r, alpha=LAM)
                if cell == "relu":
                    torch.mul(g, H[t + 1] > 0, out=De[t])
                    g = torch.mv(W.T, De[t])
                elif cell == "tanh":
                    torch.mul(g, 1 - H[t + 1] * H[t + 1], out=De[t])
                    g = torch.mv(W.T, De[t])
                else:
                    torch.mul(g * (H[t] - Z[t]), U[t] * (1 - U[t]), out=De[t])
                    g = torch.addmv(U[t] * g, W.T, De[t])
            W.addmm_(De.T, H[:L], alpha=-eta)


def _torch_step(cell, W, V, b, h, ax):
    """One step of ``cell`` from ``h`` with input drive ``ax = A x_t`` (autograd)."""
    if cell == "minimal":
        u = torch.sigmoid(W @ h + V @ ax + b)
        return u * h + (1 - u) * ax
    e = W @ h + ax
    return torch.relu(e) if cell == "relu" else torch.tanh(e)


def torch_autograd_sgd(cell, W, A, B, V, b, X, Y, eta, order):
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
            h = _torch_step(cell, W, V, b, h, AX[t])
            if t in scored:
                loss = loss + 0.5 * (LAM * (B @ h) - Y[j, t]).square().sum()
        loss.backward()
        with torch.no_grad():
            W.add_(W.grad, alpha=-eta)
        W.grad = None


def to_torch(p, X, Y, requires_grad=False):
    """Copies of the weights and samples as torch tensors; ``W`` optionally a leaf with grad.

    Returns ``W, A, B, V, b, X, Y`` (``V``, ``b`` are ``None`` for the Elman cells).
    """
    W, A, B, Xt, Yt = (torch.tensor(a) for a in (p.W, p.A, p.B, X, Y))
    V = None if p.V is None else torch.tensor(p.V)
    b = None if p.b is None else torch.tensor(p.b)
    W.requires_grad_(requires_grad)
    return W, A, B, V, b, Xt, Yt


def check_agreement(cells):
    """One SGD step of every implementation on a tiny float64 case of each cell must give the
    same ``W``.

    The step size makes the update a sizeable fraction of ``W``, so the check is not trivial.
    """
    if torch is None:
        print("check: skipped (torch not installed)")
        return
    for cell in cells:
        p, X, Y = make_problem(8, 5, np.float64, cell, seed=1)
        order = [3]
        eta = 0.5
        W, *rest = to_torch(p, X, Y)
        torch_manual_sgd(cell, W, *rest, eta, order)
        results = {"torch manual": W.numpy()}
        W, *rest = to_torch(p, X, Y, requires_grad=True)
        torch_autograd_sgd(cell, W, *rest, eta, order)
        results["torch autograd"] = W.detach().numpy()
        W0 = p.W.copy()
        pacsim_sgd(p, X, Y, eta, np.array(order))
        if np.allclose(p.W, W0, rtol=1e-3, atol=0):
            raise AssertionError(f"check: the pacsim {cell} step barely moved W; vacuous check")
        for name, W in results.items():
            if not np.allclose(W, p.W, rtol=1e-10, atol=1e-13):
                err = np.max(np.abs(W - p.W))
                raise AssertionError(f"check FAILED: {cell} {name} W differs by {err:.3g}")
    print(f"check: OK (m=8, L=5, float64, cells {', '.join(cells)}: pacsim and torch agree)")


def median_us_per_step(impls, order, repeats):
    """Median over repeats of the wall time per step of each implementation, in µs.

    ``impls`` maps a name to ``(sgd, reset)``: ``sgd(order)`` runs the steps and ``reset()``
    restores the initial weights before every repeat, outside the timed region. Two untimed
    steps of each first warm up (compile pacsim, load torch kernels). The repeats interleave
    the implementations (one of each per round, in a seeded shuffled order: ``_timing.py``),
    so a change of load on a shared machine falls on all of them alike and the ratios stay
    fair.
    """
    times = {name: [] for name in impls}
    for sgd, reset in impls.values():
        reset()
        sgd(order[:2])
    names = list(impls)
    rng = np.random.default_rng(0)
    for _ in range(repeats):
        for i in rng.permutation(len(names)):
            name = names[i]
            sgd, reset = impls[name]
            reset()
            t0 = time.perf_counter()
            sgd(order)
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) / len(order) * 1e6 for name, t in times.items()}


def bench_width(m, dtype, cell, steps, repeats):
    """Median µs/step of each implementation at width ``m``, keyed by implementation name."""
    p, X, Y = make_problem(m, L, dtype, cell)
    eta = 1e-4 / m
    order = np.arange(steps) % N_SAMPLES
    W0 = p.W.copy()
    impls = {"pacsim": (lambda o: pacsim_sgd(p, X, Y, eta, o), lambda: np.copyto(p.W, W0))}
    if torch is not None:
        for name, sgd, grad in (
            ("torch manual", torch_manual_sgd, False),
            ("torch autograd", torch_autograd_sgd, True),
        ):
            W, *rest = to_torch(p, X, Y, requires_grad=grad)
            W_init = W.detach().clone()

            def run(o, sgd=sgd, W=W, rest=rest):
                sgd(cell, W, *rest, eta, o.tolist())

            def reset(W=W, W_init=W_init):
                with torch.no_grad():
                    W.copy_(W_init)

            impls[name] = (run, reset)
    return median_us_per_step(impls, order, repeats)


def print_header(repeats):
    """Versions, thread settings and problem sizes."""
    torch_version = torch.__version__ if torch is not None else "not installed"
    try:
        pacsim_version = version("pacsim")
    except PackageNotFoundError:  # run from a checkout with PYTHONPATH=.
        pacsim_version = "(not installed)"
    print(
        f"pacsim {pacsim_version} | numba {numba.__version__} | numpy {np.__version__} | "
        f"torch {torch_version} | python {sys.version.split()[0]}"
    )
    print(
        "single thread: OMP/OPENBLAS/MKL/NUMBA_NUM_THREADS=1"
        + (", torch.set_num_threads(1)" if torch is not None else "")
    )
    print(
        f"L={L} d_in={D_X + 1} d={D} lam={LAM} eps_x={EPS_X} scored positions 2..{L - 1} | "
        "eta=1e-4/m | batch 1, full BPTT, only W trained"
    )
    print(f"median over {repeats} repeats of µs per SGD step; ratio = torch / pacsim")
    if torch is None:
        print("torch not installed: pip install torch==2.13.0 to compare; pacsim numbers only")


def step_counts(m, seq_len, itemsize):
    """``(flops, bytes, working_set)`` of one SGD step, dense count (see the module)."""
    flops = 2 * m * m * (3 * seq_len - 4)
    return flops, itemsize * m * m * (2 * seq_len - 1), itemsize * m * m


def print_table(cell, dtype, rows, roof=None):
    """One line per width: µs/step of each implementation and the torch/pacsim ratios, and
    pacsim's roofline fraction when ``roof`` is given."""
    print(f"\n{cell} {np.dtype(dtype).name}")
    header = f"{'m':>5} | {'steps':>5} | {'pacsim µs/step':>14}"
    if torch is not None:
        header += (
            f" | {'torch manual µs/step':>20} | {'ratio':>6}"
            f" | {'torch autograd µs/step':>22} | {'ratio':>6}"
        )
    if roof is not None:
        header += " | pacsim roofline (dense count)"
    print(header)
    print("-" * len(header))
    for m, steps, r in rows:
        line = f"{m:>5} | {steps:>5} | {r['pacsim']:>14.1f}"
        if torch is not None:
            for name, width in (("torch manual", 20), ("torch autograd", 22)):
                line += f" | {r[name]:>{width}.1f} | {r[name] / r['pacsim']:>6.1f}"
        if roof is not None:
            fl, nb, ws = step_counts(m, L, np.dtype(dtype).itemsize)
            line += " | " + roof.describe(r["pacsim"] * 1e-6, fl, nb, dtype, ws)
        print(line, flush=True)


def main(argv=None):
    """Parse the options, check agreement, time every cell, dtype and width, print tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dtype", nargs="+", choices=("float64", "float32"), default=["float64", "float32"]
    )
    parser.add_argument("--cell", nargs="+", choices=rnn.CELLS, default=list(rnn.CELLS))
    parser.add_argument("--width", nargs="+", type=int, default=list(WIDTHS))
    parser.add_argument(
        "--learner", nargs="+", choices=("rnn", *FF_LEARNERS), default=["rnn"],
        help="SGD learners to time (the feed-forward ones through ff_step.py)",
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--steps", type=int, default=None, help=f"steps per repeat (default {DEFAULT_STEPS})"
    )
    args = parser.parse_args(argv)
    limit_threads(1)
    roof = Roofline.measure()
    print(roof.header())
    if "rnn" in args.learner:
        bench_rnn(args, roof)
    ff = [a for a in FF_LEARNERS if a in args.learner]
    if ff:
        bench_ff(args, ff, roof)


def bench_rnn(args, roof=None):
    """The RNN tables: every cell, dtype and width of ``args``."""
    print_header(args.repeats)
    check_agreement(args.cell)
    for cell in args.cell:
        for name in args.dtype:
            dtype = np.dtype(name).type
            rows = []
            for m in args.width:
                steps = args.steps or DEFAULT_STEPS.get(m, max(10, int(4e7 / (m * m * L))))
                rows.append((m, steps, bench_width(m, dtype, cell, steps, args.repeats)))
            print_table(cell, dtype, rows, roof)


def bench_ff(args, archs, roof=None):
    """The feed-forward learners ``archs`` at the widths of ``ff_step.py``, per dtype."""
    import ff_step  # beside this file: python puts the script's folder on sys.path

    for name in args.dtype:
        dtype = np.dtype(name).type
        print()
        ff_step.print_header(dtype, args.repeats)
        ff_step.check_agreement()
        rows = []
        for arch in archs:
            for m in ff_step.WIDTHS:
                steps = args.steps or ff_step.DEFAULT_STEPS.get(m, 100)
                rows.append((arch, m, steps, ff_step.bench(arch, m, dtype, steps, args.repeats)))
        ff_step.print_table(rows, dtype, roof)


if __name__ == "__main__":
    main()
