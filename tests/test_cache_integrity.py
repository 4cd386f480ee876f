"""Index cache security: nothing is a pickle, every file's sha256 is checked on load, tampering rebuilds (or
refuses with one line under rebuild=never), and the cache mode is a setting."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import stat
from pathlib import Path

import numpy as np
import pytest

from helpers.demo_corpus import write_demo_corpus
from qualbench.errors import ConfigError, QualBenchError
from retrievers.build import build_retriever
from retrievers.embedders import EmbedderError, LSAEmbeddings
from retrievers.store import MANIFEST, IndexCacheError, load_or_build, parse_cache_mode

DENSE = {"kind": "dense", "embedder": {"dim": 8}}
HYBRID = {"kind": "hybrid", "embedder": {"dim": 8}}


class _Payload:
    """Unpickling this creates ``marker`` (what an attacker's embedder.pkl would do, harmlessly)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _payload_bytes(marker: Path, tmp_path: Path) -> bytes:
    data = pickle.dumps(_Payload(marker))
    probe = tmp_path / "probe-marker"
    pickle.loads(pickle.dumps(_Payload(probe))).close()  # the payload does run when unpickled...
    assert probe.exists()
    return data


@pytest.fixture()
def corpus(tmp_path) -> Path:
    return write_demo_corpus(tmp_path / "c")


def _one_dir(r) -> Path:
    (d,) = r.index_dirs
    return Path(d)


def test_cache_holds_no_pickle_and_hashes_every_file(corpus, tmp_path):
    r = build_retriever(HYBRID, corpus, tmp_path / "cache")
    for d in map(Path, r.index_dirs):
        manifest = json.loads((d / MANIFEST).read_text())
        files = sorted(p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file() and p.name != MANIFEST)
        assert sorted(manifest["files"]) == files and "chunks.jsonl" in files
        for rel in files:
            data = (d / rel).read_bytes()
            assert manifest["files"][rel] == hashlib.sha256(data).hexdigest()
            assert not rel.endswith((".pkl", ".pickle", ".joblib")) and not data.startswith(b"\x80")
            if rel.endswith(".npy"):
                assert np.load(d / rel, allow_pickle=False).dtype != object
    dense_dir = Path(r.index_dirs[1])
    assert (dense_dir / "dense" / "embedder" / "lsa_components.npy").is_file()
    assert not list(dense_dir.rglob("*.pkl"))


def test_edited_chunks_are_rebuilt_with_a_warning(corpus, tmp_path, caplog):
    first = build_retriever(DENSE, corpus, tmp_path / "cache")
    chunks = _one_dir(first) / "chunks.jsonl"
    lines = chunks.read_text(encoding="utf-8").splitlines()
    row = json.loads(lines[0])
    row["text"] = "INJECTED 发现火灾应当立即报警 INJECTED"
    chunks.write_text("\n".join([json.dumps(row, ensure_ascii=False)] + lines[1:]) + "\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="retrievers.store"):
        again = build_retriever(DENSE, corpus, tmp_path / "cache")
    assert again.built == [True] and again.index_dirs == first.index_dirs
    assert "chunks.jsonl" in caplog.text and "rebuilding" in caplog.text
    assert not any("INJECTED" in c.text for c in again.chunks)
    assert "INJECTED" not in chunks.read_text(encoding="utf-8")
    assert build_retriever(DENSE, corpus, tmp_path / "cache").built == [False]  # the rebuilt one verifies


def test_dropped_embedder_pickle_is_never_executed(corpus, tmp_path, caplog):
    first = build_retriever(DENSE, corpus, tmp_path / "cache")
    marker = tmp_path / "PWNED"
    bad = _one_dir(first) / "dense" / "embedder.pkl"  # where the old format kept the embedder
    bad.write_bytes(_payload_bytes(marker, tmp_path))
    with caplog.at_level(logging.WARNING, logger="retrievers.store"):
        again = build_retriever(DENSE, corpus, tmp_path / "cache")
    assert not marker.exists()
    assert again.built == [True] and "embedder.pkl" in caplog.text and "unlisted" in caplog.text
    assert not bad.exists()  # the rebuilt directory is clean
    # a pickle disguised as the .npy, with the hash check out of the way: np.load refuses, nothing runs
    emb_dir = _one_dir(again) / "dense" / "embedder"
    np.save(emb_dir / "lsa_components.npy", np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(EmbedderError, match="cannot read the saved LSA embedder"):
        LSAEmbeddings(dim=8).load(emb_dir)
    assert not marker.exists()
    assert build_retriever(DENSE, corpus, tmp_path / "cache").built == [True]  # and the store rebuilds it
    assert not marker.exists()


@pytest.mark.parametrize("target", ["dense/embedder/lsa_components.npy", "dense/centroids.npy", "bm25/bm25_meta.json"])
def test_tampered_or_missing_file_rebuilds(corpus, tmp_path, caplog, target):
    cfg = HYBRID
    first = build_retriever(cfg, corpus, tmp_path / "cache")
    d = next(Path(x) for x in first.index_dirs if (Path(x) / target).exists())
    f = d / target
    data = bytearray(f.read_bytes())
    data[-1] ^= 0x01  # one bit in the last array element / JSON byte
    f.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="retrievers.store"):
        again = build_retriever(cfg, corpus, tmp_path / "cache")
    assert f"{target}: content differs" in caplog.text
    assert sum(again.built) == 1 and f.read_bytes() != bytes(data)
    caplog.clear()
    f.unlink()
    with caplog.at_level(logging.WARNING, logger="retrievers.store"):
        assert sum(build_retriever(cfg, corpus, tmp_path / "cache").built) == 1
    assert f"{target}: missing" in caplog.text and f.is_file()


def test_rebuild_never_refuses_in_one_line(corpus, tmp_path):
    never = {**DENSE, "rebuild": "never"}
    with pytest.raises(IndexCacheError, match="no index cached"):
        build_retriever(never, corpus, tmp_path / "cache")
    first = build_retriever(DENSE, corpus, tmp_path / "cache")
    assert build_retriever(never, corpus, tmp_path / "cache").built == [False]  # a valid index is used
    chunks = _one_dir(first) / "chunks.jsonl"
    chunks.write_text(chunks.read_text(encoding="utf-8").replace("消防", "消 防", 1), encoding="utf-8")
    with pytest.raises(IndexCacheError) as err:
        build_retriever(never, corpus, tmp_path / "cache")
    msg = str(err.value)
    assert isinstance(err.value, QualBenchError) and "\n" not in msg
    assert str(chunks) in msg and "rebuild=never" in msg and "sha256" in msg
    assert "消 防" in chunks.read_text(encoding="utf-8")  # refused, not rebuilt
    with pytest.raises(ConfigError, match="retriever.rebuild='sometimes'"):
        build_retriever({**DENSE, "rebuild": "sometimes"}, corpus, tmp_path / "cache")


def test_store_refuses_symlinks_and_edited_manifest(tmp_path, caplog):
    cache = tmp_path / "cache"
    outside = tmp_path / "outside.txt"
    outside.write_text("x")

    def build(tmp: Path) -> dict:
        (tmp / "data.txt").write_text("ok")
        return {}

    d, manifest, built = load_or_build(cache, {"x": 1}, build)
    assert built and manifest["files"] == {"data.txt": hashlib.sha256(b"ok").hexdigest()}
    (d / "data.txt").unlink()
    (d / "data.txt").symlink_to(outside)
    with pytest.raises(IndexCacheError, match="not a regular file"):
        load_or_build(cache, {"x": 1}, build, rebuild="never")
    assert load_or_build(cache, {"x": 1}, build)[2] and not (d / "data.txt").is_symlink()
    m = json.loads((d / MANIFEST).read_text())
    m["files"] = {}
    (d / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(IndexCacheError, match="no file hashes"):
        load_or_build(cache, {"x": 1}, build, rebuild="never")


def _modes(root: Path) -> tuple[set[int], set[int]]:
    dirs = {stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")] if p.is_dir()}
    files = {stat.S_IMODE(p.stat().st_mode) for p in root.rglob("*") if p.is_file()}
    return dirs, files


def test_cache_mode_setting(corpus, tmp_path):
    old = os.umask(0o077)  # a private umask: the default still makes the cache group-readable
    try:
        r = build_retriever(DENSE, corpus, tmp_path / "cache")
        assert _modes(tmp_path / "cache") == ({0o775}, {0o664})  # the cache root, index dir, lock and files
        build_retriever({**DENSE, "cache_mode": "700"}, corpus, tmp_path / "private")
        assert _modes(tmp_path / "private") == ({0o700}, {0o600})
        os.umask(0o027)
        build_retriever({**DENSE, "cache_mode": "umask"}, corpus, tmp_path / "um")
        assert _modes(tmp_path / "um") == ({0o750}, {0o640})
    finally:
        os.umask(old)
    assert r.built == [True]
    assert parse_cache_mode("0o2775") == (0o2775, 0o664) and parse_cache_mode(755) == (0o755, 0o644)
    for bad in ("rwx", "999", "077"):
        with pytest.raises(ConfigError, match="retriever.cache_mode"):
            parse_cache_mode(bad)
