"""The machine's own ceilings, measured in the same run as the benchmark that prints them.

A roofline (Williams, Waterman & Patterson, CACM 2009) bounds the time of an operation by
``max(flops / peak, bytes / bandwidth)``: the floating-point peak of the core or the bandwidth
of the memory level its working set lives in, whichever takes longer. This module measures
those ceilings on the machine at hand, on the threads the benchmark uses:

* **GEMM peak** (GFLOP/s), per dtype: the rate of NumPy's ``a @ b`` on ``n x n`` matrices
  (``2 n^3`` flops; ``n = 1024``), the best a BLAS does on this core;
* **L2 bandwidth** (GB/s): ``np.dot`` of two float64 vectors that together fill half the L2
  cache (read-only streaming, ``2 n`` elements read), after one untimed pass that loads them;
* **last-level cache bandwidth**: the same on half the last-level cache (L3 where there is
  one; its size read from sysfs, 16 MiB when it cannot be read), past the L2;
* **memory bandwidth**: the same on 128 MiB (``mem_mib``) or four times the last-level cache,
  whichever is larger: past the caches.

A ceiling is the best of its repeats (as STREAM reports it: the machine can do at least
that); a timed operation is the median of its repeats.

A timed operation then reports its achieved GFLOP/s and GB/s (from the flops and bytes the
caller counts) and its fraction of the roofline bound: ``max(flops / peak, bytes / bw) / t``,
with ``bw`` the bandwidth of the smallest level the working set fits in (L2, LLC, memory).
100% is the hardware's limit; the ceiling that sets the bound is named. On a shared machine
the load changes between the ceilings' measurement and an operation's, so a fraction is good
to about +-20%.

Threads: :func:`limit_threads` limits BLAS (through ``threadpoolctl`` when it is installed;
the benchmarks also set ``*_NUM_THREADS=1`` before NumPy is imported) and :func:`thread_info`
reports the BLAS library, its kernel (``architecture``, which ``OPENBLAS_CORETYPE`` can force)
and its thread count.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np

try:
    import threadpoolctl
except ImportError:  # optional: the benchmarks then rely on the *_NUM_THREADS variables
    threadpoolctl = None

_LIMITER = None


def limit_threads(n: int = 1):
    """Limit every BLAS/OpenMP pool in this process to ``n`` threads (no-op without
    threadpoolctl). Returns the limiter (keep it alive)."""
    global _LIMITER
    if threadpoolctl is not None:
        _LIMITER = threadpoolctl.threadpool_limits(limits=n)
    return _LIMITER


def thread_info() -> str:
    """One line: each thread pool (library, version, kernel, threads) and OPENBLAS_CORETYPE."""
    core = os.environ.get("OPENBLAS_CORETYPE")
    tail = f" | OPENBLAS_CORETYPE={core}" if core else " | OPENBLAS_CORETYPE unset"
    if threadpoolctl is None:
        env = os.environ.get("OPENBLAS_NUM_THREADS", "unset")
        return f"threadpoolctl not installed: OPENBLAS_NUM_THREADS={env}" + tail
    pools = []
    for p in threadpoolctl.threadpool_info():
        arch = p.get("architecture")
        pools.append(f"{p['internal_api']} {p.get('version')}"
                     + (f" kernel {arch}" if arch else "") + f", {p['num_threads']} thread(s)")
    return "BLAS/OpenMP pools: " + ("; ".join(pools) or "none found") + tail


def cache_bytes(level: int, default: int) -> int:
    """Size of cpu0's data or unified cache at ``level`` (2: its L2, 3: the L3) from sysfs;
    ``default`` when it cannot be read."""
    base = "/sys/devices/system/cpu/cpu0/cache"
    units = {"K": 1024, "M": 1024**2}
    try:
        for entry in sorted(os.listdir(base)):
            d = os.path.join(base, entry)
            with open(os.path.join(d, "level")) as f:
                lev = f.read().strip()
            with open(os.path.join(d, "type")) as f:
                kind = f.read().strip()
            if lev == str(level) and kind in ("Unified", "Data"):
                with open(os.path.join(d, "size")) as f:
                    size = f.read().strip()
                return int(size[:-1]) * units[size[-1]] if size[-1] in units else int(size)
    except (OSError, ValueError):
        pass
    return default


def best_seconds(fn, repeats: int = 7, min_time: float = 0.02) -> float:
    """Shortest over ``repeats`` of the wall time of one call of ``fn``; each repeat runs
    ``fn`` as many times as fill ``min_time`` seconds (counted once, untimed, first)."""
    fn()
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-9)
    inner = max(1, int(min_time / once))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t0) / inner)
    return min(times)


@dataclass
class Roofline:
    """Measured ceilings: ``peak[dtype]`` GFLOP/s, ``bw_l2``, ``bw_llc`` and ``bw_mem`` GB/s;
    ``l2`` and ``llc`` are the cache sizes (bytes) that decide which bandwidth bounds an
    operation."""

    peak: dict = field(default_factory=dict)
    bw_l2: float = float("nan")
    bw_llc: float = float("nan")
    bw_mem: float = float("nan")
    l2: int = 0
    llc: int = 0
    mem_bytes: int = 0
    gemm_n: int = 0

    @classmethod
    def measure(cls, dtypes=("float64", "float32"), gemm_n: int = 1024, mem_mib: int = 128,
                repeats: int = 7) -> Roofline:
        l2 = cache_bytes(2, 1024**2)
        llc = max(cache_bytes(3, 16 * 1024**2), 2 * l2)
        r = cls(l2=l2, llc=llc, mem_bytes=max(mem_mib * 1024**2, 4 * llc), gemm_n=gemm_n)
        rng = np.random.default_rng(0)
        for dt in dtypes:
            a = rng.standard_normal((gemm_n, gemm_n)).astype(dt)
            b = rng.standard_normal((gemm_n, gemm_n)).astype(dt)
            c = np.empty_like(a)
            t = best_seconds(lambda a=a, b=b, c=c: np.matmul(a, b, out=c), repeats)
            r.peak[np.dtype(dt).name] = 2 * gemm_n**3 / t / 1e9
        r.bw_l2 = _dot_bandwidth(r.l2 // 2, repeats)
        r.bw_llc = _dot_bandwidth(r.llc // 2, repeats)
        r.bw_mem = _dot_bandwidth(r.mem_bytes, max(3, repeats // 2))
        return r

    def header(self) -> str:
        peaks = ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in self.peak.items())
        return (
            f"roofline (best of repeats, this run): GEMM peak ({self.gemm_n}^3 matmul) {peaks}"
            f" | read bandwidth (np.dot) {self.bw_l2:.1f} GB/s on {self.l2 // 2 // 1024} KiB "
            f"(L2 {self.l2 // 1024} KiB), {self.bw_llc:.1f} GB/s on {self.llc // 2 // 1024**2} MiB "
            f"(LLC {self.llc // 1024**2} MiB), "
            f"{self.bw_mem:.1f} GB/s on {self.mem_bytes // 1024**2} MiB\n{thread_info()}"
        )

    def bound(self, flops: float, nbytes: float, dtype, working_set: float):
        """``(seconds, name)`` of the roofline bound of an operation."""
        if working_set <= self.l2:
            bw, level = self.bw_l2, "L2"
        elif working_set <= self.llc:
            bw, level = self.bw_llc, "LLC"
        else:
            bw, level = self.bw_mem, "mem"
        t_f = flops / (self.peak[np.dtype(dtype).name] * 1e9)
        t_b = nbytes / (bw * 1e9)
        return (t_f, "GEMM peak") if t_f >= t_b else (t_b, f"{level} bw")

    def fraction(self, seconds: float, flops: float, nbytes: float, dtype,
                 working_set: float) -> tuple[float, str]:
        """Fraction of the roofline bound achieved by an operation that took ``seconds``."""
        t, name = self.bound(flops, nbytes, dtype, working_set)
        return t / seconds, name

    def describe(self, seconds: float, flops: float, nbytes: float, dtype,
                 working_set: float) -> str:
        """``"61.2 GFLOP/s 4.1 GB/s = 68% of GEMM peak"``: achieved rates and the fraction."""
        frac, name = self.fraction(seconds, flops, nbytes, dtype, working_set)
        return (f"{flops / seconds / 1e9:6.1f} GFLOP/s {nbytes / seconds / 1e9:6.1f} GB/s "
                f"= {100 * frac:3.0f}% of {name}")


def _dot_bandwidth(total_bytes: int, repeats: int) -> float:
    """GB/s of ``np.dot(x, y)`` on two float64 vectors of ``total_bytes`` together."""
    n = max(1024, total_bytes // 16)
    x = np.ones(n)
    y = np.ones(n)
    t = best_seconds(lambda: np.dot(x, y), repeats)
    return 16 * n / t / 1e9


if __name__ == "__main__":
    limit_threads(1)
    print(Roofline.measure().header())
