"""One run per run directory: an exclusive ``filelock`` lock held for the whole run.

A second ``qualbench`` run into a directory another run is using is refused with one line naming the holder
(host and pid, read from a holder file written beside the lock). The lock is an OS lock (``flock``): the
kernel drops it when the holding process ends, however it ends, so a run killed with ``kill -9`` never
blocks a later resume. The holder file such a run leaves behind is only used to word the refusal; it is
never read to decide whether the directory is free.

Nested use in one process (the app locks the run dir, then ``run_eval`` locks it again) is counted, not
re-locked.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout

from qualbench.errors import QualBenchError

log = logging.getLogger(__name__)

LOCK_NAME = ".qualbench.lock"
HOLDER_NAME = ".qualbench.lock.holder"

_HELD: dict[str, list] = {}  # resolved run dir -> [FileLock | None, nesting count]


class RunDirLocked(QualBenchError):
    """Another run holds the run directory. Nothing of that run's directory may be touched."""


def _holder_text(run_dir: Path) -> str:
    try:
        h = json.loads((run_dir / HOLDER_NAME).read_text(encoding="utf-8"))
        return f"host {h.get('host', '?')}, pid {h.get('pid', '?')}, since {h.get('since', '?')}"
    except (OSError, ValueError, AttributeError):
        return "holder not recorded yet"


def _write_holder(run_dir: Path) -> None:
    info = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.strftime("%Y-%m-%dT%H:%M:%S")}
    tmp = run_dir / f"{HOLDER_NAME}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(info), encoding="utf-8")
    os.replace(tmp, run_dir / HOLDER_NAME)


def _remove_holder(run_dir: Path) -> None:
    path = run_dir / HOLDER_NAME
    try:
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass


@contextmanager
def run_dir_lock(run_dir: str | Path) -> Iterator[None]:
    """Hold ``run_dir`` exclusively for the block; raise :class:`RunDirLocked` at once if another process does."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    key = str(run_dir.resolve())
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield
        finally:
            _HELD[key][1] -= 1
        return
    lock: FileLock | None = FileLock(run_dir / LOCK_NAME, fallback_to_soft=False)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise RunDirLocked(
            f"{run_dir} is in use by another qualbench run ({_holder_text(run_dir)}); "
            "wait for it to end or choose another hydra.run.dir"
        ) from None
    except OSError as e:
        if e.errno not in (errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise QualBenchError(f"{run_dir}: cannot create the run lock {LOCK_NAME} ({e.strerror or e})") from None
        log.warning("%s: this filesystem has no file locks; running without the run-directory lock", run_dir)
        lock = None
    _HELD[key] = [lock, 1]
    try:
        if lock is not None:
            _write_holder(run_dir)
        yield
    finally:
        del _HELD[key]
        if lock is not None:
            _remove_holder(run_dir)
            lock.release()
