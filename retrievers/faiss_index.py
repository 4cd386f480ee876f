"""One FAISS index per domain over L2-normalised chunk embeddings (inner product = cosine).

On disk (no pickle): ``<domain>.faiss`` (FAISS's own format), ``<domain>.positions.npy`` and ``centroids.npy``
(read with ``allow_pickle=False``), ``dense_meta.json`` and, for a fitted embedder, ``embedder/`` (its own
JSON + ``.npy`` files).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retrievers.chunking import Chunk

log = logging.getLogger(__name__)
Hits = list[tuple[int, float]]
INDEX_KINDS = ("flat", "hnsw", "ivf")


@dataclass
class IndexParams:
    kind: str = "flat"  # flat | hnsw | ivf
    hnsw_m: int = 32
    hnsw_ef_construction: int = 80
    hnsw_ef_search: int = 64  # search-time
    ivf_nlist: int = 16
    ivf_nprobe: int = 4  # search-time
    ivf_fallback: bool = True

    def build_spec(self) -> dict[str, Any]:
        """The parameters that change the built index (search-time ones excluded)."""
        if self.kind not in INDEX_KINDS:
            raise ValueError(f"unknown index {self.kind!r}; choose one of {INDEX_KINDS}")
        if self.kind == "hnsw":
            return {"kind": "hnsw", "m": self.hnsw_m, "ef_construction": self.hnsw_ef_construction}
        if self.kind == "ivf":
            return {"kind": "ivf", "nlist": self.ivf_nlist, "fallback": self.ivf_fallback}
        return {"kind": "flat"}


def make_faiss_index(vectors: np.ndarray, params: IndexParams, name: str = "") -> tuple[Any, str]:
    """Build and fill a FAISS inner-product index; returns (index, kind actually built)."""
    import faiss

    n, d = vectors.shape
    kind = params.kind
    if kind == "ivf" and n < params.ivf_nlist:
        msg = (f"IVF index for {name or 'vectors'}: {n} vectors cannot train nlist={params.ivf_nlist} "
               f"centroids (need at least nlist; ~39×nlist recommended)")
        if not params.ivf_fallback:
            raise ValueError(msg + "; lower retriever.ivf_nlist or set retriever.ivf_fallback=true")
        log.warning("%s; using an exact flat index instead", msg)
        kind = "flat"
    if kind == "flat":
        index = faiss.IndexFlatIP(d)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = params.hnsw_ef_construction
    elif kind == "ivf":
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, params.ivf_nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
    else:
        raise ValueError(f"unknown index {kind!r}; choose one of {INDEX_KINDS}")
    index.add(vectors)
    set_search_params(index, params)
    return index, kind


def set_search_params(index: Any, params: IndexParams) -> None:
    import faiss

    if isinstance(index, faiss.IndexHNSW):
        index.hnsw.efSearch = params.hnsw_ef_search
    elif isinstance(index, faiss.IndexIVF):
        index.nprobe = params.ivf_nprobe


class DenseIndex:
    """Per-domain FAISS indices; ``positions[d]`` maps a domain index's row to the chunk position."""

    def __init__(self, embedder: Any, indices: dict[str, Any], positions: dict[str, np.ndarray],
                 centroids: np.ndarray, centroid_names: list[str], built_kinds: dict[str, str]):
        self.embedder = embedder
        self.indices, self.positions = indices, positions
        self.centroids, self.centroid_names = centroids, centroid_names
        self.built_kinds = built_kinds

    @classmethod
    def build(cls, chunks: list[Chunk], embedder: Any, params: IndexParams) -> "DenseIndex":
        from retrievers.routing import CentroidRouter

        texts = [c.text for c in chunks]
        if getattr(embedder, "needs_fit", False) and not embedder.fitted:
            embedder.fit(texts)
        vectors = np.ascontiguousarray(_as_array(embedder, texts), dtype=np.float32)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        domains = np.asarray([c.metadata["domain"] for c in chunks])
        indices, positions, kinds = {}, {}, {}
        for dom in sorted(set(domains.tolist())):
            pos = np.flatnonzero(domains == dom).astype(np.int64)
            indices[dom], kinds[dom] = make_faiss_index(vectors[pos], params, dom)
            positions[dom] = pos
        centroids, names = CentroidRouter.centroids_of(vectors, domains.tolist())
        return cls(embedder, indices, positions, centroids, names, kinds)

    def summary(self) -> dict[str, Any]:
        return {"dim": int(self.centroids.shape[1]), "per_domain": {
            d: {"n": int(len(p)), "index": self.built_kinds[d]} for d, p in self.positions.items()}}

    def save(self, directory: Path) -> None:
        import faiss

        directory.mkdir(parents=True, exist_ok=True)
        for dom, index in self.indices.items():
            faiss.write_index(index, str(directory / f"{dom}.faiss"))
            np.save(directory / f"{dom}.positions.npy", self.positions[dom], allow_pickle=False)
        np.save(directory / "centroids.npy", self.centroids, allow_pickle=False)
        (directory / "dense_meta.json").write_text(json.dumps(
            {"domains": self.centroid_names, "built_kinds": self.built_kinds}))
        if getattr(self.embedder, "needs_fit", False):
            self.embedder.save(directory / "embedder")

    @classmethod
    def load(cls, directory: Path, embedder: Any, params: IndexParams) -> "DenseIndex":
        import faiss

        meta = json.loads((directory / "dense_meta.json").read_text())
        if getattr(embedder, "needs_fit", False):
            embedder.load(directory / "embedder")
        indices, positions = {}, {}
        for dom in meta["domains"]:
            indices[dom] = faiss.read_index(str(directory / f"{dom}.faiss"))
            set_search_params(indices[dom], params)
            positions[dom] = np.load(directory / f"{dom}.positions.npy", allow_pickle=False)
        return cls(embedder, indices, positions, np.load(directory / "centroids.npy", allow_pickle=False),
                   meta["domains"],
                   meta["built_kinds"])

    def embed_queries(self, queries: list[str]) -> np.ndarray:
        if hasattr(self.embedder, "embed_queries"):
            q = np.asarray(self.embedder.embed_queries(list(queries)), dtype=np.float32)
        else:
            q = np.asarray([self.embedder.embed_query(x) for x in queries], dtype=np.float32)
        return np.ascontiguousarray(q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12))

    def search(self, queries: list[str], allowed: list[frozenset[str] | None], k: int) -> list[Hits]:
        """Top-k per query over its allowed domains (None = all, merged by inner product)."""
        qv = self.embed_queries(queries)
        out: list[Hits] = [[] for _ in queries]
        for dom, index in self.indices.items():
            rows = [i for i, a in enumerate(allowed) if a is None or dom in a]
            if not rows or index.ntotal == 0:
                continue
            scores, ids = index.search(qv[rows], min(k, index.ntotal))
            pos = self.positions[dom]
            for r, i in enumerate(rows):
                out[i].extend((int(pos[j]), float(s)) for j, s in zip(ids[r], scores[r]) if j >= 0)
        return [sorted(h, key=lambda x: (-x[1], x[0]))[:k] for h in out]


def _as_array(embedder: Any, texts: list[str]) -> np.ndarray:
    if hasattr(embedder, "embed_array"):
        return embedder.embed_array(texts)
    return np.asarray(embedder.embed_documents(texts), dtype=np.float32)
