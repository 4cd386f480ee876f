"""Index persistence: ``<cache_dir>/<key>/`` holding manifest.json + index files.

The key hashes everything the index depends on (corpus content hash, chunking, tokenizer, embedder id,
index type and parameters), so any change builds a new index and an unchanged one is loaded. Builders take
an exclusive ``fcntl.flock`` on ``<key>.lock``, build into a temporary directory and rename it into place,
so parallel Hydra jobs build once and share the result.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from qualbench.config import PROJECT_ROOT

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"
DEFAULT_CACHE = PROJECT_ROOT / ".cache" / "indices"


def manifest_key(spec: dict[str, Any]) -> str:
    """Short stable hash of a JSON-able spec."""
    blob = json.dumps(spec, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:20]


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def read_manifest(index_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((index_dir / MANIFEST).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def load_or_build(cache_dir: str | Path | None, spec: dict[str, Any],
                  build: Callable[[Path], dict[str, Any]]) -> tuple[Path, dict[str, Any], bool]:
    """Return (index_dir, manifest, built) for ``spec``; ``build(tmp_dir)`` writes the index files into
    tmp_dir and returns extra manifest fields. The manifest is written last, so a directory with a
    manifest whose spec matches is complete."""
    cache = Path(cache_dir) if cache_dir else DEFAULT_CACHE
    key = manifest_key(spec)
    final = cache / key
    manifest = read_manifest(final)
    if manifest is not None and manifest.get("spec") == json.loads(json.dumps(spec, default=str)):
        return final, manifest, False
    with file_lock(cache / f"{key}.lock"):
        manifest = read_manifest(final)  # another process may have built it while we waited
        if manifest is not None and manifest.get("spec") == json.loads(json.dumps(spec, default=str)):
            return final, manifest, False
        tmp = Path(tempfile.mkdtemp(prefix=f"{key}.tmp-", dir=cache))
        try:
            extra = build(tmp)
            manifest = {"key": key, "spec": spec, **extra}
            (tmp / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=1, default=str),
                                        encoding="utf-8")
            if final.exists():  # stale or incomplete (no matching manifest): replace it
                shutil.rmtree(final)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log.info("built index %s", final)
        return final, json.loads((final / MANIFEST).read_text(encoding="utf-8")), True
