"""Wall time of one momentum-preset run of the AZLL reproduction, batched gradient against the
per-sample kernel.

What is measured: :func:`pacsim.train.run` of the three-layer cell of
``configs/paper/azll.toml`` (``azll-exp`` sincos target, ``mlp3``, m = 500, N = 1000, momentum
0.9, batch 50, lr 0.003, one seed) for ``--epochs`` epochs (the paper: 800), twice per pair:
"after" (``ff.loss_and_grad`` as the learners call it: BLAS products over the batch) and
"before" (every batch through the jitted per-sample kernel: ``ff.BATCH_MIN`` set above the batch
size). The pairs run back to back (``--pairs``), alternating which goes first. Each run also
reports the time inside the gradient calls (median ms per call, and their total), so the rest of
the run (the momentum loop of ``pacsim/train.py``, the evaluation) shows. Both runs must end at
the same test MSE up to 1e-3 relative (the paths round differently and training may amplify
it; they agreed to the printed digits at 20, 100 and 800 epochs). One thread; the machine's
ceilings are printed first (``benchmarks/_roofline.py``), although a training run is not one
operation with a roofline.

Run it by hand::

    python benchmarks/momentum_run.py [--epochs 800] [--pairs 1]
"""

# ruff: noqa: E402  (the thread counts must be set before numpy or numba is imported)
from _threads import set_threads

set_threads(1)

import argparse
import statistics
import time

from _roofline import Roofline, limit_threads

from pacsim import train
from pacsim.config import RunSpec
from pacsim.models import ff

SPEC = {
    "concept": {"family": "azll-exp", "target": "sincos"},
    "model": {"kind": "mlp3", "m": 500},
    "train": {"protocol": "finite", "optimizer": "momentum", "batch": 50, "momentum": 0.9,
              "lr_units": "raw", "n_val": 1000, "n_test": 2000},
}


def one_run(epochs, per_sample):
    """``(wall s, gradient ms per call (median), gradient total s, test mse)``."""
    spec = RunSpec.model_validate({**SPEC, "train": {**SPEC["train"], "epochs": epochs}})
    batch_min, orig = ff.BATCH_MIN, ff.loss_and_grad
    times = []

    def timed(*args, **kw):
        t = time.perf_counter()
        out = orig(*args, **kw)
        times.append(time.perf_counter() - t)
        return out

    ff.BATCH_MIN = 10**9 if per_sample else batch_min
    ff.loss_and_grad = timed
    try:
        t0 = time.perf_counter()
        res = train.run(spec, seed=0, lr=0.003, checkpoints=[1000])
        wall = time.perf_counter() - t0
    finally:
        ff.BATCH_MIN, ff.loss_and_grad = batch_min, orig
    return wall, 1e3 * statistics.median(times), sum(times), res.rows[-1]["test_mse"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=800)
    parser.add_argument("--pairs", type=int, default=1)
    args = parser.parse_args(argv)
    limit_threads(1)
    print(Roofline.measure(dtypes=("float64",)).header())
    one_run(1, False)  # compile / load the kernels
    one_run(1, True)
    print(f"mlp3 m=500 N=1000 momentum batch 50, {args.epochs} epochs, one thread")
    for k in range(args.pairs):
        order = (False, True) if k % 2 == 0 else (True, False)
        results = {}
        for per_sample in order:
            results[per_sample] = r = one_run(args.epochs, per_sample)
            name = "before (per-sample)" if per_sample else "after (batched)"
            print(f"pair {k}: {name:>19}: wall {r[0]:7.1f} s | gradient {r[1]:.2f} ms per call, "
                  f"{r[2]:.1f} s in all | test mse {r[3]:.6g}", flush=True)
        (a, b) = results[False], results[True]
        if abs(a[3] - b[3]) > 1e-3 * abs(b[3]):  # rounding differs by path; SGD may amplify it
            raise AssertionError(f"the two paths end at different test MSEs: {a[3]} vs {b[3]}")
        print(f"pair {k}: wall ratio before/after {b[0] / a[0]:.2f}, gradient {b[2] / a[2]:.2f}")


if __name__ == "__main__":
    main()
