"""One FAISS index over L2-normalised chunk embeddings (inner product = cosine); domain filters are ID selectors.

On disk (no pickle): ``index.faiss`` (FAISS's own format), ``centroids.npy`` (read with ``allow_pickle=False``),
``dense_meta.json`` (each chunk's domain, the domain names, the index kind built) and, for a fitted embedder,
``embedder/`` (its own JSON + ``.npy`` files).
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
    """One FAISS index over every chunk (row = chunk position); a domain filter is an ID selector inside the
    same search, so routing=all is one FAISS call and a filtered batch one call per distinct domain set."""

    def __init__(self, embedder: Any, index: Any, chunk_domains: np.ndarray, centroids: np.ndarray,
                 centroid_names: list[str], built_kind: str, params: IndexParams):
        self.embedder = embedder
        self.index, self.domains = index, np.asarray(chunk_domains)
        self.centroids, self.centroid_names = centroids, centroid_names
        self.built_kind, self.params = built_kind, params
        self._filters: dict[frozenset[str], Any] = {}

    @classmethod
    def build(cls, chunks: list[Chunk], embedder: Any, params: IndexParams) -> "DenseIndex":
        from retrievers.routing import CentroidRouter

        texts = [c.text for c in chunks]
        if getattr(embedder, "needs_fit", False) and not embedder.fitted:
            if hasattr(embedder, "fit_embed"):
                vectors = embedder.fit_embed(texts)  # the fit's own TF-IDF matrix: no second pass
            else:
                embedder.fit(texts)
                vectors = _as_array(embedder, texts)
        else:
            vectors = _as_array(embedder, texts)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        domains = [c.metadata["domain"] for c in chunks]
        index, kind = make_faiss_index(vectors, params, "the corpus")
        centroids, names = CentroidRouter.centroids_of(vectors, domains)
        return cls(embedder, index, np.asarray(domains), centroids, names, kind, params)

    def summary(self) -> dict[str, Any]:
        names, counts = np.unique(self.domains, return_counts=True)
        return {"dim": int(self.centroids.shape[1]), "index": self.built_kind, "n": int(len(self.domains)),
                "per_domain": {str(d): int(n) for d, n in zip(names, counts)}}

    def save(self, directory: Path) -> None:
        import faiss

        directory.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self.index, str(directory / "index.faiss"))
        np.save(directory / "centroids.npy", self.centroids, allow_pickle=False)
        (directory / "dense_meta.json").write_text(json.dumps(
            {"domains": self.centroid_names, "built_kind": self.built_kind, "chunk_domains": self.domains.tolist()},
            ensure_ascii=False), encoding="utf-8")
        if getattr(self.embedder, "needs_fit", False):
            self.embedder.save(directory / "embedder")

    @classmethod
    def load(cls, directory: Path, embedder: Any, params: IndexParams) -> "DenseIndex":
        import faiss

        meta = json.loads((directory / "dense_meta.json").read_text(encoding="utf-8"))
        if getattr(embedder, "needs_fit", False):
            embedder.load(directory / "embedder")
        index = faiss.read_index(str(directory / "index.faiss"))
        set_search_params(index, params)
        return cls(embedder, index, np.asarray(meta["chunk_domains"]),
                   np.load(directory / "centroids.npy", allow_pickle=False), meta["domains"], meta["built_kind"],
                   params)

    def embed_queries(self, queries: list[str]) -> np.ndarray:
        if hasattr(self.embedder, "embed_queries"):
            q = np.asarray(self.embedder.embed_queries(list(queries)), dtype=np.float32)
        else:
            q = np.asarray([self.embedder.embed_query(x) for x in queries], dtype=np.float32)
        return np.ascontiguousarray(q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12))

    def search(self, queries: list[str], allowed: list[frozenset[str] | None], k: int) -> list[Hits]:
        """Top-k per query over its allowed domains (None = all)."""
        return self.search_vectors(self.embed_queries(queries), allowed, k)

    def search_vectors(self, qv: np.ndarray, allowed: list[frozenset[str] | None], k: int) -> list[Hits]:
        """``search`` on L2-normalised query vectors: one FAISS call per distinct allowed set."""
        out: list[Hits] = [[] for _ in range(len(qv))]
        k = min(k, self.index.ntotal)
        if k <= 0:
            return out
        groups: dict[frozenset[str] | None, list[int]] = {}
        for i, a in enumerate(allowed):
            groups.setdefault(a, []).append(i)
        for dom, rows in groups.items():
            params = None if dom is None else self._filter(dom)
            if params is False:
                continue  # no chunk in these domains
            q = qv if len(rows) == len(qv) else qv[rows]
            scores, ids = self.index.search(q, k, params=params)
            full = bool((ids >= 0).all())  # FAISS pads with -1 when fewer than k chunks qualify
            for i, id_row, score_row in zip(rows, ids.tolist(), scores.tolist()):
                pairs = zip(id_row, score_row)
                out[i] = list(pairs) if full else [(j, s) for j, s in pairs if j >= 0]
        return out

    def _filter(self, domains: frozenset[str]) -> Any:
        """FAISS search parameters that keep only the chunks of ``domains`` (False when there are none)."""
        if domains not in self._filters:
            import faiss

            ids = np.flatnonzero(np.isin(self.domains, list(domains))).astype(np.int64)
            if not len(ids):
                self._filters[domains] = False
            else:
                sel = faiss.IDSelectorBatch(ids)
                if isinstance(self.index, faiss.IndexHNSW):
                    params = faiss.SearchParametersHNSW(sel=sel, efSearch=self.params.hnsw_ef_search)
                elif isinstance(self.index, faiss.IndexIVF):
                    params = faiss.SearchParametersIVF(sel=sel, nprobe=self.params.ivf_nprobe)
                else:
                    params = faiss.SearchParameters(sel=sel)
                params._keep = (sel, ids)  # the SWIG object does not own the selector
                self._filters[domains] = params
        return self._filters[domains]


def _as_array(embedder: Any, texts: list[str]) -> np.ndarray:
    if hasattr(embedder, "embed_array"):
        return embedder.embed_array(texts)
    return np.asarray(embedder.embed_documents(texts), dtype=np.float32)
