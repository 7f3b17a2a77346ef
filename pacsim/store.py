"""Run folders: content-hash run ids, atomic unit files, provenance, the Parquet tables.

Layout of ``runs/<sweep name>/``::

    sweep.json                  the resolved sweep config of the last invocation
    units/<run id>.json         one finished run (written atomically when it finishes)
    results.parquet             one row per (run, evaluated n): flattened config, metrics, provenance
    sample_complexity.parquet   one row per cell: n_eps, CI, censored
    figures/                    written by ``pacsim plot``

A run id is a hash of everything that determines the run's numbers (its resolved config, seed,
step size, checkpoints) plus :data:`CODE_VERSION`, so re-running a sweep finds finished runs
and skips them, and changing one knob reruns only what it touches.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import subprocess
import tempfile
import warnings
from functools import cache
from pathlib import Path

from .errors import PacsimError

#: Bump when a change alters the numbers a run produces (invalidates stored runs).
CODE_VERSION = "1"


def run_id(key: dict) -> str:
    """Stable 16-hex-digit id of a run from its canonical JSON key."""
    text = json.dumps(key, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{CODE_VERSION}:{text}".encode()).hexdigest()[:16]


class RunDir:
    """A sweep's output folder."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.units = self.path / "units"
        self.figures = self.path / "figures"

    def prepare(self) -> None:
        """Create the folder and check it is writable; raise :class:`PacsimError` if not."""
        try:
            self.units.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.units, prefix=".probe-"):
                pass
        except OSError as e:
            raise PacsimError(f"output folder {str(self.path)!r} is not writable: {e.strerror}") from None

    def load(self, uid: str) -> dict | None:
        """The stored record of run ``uid``; ``None`` if absent. A corrupt file is reported,
        removed and treated as absent (the run is recomputed)."""
        path = self.units / f"{uid}.json"
        try:
            record = json.loads(path.read_text())
            if record["id"] != uid or "result" not in record:
                raise ValueError("id or result missing")
            return record
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as e:
            warnings.warn(f"{path} is corrupt ({e}); recomputing it", stacklevel=2)
            path.unlink(missing_ok=True)
            return None

    def save(self, record: dict) -> None:
        """Write a run record atomically (temporary file in the same folder, then rename)."""
        write_atomic(self.units / f"{record['id']}.json", json.dumps(record).encode())


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_parquet(df, path: Path) -> None:
    """Write a DataFrame to Parquet atomically."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        df.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@cache
def provenance() -> dict:
    """Versions, host and git commit of the code that produces a result."""
    import numba
    import numpy
    import scipy

    from . import __version__

    return {
        "pacsim_version": __version__,
        "git_commit": _git_commit(),
        "python_version": platform.python_version(),
        "numpy_version": numpy.__version__,
        "numba_version": numba.__version__,
        "scipy_version": scipy.__version__,
        "host": socket.gethostname(),
    }


def _git_commit() -> str | None:
    """HEAD of the git checkout pacsim is imported from (with ``+dirty``), if any."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5,
        )
        return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None
