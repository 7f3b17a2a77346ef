"""Which code computed a stored run: versions of the numerics and of the row schema.

A stored run (``units/<run id>.json``) is reused by a later sweep only if the code that would
compute it today gives the same numbers and the same columns. Both versions are *derived*, not
written by hand, so they cannot be forgotten:

* :func:`probe` runs every learner on a small fixed problem and every concept family on a
  small fixed sample, and returns their numbers and their row columns;
* ``pacsim/_reference.json`` stores one such probe; ``tests/test_identity.py`` fails when
  today's probe differs from it (numbers beyond rounding, or any column), and says how to
  regenerate it (``python -m pacsim.identity --write``);
* :data:`VERSIONS` are digests of that file's two sections, so regenerating the reference
  changes the version, and every stored run of the older code is then detected as stale by
  the sweep (:mod:`pacsim.sweep`), which recomputes it (or keeps it with ``--keep-stale``).

Rounding-level changes (a reordered sum) are below the probe's tolerance and do not change the
version: such code reproduces stored runs up to floating-point rounding.

The versions follow the code paths the probe runs: every learner kind, every concept family at
its defaults, both protocols, early stopping, the step-size warm-up, both loss conventions,
float32, the f0 options and eps_x rules, the momentum preset with weight decay. A change
confined to a path the probe does not take (another setting of a concept, say) does not move
them: add a probe entry for a path that matters.
"""

from __future__ import annotations

import hashlib
import json
import math
from functools import cache
from pathlib import Path

#: The stored probe the versions are derived from.
REFERENCE = Path(__file__).with_name("_reference.json")

#: Probe numbers agree with the reference when within this relative tolerance (or ATOL
#: absolutely). A probe number is the end of a short chain of float64 operations (tens of SGD
#: steps, a Cholesky solve, a few thousand samples' statistics): reordering a sum changes it
#: by ~1e-15 relative per operation, amplified at most ~1e3 by these short runs, so 1e-7
#: separates rounding (any CPU, any BLAS) from a change of the computation.
RTOL = 1e-7
ATOL = 1e-12
#: The same for a float32 probe (unit roundoff 6e-8, so rounding alone moves its numbers by
#: ~1e-7 relative after a few steps): another CPU family's vector width changes the float32
#: kernels' summation order, and one float32 probe number moved by 1.4e-7 between an Intel
#: and an AMD core. 1e-4 (6e-8 amplified 1e3) still catches any change of the computation.
RTOL_FLOAT32 = 1e-4

#: Learners of the probe, with the concept they learn: sequence learners on AZL, vector
#: learners on the AZL-ResNet target (small sizes; seconds in all).
_SEQ = {"family": "azl", "L": 5, "d_x": 4, "links": ["sin"]}
_VEC = {"family": "resnet", "d_in": 6, "d": 2}


def _probe_runs() -> list[tuple[str, dict]]:
    rnn = {"kind": "rnn", "m": 16}
    online = {"protocol": "online", "lr": 0.5, "n_test": 64, "n_val": 32}
    finite = {"protocol": "finite", "lr": 0.5, "n_test": 64, "n_val": 32, "epochs": 3}
    runs = [
        ("rnn-online", {"concept": _SEQ, "model": rnn, "train": online}),
        ("rnn-finite", {"concept": _SEQ, "model": rnn, "train": finite}),
        ("rnn-finite-early", {"concept": _SEQ, "model": rnn,
                              "train": {**finite, "patience": 1, "lr_warmup": 40,
                                        "loss": "mse"}}),
        ("rnn-float32", {"concept": _SEQ, "model": {**rnn, "dtype": "float32"},
                         "train": online}),
        ("rnn-f0", {"concept": _SEQ, "model": {**rnn, "f0": "symmetric",
                                               "eps_x": "1/sqrt(L)"}, "train": online}),
        ("rnn-tanh", {"concept": _SEQ, "model": {**rnn, "cell": "tanh"}, "train": online}),
        ("rnn-minimal", {"concept": _SEQ, "model": {**rnn, "cell": "minimal"},
                         "train": online}),
        ("rnn-pg21", {"concept": {"family": "pg21", "L": 5, "d_x": 4},
                      "model": {**rnn, "mode": "pg21"}, "train": online}),
        ("rntk", {"concept": _SEQ, "model": {"kind": "rntk"}, "train": online}),
        ("entk-rnn", {"concept": _SEQ, "model": {"kind": "entk", "m": 16}, "train": online}),
        ("resnet", {"concept": _VEC, "model": {"kind": "resnet", "m": 16}, "train": online}),
        ("mlp2", {"concept": _VEC, "model": {"kind": "mlp2", "m": 16}, "train": online}),
        ("mlp3", {"concept": _VEC, "model": {"kind": "mlp3", "m": 16}, "train": online}),
        ("mlp2-momentum", {"concept": _VEC, "model": {"kind": "mlp2", "m": 16},
                           "train": {**finite, "optimizer": "momentum", "batch": 8,
                                     "lr_units": "raw", "lr": 0.01, "weight_decay": 1e-3}}),
        ("resnet-momentum-mse", {"concept": _VEC, "model": {"kind": "resnet", "m": 16},
                                 "train": {**finite, "optimizer": "momentum", "batch": 8,
                                           "lr_units": "raw", "lr": 0.05, "loss": "mse",
                                           "weight_decay": 1e-4}}),
    ]
    for kind in ("ntk", "nngp", "random_features", "poly", "gaussian", "linear"):
        runs.append((kind, {"concept": _VEC, "model": {"kind": kind}, "train": online}))
    return runs


def _numbers(x) -> list[float]:
    """The finite floats of a scalar or an array (a probe's numbers), in order."""
    import numpy as np

    a = np.asarray(x, dtype=np.float64).ravel()
    return [float(v) for v in a]


def probe() -> dict:
    """Today's probe: ``{"numerics": {name: [numbers]}, "schema": {name: [columns]}}``."""
    import numpy as np

    from . import concepts, train
    from .config import RunSpec

    numerics: dict[str, list[float]] = {}
    schema: dict[str, list[str]] = {}
    for name, raw in _probe_runs():
        spec = RunSpec.model_validate(raw)
        checkpoints = (8, 16, 32) if spec.train.protocol == "online" else (32,)
        res = train.run(spec, seed=7, lr=spec.train.lrs[0], checkpoints=checkpoints,
                        validate=True)
        nums = [res.eta, res.test_label_var]
        for row in res.rows:
            nums += [row[k] for k in ("test_mse", "val_nmse", "train_loss")]
        nums += [v for v in res.info.values() if isinstance(v, int | float)
                 and not isinstance(v, bool)]
        numerics[name] = _numbers(nums)
        schema[name] = sorted({k for r in res.rows for k in r} | set(res.info)
                              | {"status", "eta", "test_label_var", "diverged_step"})
    rng_seed = 11
    for family, module in concepts.FAMILIES.items():
        cfg = module.Config()
        concept = concepts.make(cfg, np.random.default_rng(rng_seed))
        X, Y = concept.sample(64, np.random.default_rng(rng_seed + 1))
        Ys = concepts.scored(concept, Y)
        numerics[f"concept-{family}"] = _numbers(
            [np.mean(X), np.std(X), np.mean(Ys), np.std(Ys), *np.asarray(Ys).ravel()[:8]])
        schema[f"concept-{family}"] = sorted(f"concept_info.{k}" for k in concept.info())
    return {"numerics": numerics, "schema": schema}


def _digest(section) -> str:
    text = json.dumps(section, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@cache
def versions() -> dict[str, str]:
    """``{"numerics": ..., "schema": ...}``: digests of the stored reference probe."""
    try:
        ref = json.loads(REFERENCE.read_text())
    except (OSError, ValueError) as e:  # a broken install: no run can be trusted as reusable
        raise RuntimeError(f"{REFERENCE} is missing or unreadable ({e}); reinstall pacsim") from e
    return {"numerics": _digest(ref["numerics"]), "schema": _digest(ref["schema"])}


def differences(today: dict, reference: dict) -> list[str]:
    """What differs between two probes, one line each (empty: the same code, up to rounding)."""
    out = []
    for section in ("numerics", "schema"):
        a, b = today[section], reference[section]
        for name in sorted(set(a) | set(b)):
            if name not in a or name not in b:
                out.append(f"{section}.{name}: {'added' if name in a else 'removed'}")
            elif section == "schema":
                if a[name] != b[name]:
                    new, old = set(a[name]), set(b[name])
                    out.append(f"schema.{name}: columns added {sorted(new - old)}, "
                               f"removed {sorted(old - new)}")
            elif len(a[name]) != len(b[name]) or not all(
                    _close(x, y, rtol(name)) for x, y in zip(a[name], b[name], strict=True)):
                bad = next((i for i, (x, y) in enumerate(zip(a[name], b[name], strict=False))
                            if not _close(x, y, rtol(name))), min(len(a[name]), len(b[name])))
                out.append(f"numerics.{name}: entry {bad} differs "
                           f"({_at(a[name], bad)} today, {_at(b[name], bad)} stored)")
    return out


def _at(values: list, i: int):
    return values[i] if i < len(values) else "absent"


def rtol(name: str) -> float:
    """The relative tolerance of probe ``name``: :data:`RTOL_FLOAT32` for a float32 run."""
    raw = dict(_probe_runs()).get(name, {})
    return RTOL_FLOAT32 if raw.get("model", {}).get("dtype") == "float32" else RTOL


def _close(x: float, y: float, rtol: float = RTOL) -> bool:
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    if math.isinf(x) or math.isinf(y):
        return x == y
    return abs(x - y) <= ATOL + rtol * max(abs(x), abs(y))


def write_reference(path: Path = REFERENCE) -> dict:
    """Compute today's probe and store it as the reference (changes :func:`versions`)."""
    ref = probe()
    path.write_text(json.dumps(ref, indent=1, sort_keys=True) + "\n")
    versions.cache_clear()
    return ref


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(
        prog="python -m pacsim.identity",
        description="Compare today's numerics/schema probe with pacsim/_reference.json, or "
                    "regenerate it (which changes the versions stored runs are checked against).")
    ap.add_argument("--write", action="store_true", help="store today's probe as the reference")
    args = ap.parse_args(argv)
    if args.write:
        write_reference()
        print(f"wrote {REFERENCE}; versions now {versions()}")
        return 0
    diff = differences(probe(), json.loads(REFERENCE.read_text()))
    print("\n".join(diff) if diff else f"same as the reference: {versions()}")
    return 1 if diff else 0


if __name__ == "__main__":
    raise SystemExit(main())
