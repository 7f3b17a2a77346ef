"""``pacsim theory RUN_DIR``: predicted learning curves for every kernel cell of a run folder.

For every cell of a closed-form learner and each of the first ``seeds`` seeds of the sweep, the
concept (``concept`` stream) and the learner (``init`` stream: the same network for ``entk`` and
``random_features``) are rebuilt exactly as the run built them; ``2 M`` fresh samples are drawn
from a stream no run uses; the learner's kernel on them gives the spectrum and the target
coefficients (:func:`pacsim.theory.spectrum.estimate`), and the learning curve is predicted at
every evaluated ``n`` of the cell and every ridge of the learner's grid. The row of the ridge the
run itself chose at that ``n`` and seed (``fit.ridge``) is marked ``chosen``.

For every cell of an SGD learner whose network has a linearised oracle (``mlp2``, ``mlp3``,
``resnet``, the ReLU ``rnn`` with full BPTT; vanilla SGD), :mod:`pacsim.theory.oracle_run`
predicts the test error of the network linearised at the run's own initialisation, trained
as the run was (online: online SGD in expectation; finite: GD for the run's steps).

``theory.parquet``: one row per (cell, seed, n, ridge) with ``pred`` (the prediction), ``lo``
and ``hi`` (in-sample and held-out estimates, which bracket it), ``M``, ``spread`` and
``stable`` (the estimate's check, over the ridges the run chose), ``chosen``, ``source =
"krr"``; one row per (cell, seed, n) of the oracle with ``source = "oracle"``, ``ridge`` NaN,
``chosen`` true and ``oracle.*`` columns (``protocol``, ``lr``, ``eta``, ``steps``,
``max_rate``, ``trace_rate``, ``n_test``); and a row per cell that has no prediction with
``note`` saying why (joint kernels ``blocks = "full"``; the shared RNN readout; SGD learners
without an oracle; an oracle over its ``--oracle-max``).
Cells whose learner chooses a kernel parameter on validation (``gaussian``) are predicted at
the median of the chosen bandwidth factors (``fit.bandwidth_factor``) times the median
distance of the fresh samples.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from .. import concepts, learners
from ..concepts import scored
from ..errors import PacsimError
from ..seeding import streams
from .oracle_run import ORACLE_MAX, NoOracle, oracle_rows
from .spectrum import estimate
from .summary import THEORY_FILE, read_theory, theory_curves, theory_n_eps

__all__ = ["THEORY_FILE", "ORACLE_MAX", "predict_run", "write_theory", "read_theory",
           "theory_curves", "theory_n_eps", "kernel_of"]

#: Spawn key of the fresh samples' stream (no run draws from it).
STREAM = 0x7E0


class NoTheory(Exception):
    """This learner's fit has no prediction (the message says why)."""


def kernel_of(learner, cell_rows: pd.DataFrame | None = None) -> Callable:
    """``kernel(A, B=None)`` of a fitted-in-closed-form learner on encoded inputs, in a layout
    of :func:`pacsim.theory.spectrum.from_kernel`; :class:`NoTheory` if there is none."""
    kind = learner.cfg.kind
    cfg = learner.cfg
    if getattr(learner, "sgd", True):
        raise NoTheory("SGD learner: see the linearised oracle (pacsim.theory.oracle)")
    if getattr(cfg, "blocks", "diag") == "full" and getattr(learner, "net", "rnn") == "rnn":
        raise NoTheory('blocks = "full": a joint kernel over (sample, position) has no '
                       "per-output spectrum")
    if kind == "gaussian":
        from ..learners.gaussian import median_distance

        factor = 1.0
        if cell_rows is not None and "fit.bandwidth_factor" in cell_rows:
            f = cell_rows["fit.bandwidth_factor"].dropna()
            factor = float(f.median()) if len(f) else 1.0

        def k(A, B=None):
            h = factor * median_distance(A if B is None else B)
            return learner.kernel(A, B, bandwidth=h)

        return k
    if kind == "random_features":
        if learner.net == "rnn" and cfg.readout == "shared":
            raise NoTheory('readout = "shared": one readout over (sample, position) rows has '
                           "no per-output spectrum")

        def k(A, B=None):
            FA = learner.features(A)
            FB = FA if B is None else learner.features(B)
            if learner.net != "rnn":
                return FA[:, 0] @ FB[:, 0].T
            K = np.einsum("isp,jsp->ijs", FA, FB)
            return np.repeat(K, learner.d, axis=2)

        return k
    if kind == "linear":
        from ..kernels import classical

        def k(A, B=None):
            FA = classical.monomial_features(A, cfg.degree, cfg.multilinear)
            FB = FA if B is None else classical.monomial_features(B, cfg.degree,
                                                                  cfg.multilinear)
            return FA @ FB.T

        return k
    if hasattr(learner, "kernel"):
        return lambda A, B=None: learner.kernel(A, B)
    raise NoTheory(f"no kernel for model.kind = {kind!r}")


def _spec_cells(run_dir: Path):
    import json

    from ..config import parse_sweep

    try:
        cfg = parse_sweep(json.loads((run_dir / "sweep.json").read_text()))
    except (OSError, ValueError) as e:
        raise PacsimError(f"{str(run_dir)!r}: cannot read sweep.json ({e}); the theory "
                          "rebuilds each cell from it") from None
    return cfg, cfg.cells()


def predict_run(run_dir: str | Path, *, seeds: int = 2, M0: int = 256, M_max: int = 4096,
                tol: float = 0.1, oracle_max: int = ORACLE_MAX,
                log: Callable[[str], None] | None = None) -> pd.DataFrame:
    """The rows of ``theory.parquet`` for a run folder (module docstring)."""
    run_dir = Path(run_dir)
    if seeds < 1:
        raise PacsimError(f"seeds must be >= 1, got {seeds}")
    if oracle_max < 1:
        raise PacsimError(f"oracle_max must be >= 1, got {oracle_max}")
    path = run_dir / "results.parquet"
    if not path.is_file():
        raise PacsimError(f"no results.parquet in {str(run_dir)!r}; run `pacsim sweep CONFIG` "
                          "first")
    results = pd.read_parquet(path)
    cfg, cells = _spec_cells(run_dir)
    rows = []
    for cell, (_, spec) in enumerate(cells):
        cr = results[results["cell"] == cell]
        if cr.empty:
            continue
        Ns = np.sort(cr["n"].unique()).astype(float)
        base = {"cell": cell, "model.kind": spec.model.kind}
        for seed in list(cfg.seeds)[:seeds]:
            t0 = time.perf_counter()
            s = streams(seed)
            concept = concepts.make(spec.concept, s.concept)
            try:
                learner = learners.make(spec.model, concept, s.init)
                if learner.sgd:
                    rows += oracle_rows(spec, concept, learner, seed, cr[cr["seed"] == seed],
                                        base, oracle_max=oracle_max, tol=tol)
                    if log:
                        log(f"cell {cell} ({spec.model.kind}) seed {seed}: linearised oracle, "
                            f"{time.perf_counter() - t0:.1f} s")
                    continue
                kernel = kernel_of(learner, cr)
            except (NoTheory, NoOracle) as e:
                rows.append({**base, "seed": seed, "note": str(e),
                             "source": "oracle" if learner.sgd else "krr"})
                break  # the same for every seed

            def draw(M, concept=concept, learner=learner, seed=seed):
                rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(STREAM,)))
                X, Y = concept.sample(M, rng)
                return learner.encode(X), scored(concept, Y).reshape(M, -1)

            chosen = _chosen(cr[cr["seed"] == seed])
            est = estimate(draw, kernel, Ns, learner.ridges, M0=M0, M_max=M_max, tol=tol,
                           check=sorted(set(chosen.values())) or None)
            for r, ridge in enumerate(est.ridges):
                for i, n in enumerate(Ns):
                    rows.append({**base, "seed": seed, "n": int(n), "ridge": ridge,
                                 "pred": est.pred[r, i], "lo": est.lo[r, i],
                                 "hi": est.hi[r, i], "M": est.M, "spread": est.spread,
                                 "stable": est.stable,
                                 "chosen": bool(np.isclose(chosen.get(int(n), np.nan), ridge,
                                                           rtol=1e-12, atol=0.0)),
                                 "note": "", "source": "krr"})
            if log:
                log(f"cell {cell} ({spec.model.kind}) seed {seed}: M = {est.M}, spread "
                    f"{est.spread:.3f}{'' if est.stable else ' (not stable)'}, "
                    f"{time.perf_counter() - t0:.1f} s")
    df = pd.DataFrame(rows)
    if df.empty:
        raise PacsimError(f"{str(run_dir)!r} has no cells to predict")
    # the config columns of each cell, as in results.parquet, for the plots and the report
    keys = [c for c in results.columns if c.startswith(("concept.", "model.")) and c not in df]
    first = results.groupby("cell")[keys].first().reset_index()
    return df.merge(first, on="cell", how="left")


def _chosen(rows: pd.DataFrame) -> dict[int, float]:
    """The ridge the run chose at each ``n`` (``fit.ridge``; the learner's ``learner_info``
    for tables that predate it)."""
    for col in ("fit.ridge", "learner_info.ridge"):
        if col in rows:
            ok = rows[["n", col]].dropna()
            return {int(n): float(r) for n, r in zip(ok["n"], ok[col], strict=True)}
    return {}


def write_theory(run_dir: str | Path, **kw) -> Path:
    """Write ``RUN_DIR/theory.parquet`` (:func:`predict_run`); return its path."""
    from ..store import write_atomic

    df = predict_run(run_dir, **kw)
    path = Path(run_dir) / THEORY_FILE
    import io

    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    write_atomic(path, buf.getvalue())
    return path


