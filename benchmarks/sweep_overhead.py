"""Sweep machinery benchmark: parallel efficiency and per-run overhead (run by hand).

    python benchmarks/sweep_overhead.py            # both measurements, 3 repeats, medians
    python benchmarks/sweep_overhead.py --quick    # one repeat, smaller sweeps

1. **Throughput** on a CPU-bound sweep (online SGD, m = 128, L = 8, N = 8192: about 1 s per
   run):
   runs per second with 1 and with 2 local workers, timed from the first run's start to the
   last run's end (read from the unit files), so that the one-off start (worker processes,
   loading the compiled kernels) is not counted. Target: 2 workers >= 1.8x 1 worker.
2. **Per-run overhead** of the sweep machinery (hashing, dispatch, the pipe, the atomic unit
   file, the tables), with a trivially small run (m = 2, L = 3, 1 sample, 16 test samples), for
   the local executor with 1 worker: the slope of the sweep's wall time against its number of
   runs (two sweep sizes, so the start-up cancels), minus the runs' own time measured inside
   the worker. Target: under 5 ms.

Each repeat starts from an empty run folder. The machine should be otherwise idle: the
numbers are medians over repeats, and the load average is printed next to them. The machine's
ceilings (``benchmarks/_roofline.py``) are printed first, for comparison with the other
benchmarks' runs; the sweep machinery itself is bound by neither (process start-up, pipes,
files).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from _roofline import Roofline, limit_threads

from pacsim.config import parse_sweep
from pacsim.sweep import run_sweep


def cpu_bound(n_seeds: int) -> dict:
    return {
        "name": "cpu",
        "seeds": list(range(n_seeds)),
        "base": {"concept": {"L": 8, "d_x": 8}, "model": {"m": 128},
                 "train": {"protocol": "online", "lr": 0.5, "n_test": 200}},
        "target": {"eps": 1e-6, "n_min": 8192, "n_max": 8192, "n_boot": 100},
    }


def trivial(n_seeds: int) -> dict:
    return {
        "name": "trivial",
        "seeds": list(range(n_seeds)),
        "base": {"concept": {"L": 3, "d_x": 3}, "model": {"m": 2},
                 "train": {"protocol": "online", "lr": 0.5, "n_test": 16}},
        "target": {"eps": 1e-6, "n_min": 1, "n_max": 1, "n_boot": 100},
    }


def sweep_once(raw: dict, workers: int) -> dict:
    """Run ``raw`` in a fresh folder; wall time, busy span and the runs' own time."""
    out = Path(tempfile.mkdtemp(prefix="pacsim-bench-"))
    try:
        t0 = time.perf_counter()
        o = run_sweep(parse_sweep(raw), out=out, workers=workers, progress=False)
        wall = time.perf_counter() - t0
        starts, ends, own = [], [], []
        for p in (out / raw["name"] / "units").glob("*.json"):
            rec = json.loads(p.read_text())
            s = datetime.datetime.fromisoformat(rec["provenance"]["started_at"]).timestamp()
            starts.append(s)
            ends.append(s + rec["result"]["wall_s"])
            own.append(rec["result"]["wall_s"])
        assert o.n_failed == 0 and o.n_trained == o.n_runs == len(own)
        return {"runs": o.n_runs, "wall": wall, "span": max(ends) - min(starts),
                "own": sum(own)}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def throughput(repeats: int, n_runs: int, workers_list=(1, 2)) -> None:
    print(f"\n1. throughput, CPU-bound sweep ({n_runs} runs of online SGD, m=128, L=8, N=8192)")
    rates = {}
    for workers in workers_list:
        got = [sweep_once(cpu_bound(n_runs), workers) for _ in range(repeats)]
        rate = statistics.median(g["runs"] / g["span"] for g in got)
        per_run = statistics.median(g["own"] / g["runs"] for g in got)
        wall = statistics.median(g["wall"] for g in got)
        rates[workers] = rate
        print(f"   {workers} worker(s): {rate:6.2f} runs/s (one run {per_run:.3f} s; whole "
              f"sweep with start-up {wall:.1f} s)  load {os.getloadavg()[0]:.1f}")
    for workers in workers_list[1:]:
        target = " (target >= 1.8x)" if workers == 2 else ""
        print(f"   speed-up {workers} vs {workers_list[0]} workers: "
              f"{rates[workers] / rates[workers_list[0]]:.2f}x{target}")


def overhead(repeats: int, small: int, large: int) -> None:
    print(f"\n2. per-run overhead, trivially small runs ({small} and {large} runs, 1 worker)")
    slopes, owns = [], []
    for _ in range(repeats):
        a = sweep_once(trivial(small), 1)
        b = sweep_once(trivial(large), 1)
        slopes.append((b["wall"] - a["wall"]) / (large - small))
        owns.append((b["own"] - a["own"]) / (large - small))
        print(f"   sweep of {small}: {a['wall']:.2f} s, of {large}: {b['wall']:.2f} s  "
              f"load {os.getloadavg()[0]:.1f}")
    slope, own = statistics.median(slopes), statistics.median(owns)
    print(f"   wall time per extra run {slope * 1e3:.2f} ms, of which the run itself "
          f"{own * 1e3:.2f} ms: overhead {(slope - own) * 1e3:.2f} ms per run (target < 5 ms)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one repeat, smaller sweeps")
    ap.add_argument("--only", choices=["throughput", "overhead"], default=None)
    ap.add_argument("--workers", default="1,2", help="worker counts to compare [1,2]")
    ap.add_argument("--runs", type=int, default=None, help="runs in the CPU-bound sweep")
    args = ap.parse_args()
    repeats = 1 if args.quick else 3
    print(f"pacsim sweep benchmark: {os.cpu_count()} CPUs, load {os.getloadavg()}")
    limit_threads(1)  # the workers' policy (one BLAS thread each); this process only dispatches
    print(Roofline.measure(dtypes=("float64",)).header())
    if args.only in (None, "throughput"):
        workers = tuple(int(w) for w in args.workers.split(","))
        throughput(repeats, args.runs or (8 if args.quick else 16), workers)
    if args.only in (None, "overhead"):
        overhead(repeats, 100 if args.quick else 200, 400 if args.quick else 1000)


if __name__ == "__main__":
    main()
