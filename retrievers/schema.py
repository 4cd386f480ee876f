"""Hydra schemas of the ``retriever``, ``embedder`` and ``corpus`` config groups."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class EmbedderConfig:
    kind: str = "lsa"  # lsa | sentence_transformers
    dim: int = 256  # lsa: TruncatedSVD components
    ngram_min: int = 1  # lsa: character n-gram range
    ngram_max: int = 2
    analyzer: str = "char_wb"  # lsa: TfidfVectorizer analyzer (char | char_wb)
    max_features: Optional[int] = 200000  # lsa: vocabulary cap
    seed: int = 0
    model: Optional[str] = None  # sentence_transformers: local path or hub id (must be cached: offline)
    query_instruction: str = ""  # prepended to queries (e.g. BGE's "为这个句子生成表示以用于检索相关文章：")
    normalize: bool = True
    batch_size: int = 32
    device: Optional[str] = None


@dataclass
class ChunkSettings:
    max_chars: int = 600
    overlap: int = 80
    min_chars: int = 40


@dataclass
class RetrieverConfig:
    kind: str = "bm25"  # bm25 | dense | hybrid
    routing: str = "all"  # all (default: every domain) | oracle (the question's domain) | routed (classifier picks one)
    router: str = "auto"  # routed mode: auto | bm25 (score argmax) | centroid (nearest embedder centroid)
    router_depth: int = 3  # bm25 router: a domain's score = sum of its chunks' scores in the global top-N
    top_k: int = 5
    tokenizer: str = "jieba"  # bm25: jieba | char_bigram
    bm25_k1: float = 1.5
    bm25_b: float = 0.75
    index: str = "flat"  # dense: flat | hnsw | ivf
    hnsw_m: int = 32
    hnsw_ef_construction: int = 80
    hnsw_ef_search: int = 64
    ivf_nlist: int = 16
    ivf_nprobe: int = 4
    ivf_fallback: bool = True  # too few vectors to train IVF: fall back to flat (warning) instead of failing
    rrf_k: int = 60  # hybrid: reciprocal rank fusion constant
    weights: list[float] = field(default_factory=lambda: [1.0, 1.0])  # hybrid: [bm25, dense]
    fusion_depth: int = 50  # hybrid: candidates taken from each retriever before fusion
    chunk: ChunkSettings = field(default_factory=ChunkSettings)
    cache_dir: Optional[str] = "${qb_root:}/.cache/indices"
    rebuild: str = "auto"  # cached index missing or failing its sha256 check: auto = rebuild (warning) | never = refuse
    cache_mode: str = "775"  # cached index dirs (files get the same bits minus x: 664); octal, or "umask"
    allow_gb18030: bool = True  # decode non-UTF-8 corpus files as GB18030/GBK (with a warning)
    strict_corpus: bool = False  # fail on the first unusable corpus file instead of reporting it
    embedder: EmbedderConfig = field(default_factory=EmbedderConfig)


@dataclass
class CorpusConfig:
    name: str = "corpus"
    path: str = MISSING  # <path>/<domain slug>/*.md


def register_schemas(cs: ConfigStore) -> None:
    cs.store(group="retriever", name="base_bm25", node=RetrieverConfig(kind="bm25"))
    cs.store(group="retriever", name="base_dense", node=RetrieverConfig(kind="dense"))
    cs.store(group="retriever", name="base_hybrid", node=RetrieverConfig(kind="hybrid"))
    cs.store(group="embedder", name="base_lsa", node=EmbedderConfig(kind="lsa"))
    cs.store(group="embedder", name="base_sentence_transformers",
             node=EmbedderConfig(kind="sentence_transformers"))
    cs.store(group="corpus", name="base_corpus", node=CorpusConfig)
