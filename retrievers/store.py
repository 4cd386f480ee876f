"""Index persistence: ``<cache_dir>/<key>/`` holding manifest.json + index files.

The key hashes everything the index depends on (corpus content hash, chunking, tokenizer, embedder id,
index type and parameters), so any change builds a new index and an unchanged one is loaded. Builders take
an exclusive ``fcntl.flock`` on ``<key>.lock``, build into a temporary directory and rename it into place,
so parallel Hydra jobs build once and share the result.

Integrity: the manifest records the sha256 of every file in the index directory. Before a cached index is
used, every file is re-hashed; a missing, changed or unlisted file (or a symlink) makes the index invalid: it
is rebuilt with a warning (``rebuild="auto"``) or refused with one line (``rebuild="never"``). Nothing in the
cache is a pickle, so a replaced file can change what is retrieved (until it is detected) but never runs code.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from qualbench.paths import PROJECT_ROOT
from qualbench.errors import ConfigError, QualBenchError

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"
DEFAULT_CACHE = PROJECT_ROOT / ".cache" / "indices"
REBUILD_MODES = ("auto", "never")
DEFAULT_CACHE_MODE = "775"  # directories drwxrwxr-x, files -rw-rw-r--: readable (and buildable) by the group


class IndexCacheError(QualBenchError):
    """A cached index is missing or fails its integrity check and ``retriever.rebuild=never``."""


def manifest_key(spec: dict[str, Any]) -> str:
    """Short stable hash of a JSON-able spec."""
    blob = json.dumps(spec, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:20]


def _umask() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def parse_cache_mode(value: str | int | None) -> tuple[int, int]:
    """(dir mode, file mode) for ``retriever.cache_mode``: an octal directory mode such as ``"775"``
    (files get the same bits minus execute) or ``"umask"`` (0o777/0o666 less the process umask)."""
    text = str(DEFAULT_CACHE_MODE if value is None else value).strip().lower()
    if text == "umask":
        mask = _umask()
        return 0o777 & ~mask, 0o666 & ~mask
    try:
        mode = int(text.removeprefix("0o"), 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o7777 or (mode & 0o700) != 0o700:
        raise ConfigError(f"retriever.cache_mode={value!r}: give an octal directory mode that the owner can "
                             f"use (e.g. 775, 755, 700) or 'umask'")
    return mode, mode & 0o666


def _chmod(path: Path, mode: int) -> None:
    try:
        os.chmod(path, mode)
    except PermissionError:  # someone else's file on a shared filesystem: leave it
        pass


def _ensure_dir(path: Path, dir_mode: int) -> None:
    """mkdir -p, giving the directories it creates ``dir_mode``."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(parents=True, exist_ok=True)
    for p in missing:
        _chmod(p, dir_mode)


def _apply_modes(root: Path, dir_mode: int, file_mode: int) -> None:
    _chmod(root, dir_mode)
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            _chmod(Path(dirpath) / d, dir_mode)
        for f in filenames:
            _chmod(Path(dirpath) / f, file_mode)


@contextmanager
def file_lock(path: Path, file_mode: int | None = None) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with open(path, "a+") as fh:
        if new and file_mode is not None:
            _chmod(path, file_mode)
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def read_manifest(index_dir: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads((index_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return manifest if isinstance(manifest, dict) else None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _walk_files(index_dir: Path) -> tuple[list[str], list[str]]:
    """(regular files, anything else: symlinks, devices...) under index_dir, as sorted POSIX paths
    relative to it; the manifest itself is excluded."""
    files, odd = [], []
    for dirpath, dirnames, filenames in os.walk(index_dir):
        base = Path(dirpath)
        for name in list(dirnames):
            if (base / name).is_symlink():
                odd.append((base / name).relative_to(index_dir).as_posix())
                dirnames.remove(name)
        for name in filenames:
            p = base / name
            rel = p.relative_to(index_dir).as_posix()
            if rel == MANIFEST:
                continue
            (files if p.is_file() and not p.is_symlink() else odd).append(rel)
    return sorted(files), sorted(odd)


def file_hashes(index_dir: Path) -> dict[str, str]:
    """sha256 of every file under ``index_dir`` except the manifest."""
    files, odd = _walk_files(index_dir)
    if odd:
        raise QualBenchError(f"{index_dir}: not regular files: {odd}")
    return {rel: sha256_file(index_dir / rel) for rel in files}


def verify_index(index_dir: Path, manifest: dict[str, Any]) -> str | None:
    """None if every file the manifest lists is present with its recorded sha256 and nothing else is in the
    directory; otherwise a one-line description naming the first offending file."""
    recorded = manifest.get("files")
    if not isinstance(recorded, dict) or not recorded:
        return f"{index_dir / MANIFEST}: no file hashes recorded (old or edited manifest)"
    files, odd = _walk_files(index_dir)
    if odd:
        return f"{index_dir / odd[0]}: not a regular file (symlink?)"
    present = set(files)
    for rel in sorted(recorded):
        if rel not in present:
            return f"{index_dir / rel}: missing"
    for rel in files:
        if rel not in recorded:
            return f"{index_dir / rel}: not part of the index (unlisted file)"
        try:
            digest = sha256_file(index_dir / rel)
        except OSError as e:  # e.g. replaced by a concurrent rebuild while we read it
            return f"{index_dir / rel}: unreadable ({type(e).__name__})"
        if digest != recorded[rel]:
            return f"{index_dir / rel}: content differs from the sha256 in the manifest (edited or corrupt)"
    return None


def _check(final: Path, spec_json: Any) -> tuple[dict[str, Any] | None, str | None]:
    """(manifest, None) for a valid cached index, (None, problem) for an invalid one, (None, None) if absent."""
    if final.is_symlink():
        return None, f"{final}: is a symlink, not an index directory"
    if not final.exists():
        return None, None
    manifest = read_manifest(final)
    if manifest is None:
        return None, f"{final / MANIFEST}: missing or unreadable"
    if manifest.get("spec") != spec_json:
        return None, f"{final / MANIFEST}: its spec does not match the configuration"
    problem = verify_index(final, manifest)
    return (manifest, None) if problem is None else (None, problem)


def load_or_build(cache_dir: str | Path | None, spec: dict[str, Any],
                  build: Callable[[Path], dict[str, Any]], rebuild: str = "auto",
                  cache_mode: str | int | None = DEFAULT_CACHE_MODE) -> tuple[Path, dict[str, Any], bool]:
    """Return (index_dir, manifest, built) for ``spec``; ``build(tmp_dir)`` writes the index files into
    tmp_dir and returns extra manifest fields. The manifest (with every file's sha256) is written last, so a
    directory with a matching manifest is complete; it is re-verified on every load (see the module doc)."""
    if rebuild not in REBUILD_MODES:
        raise ConfigError(f"retriever.rebuild={rebuild!r}; choose one of {REBUILD_MODES}")
    dir_mode, file_mode = parse_cache_mode(cache_mode)
    cache = Path(cache_dir) if cache_dir else DEFAULT_CACHE
    key = manifest_key(spec)
    final = cache / key
    spec_json = json.loads(json.dumps(spec, default=str))
    manifest, problem = _check(final, spec_json)
    if manifest is not None:
        return final, manifest, False
    if rebuild == "never":
        raise IndexCacheError(f"retriever.rebuild=never: {problem}; delete {final} or use retriever.rebuild=auto"
                              if problem else f"retriever.rebuild=never: no index cached at {final}; "
                              "build it once with retriever.rebuild=auto")
    _ensure_dir(cache, dir_mode)
    with file_lock(cache / f"{key}.lock", file_mode):
        manifest, problem = _check(final, spec_json)  # another process may have built it while we waited
        if manifest is not None:
            return final, manifest, False
        if problem:
            log.warning("index cache: %s; rebuilding %s", problem, final)
        tmp = Path(tempfile.mkdtemp(prefix=f"{key}.tmp-", dir=cache))
        try:
            extra = build(tmp)
            manifest = {"key": key, "spec": spec, **extra, "files": file_hashes(tmp)}
            (tmp / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=1, default=str),
                                        encoding="utf-8")
            _apply_modes(tmp, dir_mode, file_mode)
            stale = cache / f"{key}.stale-{uuid.uuid4().hex[:8]}"
            if final.exists() or final.is_symlink():  # invalid: move it aside, so no reader sees a half-deleted one
                os.rename(final, stale)
            os.rename(tmp, final)
            if stale.exists() or stale.is_symlink():
                if stale.is_symlink() or not stale.is_dir():
                    stale.unlink()
                else:
                    shutil.rmtree(stale, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log.info("built index %s", final)
        return final, json.loads((final / MANIFEST).read_text(encoding="utf-8")), True
