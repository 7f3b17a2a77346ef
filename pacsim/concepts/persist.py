"""Save and load a sampled concept, and fingerprint it, so a result can be traced to its target.

A concept is a frozen dataclass of NumPy arrays and scalars, plus the family ``Config`` it was
made from (``cfg``). :func:`save` writes one ``.npz``: every array field under its own name and
a JSON string ``__meta__`` with the family, the scalar fields and the config as JSON.
:func:`load` rebuilds the same object (same class, same arrays, same config); loading never
unpickles anything. A concept is also fully determined by its config and the run's seed:
:func:`pacsim.concepts.regenerate` draws it again from the ``concept`` stream.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np

#: Bump when the file layout changes.
FORMAT = 1


def _split(concept) -> tuple[dict[str, np.ndarray], dict]:
    arrays: dict[str, np.ndarray] = {}
    meta = {"format": FORMAT, "family": concept.family, "config": None, "fields": {}}
    for f in dataclasses.fields(concept):
        v = getattr(concept, f.name)
        if f.name == "cfg":
            meta["config"] = None if v is None else v.model_dump_json()
        elif isinstance(v, np.ndarray):
            arrays[f.name] = v
        else:
            meta["fields"][f.name] = list(v) if isinstance(v, tuple) else v
    return arrays, meta


def save(concept, path: str | Path) -> Path:
    """Write ``concept`` to ``path`` (``.npz`` is appended if missing); returns the path."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    arrays, meta = _split(concept)
    if "__meta__" in arrays:
        raise ValueError("a concept field may not be called __meta__")
    np.savez(path, __meta__=np.array(json.dumps(meta, sort_keys=True)), **arrays)
    return path


def load(path: str | Path):
    """The concept saved at ``path`` by :func:`save`."""
    from . import FAMILIES

    with np.load(Path(path), allow_pickle=False) as z:
        meta = json.loads(str(z["__meta__"]))
        arrays = {k: z[k] for k in z.files if k != "__meta__"}
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: concept file format {meta.get('format')!r}, expected {FORMAT}")
    mod = FAMILIES[meta["family"]]
    cfg = None if meta["config"] is None else mod.Config.model_validate_json(meta["config"])
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in meta["fields"].items()}
    return mod.CONCEPT(**arrays, **fields, cfg=cfg)


def fingerprint(concept) -> str:
    """16 hex digits of a SHA-256 over the concept's arrays and scalar fields (not its config):
    equal fingerprints mean the same target."""
    arrays, meta = _split(concept)
    h = hashlib.sha256(json.dumps([meta["family"], meta["fields"]], sort_keys=True).encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]
