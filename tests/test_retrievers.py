"""Retrievers: langchain-core interface, routing modes, batch API, tokenization, hybrid fusion, Hydra configs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever

from helpers.demo_corpus import DEMO_QUERIES, write_demo_corpus
from retrievers.build import build_retriever
from retrievers.fusion import rrf
from retrievers.routing import routing_accuracy
from retrievers.tokenize import char_bigram, jieba_words

QUERIES = [q for q, _ in DEMO_QUERIES]
GOLD = [g for _, g in DEMO_QUERIES]
SMALL_LSA = {"dim": 16}
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_demo_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def bm25(corpus, cache):
    return build_retriever({"kind": "bm25", "routing": "oracle", "top_k": 3}, corpus, cache)


def _check_docs(docs, k):
    assert 0 < len(docs) <= k
    assert all(isinstance(d, Document) for d in docs)
    assert [d.metadata["rank"] for d in docs] == list(range(1, len(docs) + 1))
    scores = [d.metadata["score"] for d in docs]
    assert scores == sorted(scores, reverse=True)
    for d in docs:
        assert d.id == d.metadata["chunk_id"]
        assert d.page_content.startswith(f"《{d.metadata['law_title']}》")


def test_langchain_interface(bm25):
    assert isinstance(bm25, BaseRetriever) and bm25.routing == "oracle"
    docs = bm25.invoke("擅自拆除消火栓", domain="fire_safety")
    _check_docs(docs, 3)
    assert docs[0].metadata["article"] == "第四条" and docs[0].metadata["domain"] == "fire_safety"
    assert len(bm25.invoke("擅自拆除消火栓", domain="消防", k=1)) == 1  # Chinese domain name, per-call k
    batched = bm25.batch(["发现火灾报警", "投保人保险利益"], domain="fire_safety")
    assert len(batched) == 2 and all(d.metadata["domain"] == "fire_safety" for docs in batched for d in docs)
    adocs = asyncio.run(bm25.ainvoke("保险利益", domain="banking_insurance"))
    _check_docs(adocs, 3)
    assert adocs[0].metadata["article"] == "第六条"


def test_search_batch_matches_invoke(bm25):
    batch = bm25.search_batch(QUERIES, GOLD, k=2)
    assert len(batch) == len(QUERIES)
    for q, g, docs in zip(QUERIES, GOLD, batch):
        _check_docs(docs, 2)
        assert all(d.metadata["domain"] == g for d in docs)
        assert [d.id for d in docs] == [d.id for d in bm25.invoke(q, domain=g, k=2)]
    assert bm25.search_batch([], [], k=3) == []


def test_oracle_needs_domains(bm25):
    with pytest.raises(ValueError, match="routing=oracle needs a domain"):
        bm25.search_batch(QUERIES[:2])
    with pytest.raises(ValueError, match="routing=oracle needs a domain"):
        bm25.invoke(QUERIES[0])
    with pytest.raises(ValueError, match="2 queries but 1 domains"):
        bm25.search_batch(QUERIES[:2], ["fire_safety"])
    with pytest.raises(ValueError, match="unknown domain"):
        bm25.invoke(QUERIES[0], domain="astronomy")


def test_oracle_domain_missing_from_corpus_returns_nothing(bm25):
    assert bm25.invoke("石油天然气管道保护", domain="oil_gas") == []


def test_all_and_routed_modes(corpus, cache):
    all_r = build_retriever({"kind": "bm25", "routing": "all", "top_k": 9}, corpus, cache)
    assert all_r.built == [False]  # same index as the oracle retriever: loaded, not rebuilt
    docs = all_r.search_batch(["应当"], [None], k=9)[0]  # a word in every domain
    assert len({d.metadata["domain"] for d in docs}) == 3
    assert all_r.search_batch(["应当"], ["fire_safety"], k=9)[0] == docs  # given domains are ignored
    routed = build_retriever({"kind": "bm25", "routing": "routed"}, corpus, cache)
    routes = routed.route(QUERIES)
    rep = routing_accuracy(routed, QUERIES, GOLD)
    assert rep.n == len(QUERIES) and rep.accuracy == sum(r == g for r, g in zip(routes, GOLD)) / len(GOLD)
    assert rep.accuracy >= 0.8, rep.confusion
    for q, route, docs in zip(QUERIES, routes, routed.search_batch(QUERIES, k=2)):
        assert {d.metadata["domain"] for d in docs} <= {route}
        assert docs[0].metadata["searched_domain"] == route


@pytest.mark.parametrize("tokenizer", ["jieba", "char_bigram"])
def test_bm25_matches_words_inside_clauses(corpus, cache, tokenizer):
    r = build_retriever({"kind": "bm25", "tokenizer": tokenizer, "routing": "all"}, corpus, cache)
    # "消火栓" sits inside the clause "不得埋压、圈占、遮挡消火栓": a clause-level tokenizer would never match it
    top = r.invoke("消火栓", k=1)[0]
    assert "遮挡消火栓" in top.page_content
    top = r.invoke("审批", k=1)[0]  # inside "分级审批的制度"
    assert "分级审批" in top.page_content


def test_tokenizers_are_sub_clause():
    import bm25s

    clause = "不得埋压、圈占、遮挡消火栓"
    default = bm25s.tokenize([clause], return_ids=False, show_progress=False)[0]
    assert "消火栓" not in default  # why we tokenize ourselves
    assert "消火栓" in jieba_words(clause)
    assert {"消火", "火栓"} <= set(char_bigram(clause))


def test_dense_and_hybrid(corpus, cache):
    dense = build_retriever({"kind": "dense", "embedder": SMALL_LSA, "routing": "oracle"}, corpus, cache)
    res = dense.search_batch(QUERIES, GOLD, k=3)
    for g, docs in zip(GOLD, res):
        _check_docs(docs, 3)
        assert all(d.metadata["domain"] == g and d.metadata["retriever"] == "dense" for d in docs)
        assert -1.0 - 1e-5 <= docs[0].metadata["score"] <= 1.0 + 1e-5  # cosine
    single = [dense.invoke(q, domain=g, k=3) for q, g in zip(QUERIES, GOLD)]
    assert [[d.id for d in x] for x in single] == [[d.id for d in x] for x in res]
    assert routing_accuracy(dense, QUERIES, GOLD).accuracy >= 0.6  # nearest centroid on LSA

    hybrid = build_retriever({"kind": "hybrid", "embedder": SMALL_LSA, "weights": [1.0, 1.0], "rrf_k": 60},
                             corpus, cache)
    assert hybrid.built == [False, False]  # both halves already built above
    bm25_only = build_retriever({"kind": "hybrid", "embedder": SMALL_LSA, "weights": [1.0, 0.0]}, corpus, cache)
    bm25 = build_retriever({"kind": "bm25"}, corpus, cache)
    for q, g in zip(QUERIES, GOLD):
        h = hybrid.invoke(q, domain=g, k=3)
        _check_docs(h, 3)
        assert h[0].metadata["score"] <= 2 / 61 + 1e-9  # RRF score bound: sum w / (k + 1)
        # weight 0 on dense: the fused ranking is BM25's
        assert [d.id for d in bm25_only.invoke(q, domain=g, k=3)] == [d.id for d in bm25.invoke(q, domain=g, k=3)]


def test_rrf():
    fused = rrf([[(1, 9.0), (2, 5.0)], [(2, 0.9), (3, 0.5)]], [1.0, 1.0], k=60)
    assert fused[0][0] == 2 and fused[0][1] == pytest.approx(1 / 62 + 1 / 61)
    assert [p for p, _ in fused] == [2, 1, 3]
    assert [p for p, _ in rrf([[(1, 9.0), (2, 5.0)], [(2, 0.9), (3, 0.5)]], [1.0, 0.0], k=60)] == [1, 2]
    with pytest.raises(ValueError):
        rrf([[(1, 1.0)]], [1.0, 1.0])


def test_build_from_hydra_config(corpus, cache):
    from hydra import compose, initialize_config_dir

    from qualbench.config import PROJECT_ROOT, register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["retriever=hybrid", "corpus=sample", "retriever.embedder.dim=16",
                                           "retriever.top_k=2", "retriever.routing=all"])
        assert cfg.corpus.path.endswith("corpora/sample")
        assert cfg.retriever.embedder.kind == "lsa"
        r = build_retriever(cfg.retriever, corpus, cache)
        assert r.kind == "hybrid" and r.routing == "all" and r.top_k == 2
        assert len(r.invoke("保险利益")) == 2
        with pytest.raises(Exception):
            compose("config", overrides=["retriever=bm25", "retriever.top_kk=3"])
    with pytest.raises(ValueError, match="kind"):
        build_retriever({"kind": "tfidf"}, corpus, cache)


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/corpora not present")
def test_shared_corpus_bm25_finds_the_article(tmp_path_factory):
    r = build_retriever({"kind": "bm25", "routing": "oracle"}, SHARED, tmp_path_factory.mktemp("shared_cache"))
    docs = r.invoke("消防设施、器材的维护保养检测", domain="消防", k=5)
    assert any("消防" in d.metadata["law_title"] for d in docs)
    docs = r.invoke("商业银行的经营原则 安全性 流动性 效益性", domain="banking_insurance", k=3)
    assert any(d.metadata["law_title"] == "中华人民共和国商业银行法" for d in docs)
