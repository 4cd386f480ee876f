"""``build_retriever(retriever_cfg, corpus_path, cache_dir)``: corpus → chunks → cached indices → QBRetriever."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from retrievers.chunking import Chunk, ChunkConfig, chunk_corpus
from retrievers.corpus import Corpus, CorpusReport, FileIssue, corpus_hash, read_corpus
from retrievers.retriever import QBRetriever
from retrievers.schema import RetrieverConfig
from retrievers.store import DEFAULT_CACHE, load_or_build

log = logging.getLogger(__name__)
FORMAT_VERSION = 3  # bump when the on-disk layout or chunking code changes meaning (2: no pickle, sha256s; 3: one FAISS index)
KINDS = ("bm25", "dense", "hybrid")


def to_retriever_config(cfg: Any) -> RetrieverConfig:
    """Accept a RetrieverConfig, a dict or a DictConfig (validated against the schema)."""
    if isinstance(cfg, RetrieverConfig):
        return cfg
    from qualbench.paths import project_root

    if not OmegaConf.has_resolver("qb_root"):
        OmegaConf.register_new_resolver("qb_root", project_root)
    raw = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg or {})
    raw.pop("_target_", None)
    merged = OmegaConf.merge(OmegaConf.structured(RetrieverConfig), raw)
    out = OmegaConf.to_object(merged)
    if out.kind not in KINDS:
        raise ValueError(f"retriever.kind={out.kind!r}; choose one of {KINDS}")
    return out


class _CorpusCache:
    """Reads and chunks the corpus at most once per build_retriever call, and only if an index is built."""

    def __init__(self, root: Path, cfg: RetrieverConfig):
        self.root, self.cfg = root, cfg
        self._corpus: Corpus | None = None
        self._chunks: list[Chunk] | None = None

    @property
    def corpus(self) -> Corpus:
        if self._corpus is None:
            self._corpus = read_corpus(self.root, self.cfg.allow_gb18030, self.cfg.strict_corpus)
        return self._corpus

    @property
    def chunks(self) -> list[Chunk]:
        if self._chunks is None:
            self._chunks = chunk_corpus(self.corpus, ChunkConfig(**asdict(self.cfg.chunk)))
        return self._chunks

    def write(self, directory: Path) -> dict[str, Any]:
        """Write chunks.jsonl and corpus_report.json; return manifest fields."""
        with open(directory / "chunks.jsonl", "w", encoding="utf-8") as fh:
            for c in self.chunks:
                fh.write(json.dumps(c.to_dict(), ensure_ascii=False) + "\n")
        self.corpus.report.save(directory / "corpus_report.json")
        return {"corpus_path": str(self.root), "n_chunks": len(self.chunks), "n_files": self.corpus.report.n_used,
                "corpus_summary": self.corpus.report.summary(), "created": time.strftime("%Y-%m-%dT%H:%M:%S")}


def load_chunks(directory: Path) -> list[Chunk]:
    with open(directory / "chunks.jsonl", encoding="utf-8") as fh:
        return [Chunk(**json.loads(line)) for line in fh]


def load_report(directory: Path) -> CorpusReport:
    d = json.loads((directory / "corpus_report.json").read_text(encoding="utf-8"))
    d["issues"] = [FileIssue(**i) for i in d.get("issues", [])]
    return CorpusReport(**d)


def _common_spec(cfg: RetrieverConfig, chash: str) -> dict[str, Any]:
    return {"format": FORMAT_VERSION, "corpus_hash": chash, "chunking": asdict(cfg.chunk),
            "allow_gb18030": cfg.allow_gb18030}


def _bm25(cfg: RetrieverConfig, src: _CorpusCache, cache: Path, chash: str):
    from retrievers.bm25_index import BM25Index, BM25Params

    params = BM25Params(tokenizer=cfg.tokenizer, k1=cfg.bm25_k1, b=cfg.bm25_b)
    spec = {**_common_spec(cfg, chash), "type": "bm25", "tokenizer": cfg.tokenizer, "k1": cfg.bm25_k1,
            "b": cfg.bm25_b, "method": params.method}

    def build(tmp: Path) -> dict[str, Any]:
        BM25Index.build(src.chunks, params).save(tmp / "bm25")
        return src.write(tmp)

    directory, manifest, built = load_or_build(cache, spec, build, cfg.rebuild, cfg.cache_mode)
    return directory, BM25Index.load(directory / "bm25"), built


def _dense(cfg: RetrieverConfig, src: _CorpusCache, cache: Path, chash: str):
    from retrievers.embedders import make_embedder
    from retrievers.faiss_index import DenseIndex, IndexParams

    embedder = make_embedder(cfg.embedder)
    params = IndexParams(kind=cfg.index, hnsw_m=cfg.hnsw_m, hnsw_ef_construction=cfg.hnsw_ef_construction,
                         hnsw_ef_search=cfg.hnsw_ef_search, ivf_nlist=cfg.ivf_nlist, ivf_nprobe=cfg.ivf_nprobe,
                         ivf_fallback=cfg.ivf_fallback)
    spec = {**_common_spec(cfg, chash), "type": "dense", "embedder_id": embedder.embedder_id,
            "index": params.build_spec()}

    def build(tmp: Path) -> dict[str, Any]:
        index = DenseIndex.build(src.chunks, embedder, params)
        index.save(tmp / "dense")
        return {**src.write(tmp), "dense": index.summary()}

    directory, manifest, built = load_or_build(cache, spec, build, cfg.rebuild, cfg.cache_mode)
    return directory, DenseIndex.load(directory / "dense", embedder, params), built


def build_retriever(retriever_cfg: Any, corpus_path: str | Path,
                    cache_dir: str | Path | None = None) -> QBRetriever:
    """Build (or load from the cache) the indices ``retriever_cfg`` describes over ``corpus_path``."""
    from retrievers.fusion import HybridSearcher
    from retrievers.routing import BM25Router, CentroidRouter

    cfg = to_retriever_config(retriever_cfg)
    root = Path(corpus_path)
    cache = Path(cache_dir or cfg.cache_dir or DEFAULT_CACHE)
    chash = corpus_hash(root)
    src = _CorpusCache(root, cfg)
    dirs: list[Path] = []
    built: list[bool] = []
    bm25 = dense = None
    if cfg.kind in ("bm25", "hybrid"):
        d, bm25, b = _bm25(cfg, src, cache, chash)
        dirs.append(d)
        built.append(b)
    if cfg.kind in ("dense", "hybrid"):
        d, dense, b = _dense(cfg, src, cache, chash)
        dirs.append(d)
        built.append(b)
    chunks = load_chunks(dirs[0])
    if len(dirs) == 2 and [c.id for c in load_chunks(dirs[1])] != [c.id for c in chunks]:
        raise RuntimeError(f"hybrid: the BM25 and dense indices hold different chunks ({dirs}); clear the cache")
    if cfg.kind == "bm25":
        searcher = bm25
    elif cfg.kind == "dense":
        searcher = dense
    else:
        searcher = HybridSearcher([bm25, dense], cfg.weights, cfg.rrf_k, cfg.fusion_depth)
    router_kind = cfg.router if cfg.router != "auto" else ("bm25" if bm25 is not None else "centroid")
    if router_kind == "bm25":
        if bm25 is None:
            raise ValueError("router=bm25 needs kind=bm25 or hybrid")
        router = BM25Router(bm25, cfg.router_depth)
    elif router_kind == "centroid":
        if dense is None:
            raise ValueError("router=centroid needs kind=dense or hybrid")
        router = CentroidRouter(dense.embed_queries, dense.centroids, dense.centroid_names)
    else:
        raise ValueError(f"unknown router {cfg.router!r}; choose auto, bm25 or centroid")
    report = load_report(dirs[0])
    if report.issues:
        log.warning("corpus %s: %s (details: %s)", root, report.summary(), Path(dirs[0]) / "corpus_report.json")
    domain_names = sorted({c.metadata["domain"] for c in chunks})
    log.info("retriever %s (routing=%s) over %d chunks in %s", cfg.kind, cfg.routing, len(chunks), domain_names)
    return QBRetriever(kind=cfg.kind, routing=cfg.routing, top_k=cfg.top_k, chunks=chunks, searcher=searcher,
                       router=router, corpus_report=report, index_dirs=[str(d) for d in dirs], built=built,
                       domain_names=domain_names)
