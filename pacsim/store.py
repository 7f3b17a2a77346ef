"""Run folders: content-hash run ids, atomic unit files, provenance, the Parquet tables.

Layout of ``runs/<sweep name>/``::

    sweep.json                  the sweep config of the last invocation, as written
    .lock                       held (flock) by the sweep writing here; says its pid and host
    units/<run id>.json         one finished run (written atomically when it finishes)
    results.parquet             one row per (run, evaluated n): flattened config, metrics, provenance
    sample_complexity.parquet   one row per cell: n_eps, CI, censored
    figures/                    written by ``pacsim plot``

A run id is a hash of everything in the config that determines the run's numbers (its
resolved config, seed, step size, checkpoints), so re-running a sweep finds finished runs and
skips them, and changing one knob reruns only what it touches. Each record also stores the
versions of the code that computed it (``code``: :func:`pacsim.identity.versions`, derived from
a probe of the numerics and of the row schema); a sweep treats a record from other code as
stale (:func:`is_current`).
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import hashlib
import json
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from functools import cache
from pathlib import Path

from .errors import PacsimError

#: Version of the run-key format hashed into run ids (not of the code: records carry that).
KEY_FORMAT = "1"

#: The temporary files of :func:`write_atomic` and :func:`write_parquet`: ``.<name>.<random>``.
_TEMPORARY = re.compile(r"^\.[^.].*\.(json|parquet)\.[^.]+$")

#: What a stored run can have ended as.
STATUSES = ("ok", "diverged", "failed", "timeout")


class RunDirBusy(PacsimError):
    """Another sweep holds the run folder's lock."""

    exit_code = 75  # EX_TEMPFAIL: try again later


def run_id(key: dict) -> str:
    """Stable 16-hex-digit id of a run from its canonical JSON key."""
    text = json.dumps(key, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{KEY_FORMAT}:{text}".encode()).hexdigest()[:16]


def code_versions() -> dict[str, str]:
    """The versions of today's code that a stored run must match to be reused."""
    from .identity import versions

    return dict(versions())


def is_current(record: dict) -> bool:
    """Whether ``record`` was computed by code with today's numerics and row schema (a record
    written before records carried versions is not)."""
    return record.get("code") == code_versions()


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
            fd, probe = tempfile.mkstemp(dir=self.units, prefix=".probe-")
            os.close(fd)
            Path(probe).unlink(missing_ok=True)
        except OSError as e:
            raise PacsimError(
                f"output folder {str(self.path)!r} is not writable: {e.strerror}") from None

    def load(self, uid: str, repair: bool = True) -> dict | None:
        """The stored record of run ``uid``; ``None`` if absent. A corrupt file (truncated,
        not JSON, wrong id, missing fields) is reported, removed (with ``repair``) and treated
        as absent (the run is recomputed)."""
        path = self.units / f"{uid}.json"
        try:
            text = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            record = json.loads(text)
            _check_record(record, uid)
            return record
        except (ValueError, KeyError, TypeError) as e:
            if repair:
                warnings.warn(f"{path} is corrupt ({e}); recomputing it", stacklevel=2)
                path.unlink(missing_ok=True)
            return None

    def save(self, record: dict) -> dict:
        """Write a run record atomically (temporary file in the same folder, then rename).

        Not fsync'ed: a killed process cannot leave a partial file (the rename is atomic), and
        a file garbled by a power cut is detected by :meth:`load` and recomputed.
        Returns the record as :meth:`load` will read it back (JSON round trip).
        """
        text = json.dumps(record)
        write_atomic(self.units / f"{record['id']}.json", text.encode(), durable=False)
        return json.loads(text)

    def unit_ids(self) -> set[str]:
        """Ids of every stored run file (finished or not yet checked)."""
        try:
            return {p.name[:-5] for p in os.scandir(self.units)
                    if p.name.endswith(".json") and not p.name.startswith(".")}
        except FileNotFoundError:
            return set()

    def remove_temporaries(self) -> int:
        """Delete the temporary files of writers that were killed (call with the lock held)."""
        n = 0
        for folder in (self.path, self.units):
            with contextlib.suppress(FileNotFoundError):
                for p in os.scandir(folder):
                    if _TEMPORARY.match(p.name) and p.is_file():
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(p.path)
                            n += 1
        return n

    @contextlib.contextmanager
    def lock(self, wait: bool = False, on_wait=None):
        """Hold the run folder's lock (``flock`` on ``.lock``) for the block.

        The lock file records the holder (pid, host, start time, command) for the messages of
        the others. A second holder raises :class:`RunDirBusy` naming the first, or with
        ``wait`` calls ``on_wait(holder)`` and blocks until the lock is free. The kernel drops
        the lock when its holder exits, however it exits (SIGKILL included), so a lock is never
        stale. On a file system without locks a warning is given and nothing is locked.
        """
        import fcntl

        f = open(self.path / ".lock", "a+")  # noqa: SIM115 - held for the block
        held = False
        try:
            if not _flock(f, fcntl.LOCK_EX, tries=20):
                holder = _holder(self.path / ".lock")
                if not wait:
                    raise RunDirBusy(
                        f"run folder {str(self.path)!r} is in use by another {holder}; wait for "
                        "it to "
                        "finish (or pass --wait to queue behind it), or use another --out"
                    )
                if on_wait is not None:
                    on_wait(holder)
                fcntl.flock(f, fcntl.LOCK_EX)
            held = True
            f.seek(0)
            f.truncate()
            f.write(json.dumps(_holder_info()))
            f.flush()
            yield
        finally:
            if held:
                with contextlib.suppress(OSError):
                    f.truncate(0)
            f.close()

    def holder(self) -> str | None:
        """Who holds the lock now (``None`` if nobody): the sweep running in this folder."""
        import fcntl

        try:
            f = open(self.path / ".lock")  # noqa: SIM115
        except FileNotFoundError:
            return None
        with f:
            if _flock(f, fcntl.LOCK_SH, tries=1):
                fcntl.flock(f, fcntl.LOCK_UN)
                return None
        return _holder(self.path / ".lock")


def _flock(f, mode: int, tries: int) -> bool:
    """Try to take ``mode`` without blocking (a few times: a status probe holds it briefly)."""
    import fcntl

    for i in range(tries):
        try:
            fcntl.flock(f, mode | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if i + 1 < tries:
                time.sleep(0.05)
        except OSError as e:
            if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                warnings.warn(f"cannot lock {f.name} ({e.strerror}): make sure only one sweep "
                              "writes to this folder at a time", stacklevel=3)
                return True
            raise
    return False


def _holder_info() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "since": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "command": " ".join([os.path.basename(sys.argv[0]), *sys.argv[1:]])[:200]}


def _holder(path: Path) -> str:
    """The lock holder, in words, from what it wrote into the lock file."""
    for _ in range(5):  # it may be writing it right now
        try:
            info = json.loads(path.read_text())
            return f"pacsim sweep (pid {info['pid']} on {info['host']}, since {info['since']})"
        except (OSError, ValueError, KeyError, TypeError):
            time.sleep(0.05)
    return "pacsim sweep"


def _check_record(record, uid: str) -> None:
    """Raise ``ValueError`` unless ``record`` is a complete run record for ``uid``."""
    if not isinstance(record, dict) or record.get("id") != uid:
        raise ValueError("id missing or wrong")
    res = record["result"]
    if not isinstance(res, dict) or res.get("status") not in STATUSES:
        raise ValueError("result or status missing")
    if not isinstance(res.get("rows"), list) or not all(isinstance(r, dict) for r in res["rows"]):
        raise ValueError("rows missing")
    if not isinstance(record.get("provenance"), dict):
        raise ValueError("provenance missing")


def write_atomic(path: Path, data: bytes, durable: bool = True) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one
    (``durable``: also ``fsync`` it before the rename, to survive a power cut)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_parquet(df, path: Path) -> None:
    """Write a DataFrame to Parquet atomically. A column that mixes strings with numbers (a
    config key that takes either, such as ``model.eps_x = 0.1`` in one cell and
    ``"1/sqrt(L)"`` in another) is written as strings."""
    df = _uniform_columns(df)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        df.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _uniform_columns(df):
    mixed = []
    for c in df.columns:
        if df[c].dtype == object:
            kinds = {type(v) for v in df[c].dropna()}
            if str in kinds and len(kinds) > 1:
                mixed.append(c)
    if not mixed:
        return df
    df = df.copy()
    for c in mixed:
        df[c] = df[c].map(lambda v: v if v is None or (isinstance(v, float) and v != v)
                          else str(v))
    return df


@cache
def provenance() -> dict:
    """Versions, host and git commit of the code that produces a result (of this process:
    a sweep's workers each call it, so ``host`` is where the run ran)."""
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
