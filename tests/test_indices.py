"""Indices: FAISS kinds, embedders (LSA + a tiny locally built sentence-transformers model), persistence,
invalidation and concurrent builders."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from helpers.demo_corpus import DEMO_QUERIES, write_demo_corpus
from qualbench.config import PROJECT_ROOT
from retrievers.build import build_retriever
from retrievers import embedders
from retrievers.embedders import EmbedderError, LSAEmbeddings, SentenceTransformerEmbeddings, truncated_svd
from retrievers.faiss_index import IndexParams, make_faiss_index
from retrievers.store import MANIFEST

TEXTS = ["消防设施应当定期检查维修", "商业银行贷款实行审贷分离", "生产经营单位的主要负责人全面负责",
         "保险合同订立时投保人应当具有保险利益", "发现火灾应当立即报警", "特种作业人员应当取得资格"]


def _unit(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_faiss_flat_hnsw_ivf_against_numpy():
    base, queries = _unit(2000, 32, 0), _unit(50, 32, 1)
    exact = np.argsort(-(queries @ base.T), axis=1)[:, :10]
    flat, kind = make_faiss_index(base, IndexParams("flat"))
    assert kind == "flat" and np.array_equal(flat.search(queries, 10)[1], exact)
    hnsw, kind = make_faiss_index(base, IndexParams("hnsw", hnsw_m=16, hnsw_ef_search=64))
    found = hnsw.search(queries, 10)[1]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, exact)])
    assert kind == "hnsw" and recall >= 0.9
    ivf, kind = make_faiss_index(base, IndexParams("ivf", ivf_nlist=8, ivf_nprobe=8))  # probes every list
    assert kind == "ivf" and np.array_equal(ivf.search(queries, 10)[1], exact)


class _Fixed:
    """An embedder whose vectors are given: text i → row i."""

    def __init__(self, vectors: np.ndarray):
        self.vectors = vectors

    def embed_array(self, texts):
        return self.vectors[[int(t) for t in texts]]

    def embed_queries(self, texts):
        return self.vectors[[int(t) for t in texts]]


@pytest.mark.parametrize("params", [IndexParams("flat"), IndexParams("ivf", ivf_nlist=8, ivf_nprobe=8),
                                    IndexParams("hnsw", hnsw_m=16, hnsw_ef_search=256)], ids=["flat", "ivf", "hnsw"])
def test_one_index_with_domain_filters_matches_brute_force(params):
    from retrievers.chunking import Chunk
    from retrievers.faiss_index import DenseIndex

    n, doms = 600, ["fire_safety", "oil_gas", "banking_insurance"]
    base = _unit(n, 16, 0)
    chunks = [Chunk(id=f"c{i}", text=str(i), metadata={"domain": doms[i % 3 if i < 500 else 0]}) for i in range(n)]
    index = DenseIndex.build(chunks, _Fixed(base), params)
    assert index.index.ntotal == n  # one FAISS index over every chunk, not one per domain
    queries = _unit(40, 16, 1)
    allowed = [None if i % 4 == 0 else frozenset([doms[i % 3]]) if i % 4 < 3 else frozenset(doms[:2])
               for i in range(40)]
    hits = index.search_vectors(queries, allowed, 10)
    dom_of = np.asarray([c.metadata["domain"] for c in chunks])
    recall = []
    for q, a, h in zip(queries, allowed, hits):
        ok = np.ones(n, bool) if a is None else np.isin(dom_of, list(a))
        scores = np.where(ok, base @ q, -np.inf)
        exact = list(np.argsort(-scores, kind="stable")[:10])
        got = [p for p, _ in h]
        assert all(ok[p] for p in got)  # never a chunk outside the allowed domains
        assert [s for _, s in h] == sorted([s for _, s in h], reverse=True)
        recall.append(len(set(got) & set(exact)) / 10)
        if params.kind != "hnsw":
            assert got == exact
    assert np.mean(recall) >= 0.9
    assert index.search_vectors(queries[:2], [frozenset(["no_such_domain"])] * 2, 5) == [[], []]


def test_ivf_too_few_vectors(caplog):
    few = _unit(5, 8, 0)
    index, kind = make_faiss_index(few, IndexParams("ivf", ivf_nlist=16, ivf_fallback=True), "oil_gas")
    assert kind == "flat" and index.ntotal == 5 and "oil_gas" in caplog.text
    with pytest.raises(ValueError, match="oil_gas.*nlist=16"):
        make_faiss_index(few, IndexParams("ivf", ivf_nlist=16, ivf_fallback=False), "oil_gas")
    with pytest.raises(ValueError, match="unknown index"):
        IndexParams("annoy").build_spec()


def test_lsa_deterministic_saved_without_pickle(tmp_path):
    a = LSAEmbeddings(dim=4, seed=3).fit(TEXTS)
    b = LSAEmbeddings(dim=4, seed=3).fit(TEXTS)
    va = np.asarray(a.embed_documents(TEXTS))
    assert va.shape == (6, 4) and np.allclose(np.linalg.norm(va, axis=1), 1, atol=1e-5)
    assert np.allclose(va, b.embed_documents(TEXTS))
    assert np.allclose(pickle.loads(pickle.dumps(a)).embed_query("消防"), a.embed_query("消防"))
    a.save(tmp_path / "lsa")  # JSON vocabulary + .npy arrays, no pickle
    assert sorted(p.name for p in (tmp_path / "lsa").iterdir()) == ["lsa.json", "lsa_components.npy", "lsa_idf.npy"]
    c = LSAEmbeddings(dim=4, seed=3).load(tmp_path / "lsa")
    assert np.array_equal(c.embed_array(TEXTS), a.embed_array(TEXTS))  # the same transform, bit for bit
    queries = ["火灾报警", "未见过的词"]
    assert np.array_equal(c.embed_queries(queries), a.embed_queries(queries))
    assert a.embedder_id != LSAEmbeddings(dim=8, seed=3).embedder_id
    with pytest.raises(EmbedderError, match="does not match"):
        LSAEmbeddings(dim=8, seed=3).load(tmp_path / "lsa")
    with pytest.raises(EmbedderError, match="not fitted"):
        LSAEmbeddings().embed_query("x")
    # the nearest document of a query sharing its words
    q = np.asarray(a.embed_query("火灾报警"))
    assert int(np.argmax(va @ q)) == 4


@pytest.mark.parametrize("shape", [(120, 900), (900, 120)], ids=["wide", "tall"])
def test_truncated_svd_against_exact(shape):
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    n, f = shape
    u, _ = np.linalg.qr(rng.standard_normal((n, 60)))
    v, _ = np.linalg.qr(rng.standard_normal((f, 60)))
    dense = (u * 0.85 ** np.arange(60)) @ v.T + 1e-4 * rng.standard_normal((n, f))
    dense[np.abs(dense) < np.quantile(np.abs(dense), 0.3)] = 0  # a sparse matrix, as TF-IDF gives
    x = sp.csr_matrix(dense.astype(np.float32))
    _, s, exact_vt = np.linalg.svd(x.toarray().astype(np.float64), full_matrices=False)
    vt, emb = truncated_svd(x, 16, seed=1)
    assert vt.shape == (16, f) and emb.shape == (n, 16) and vt.dtype == emb.dtype == np.float32
    assert np.allclose(vt @ vt.T, np.eye(16), atol=1e-5)  # orthonormal components
    assert np.allclose(emb, x @ vt.T, atol=1e-5)  # the embeddings are the projection, as for a query
    assert np.allclose(np.linalg.norm(emb, axis=0), s[:16], rtol=1e-3)  # the 16 largest singular values
    overlap = np.linalg.svd(vt.astype(np.float64) @ exact_vt[:16].T, compute_uv=False)
    assert overlap.min() > 0.99  # the same 16-dimensional subspace
    vt2, emb2 = truncated_svd(x, 16, seed=1)
    assert np.array_equal(vt, vt2) and np.array_equal(emb, emb2)


@pytest.mark.parametrize("texts", [
    ["消防设施定期检查", "消防设施定期检查", "银行贷款审贷分离", "银行贷款审贷分离", "消防贷款"],  # rank 3
    ["甲", "乙", "甲", "乙", "甲乙", "甲", "乙", "甲乙", "甲", "乙"],  # more texts (10) than n-grams (8): rank 3
], ids=["wide", "tall"])
def test_lsa_rank_deficient_corpus_keeps_tfidf_cosines(texts):
    lsa = LSAEmbeddings(dim=8)
    emb = lsa.fit_embed(texts)  # dim lowered, beyond the rank
    assert emb.shape[0] == len(texts) and emb.shape[1] > 3 and np.isfinite(emb).all()
    assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    tfidf = lsa.vectorizer.transform(texts).toarray()  # rows L2-normalised: their cosines
    assert np.allclose(emb @ emb.T, tfidf @ tfidf.T, atol=1e-4)  # rank <= dim: LSA loses no angle
    assert np.allclose(lsa.embed_array(texts), emb, atol=1e-5)


def test_changed_svd_algorithm_is_a_different_embedder(tmp_path, monkeypatch):
    LSAEmbeddings(dim=4).fit(TEXTS).save(tmp_path / "lsa")
    monkeypatch.setattr(embedders, "SVD_VERSION", embedders.SVD_VERSION + "-next")
    with pytest.raises(EmbedderError, match="does not match"):  # a cache from the old algorithm is not used
        LSAEmbeddings(dim=4).load(tmp_path / "lsa")


@pytest.fixture(scope="module")
def tiny_st_model(tmp_path_factory) -> Path:
    """A 2-layer, 32-dim BERT + WordPiece tokenizer trained here on a few sentences: no download."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, trainers
    from tokenizers import models as tok_models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    root = tmp_path_factory.mktemp("st")
    tok = Tokenizer(tok_models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer()
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(TEXTS + [q for q, _ in DEMO_QUERIES],
                            trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials))
    fast = BertTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                             sep_token="[SEP]", mask_token="[MASK]")
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=256)
    BertModel(cfg).save_pretrained(root / "bert")
    fast.save_pretrained(root / "bert")
    transformer = Transformer(str(root / "bert"), max_seq_length=128)
    pooling = Pooling(transformer.get_embedding_dimension(), "mean")
    SentenceTransformer(modules=[transformer, pooling]).save(str(root / "model"))
    return root / "model"


def test_sentence_transformer_embeddings(tiny_st_model, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    emb = SentenceTransformerEmbeddings(str(tiny_st_model), normalize=True, batch_size=4)
    docs = np.asarray(emb.embed_documents(TEXTS))
    assert docs.shape == (6, 32) and np.allclose(np.linalg.norm(docs, axis=1), 1, atol=1e-5)
    assert np.allclose(emb.embed_query(TEXTS[0]), docs[0], atol=1e-5)
    instructed = SentenceTransformerEmbeddings(str(tiny_st_model), query_instruction="查询：")
    assert not np.allclose(instructed.embed_query(TEXTS[0]), docs[0], atol=1e-3)
    assert np.allclose(instructed.embed_documents(TEXTS[:1])[0], docs[0], atol=1e-5)  # documents unchanged
    assert instructed.embedder_id != emb.embedder_id
    missing = SentenceTransformerEmbeddings("no-such-org/no-such-model")
    with pytest.raises(EmbedderError, match="no-such-org/no-such-model.*offline"):
        missing.embed_query("x")
    corpus = write_demo_corpus(tmp_path / "c")
    r = build_retriever({"kind": "dense", "routing": "oracle",
                         "embedder": {"kind": "sentence_transformers", "model": str(tiny_st_model)}},
                        corpus, tmp_path / "cache")
    docs = r.invoke("发现火灾应当如何报警", domain="fire_safety", k=2)
    assert len(docs) == 2 and all(d.metadata["domain"] == "fire_safety" for d in docs)


class _Counter:
    def __init__(self, monkeypatch):
        self.fit = self.embed = self.bm25 = 0
        orig_fit, orig_embed = LSAEmbeddings.fit_embed, LSAEmbeddings.embed_array
        from retrievers.bm25_index import BM25Index

        orig_bm25 = BM25Index.build.__func__

        def fit(emb, texts):  # fitting embeds the corpus from the fit's own matrix
            self.fit += 1
            self.embed += len(texts)
            return orig_fit(emb, texts)

        def embed(emb, texts):
            self.embed += len(texts)
            return orig_embed(emb, texts)

        def bm25(cls, chunks, params):
            self.bm25 += 1
            return orig_bm25(cls, chunks, params)

        monkeypatch.setattr(LSAEmbeddings, "fit_embed", fit)
        monkeypatch.setattr(LSAEmbeddings, "embed_array", embed)
        monkeypatch.setattr(BM25Index, "build", classmethod(bm25))


def test_persistence_and_invalidation(tmp_path, monkeypatch):
    count = _Counter(monkeypatch)
    corpus, cache = write_demo_corpus(tmp_path / "c"), tmp_path / "cache"
    base = {"kind": "hybrid", "embedder": {"dim": 8}, "chunk": {"max_chars": 600, "overlap": 80, "min_chars": 40}}

    def build(**over):
        cfg = json.loads(json.dumps(base))
        for k, v in over.items():
            cfg[k] = {**cfg[k], **v} if isinstance(v, dict) else v
        return build_retriever(cfg, corpus, cache)

    first = build()
    assert first.built == [True, True] and count.fit == 1 and count.embed == len(first.chunks) and count.bm25 == 1
    bm25_dir, dense_dir = map(Path, first.index_dirs)
    manifest = json.loads((dense_dir / MANIFEST).read_text())
    assert manifest["spec"]["embedder_id"].startswith("lsa:") and manifest["spec"]["chunking"]["max_chars"] == 600
    assert len(manifest["spec"]["corpus_hash"]) == 64 and manifest["spec"]["index"] == {"kind": "flat"}
    assert json.loads((bm25_dir / MANIFEST).read_text())["spec"]["tokenizer"] == "jieba"
    assert (bm25_dir / "corpus_report.json").is_file() and (dense_dir / "chunks.jsonl").is_file()

    again = build()  # unchanged: loaded, nothing re-embedded or re-indexed
    assert again.built == [False, False] and count.fit == 1 and count.embed == len(first.chunks)
    assert count.bm25 == 1 and again.index_dirs == first.index_dirs
    q, g = DEMO_QUERIES[0]
    assert [d.id for d in again.invoke(q, domain=g)] == [d.id for d in first.invoke(q, domain=g)]

    assert build(embedder={"dim": 4}).built == [False, True]  # embedder change: dense rebuilt only
    assert build(tokenizer="char_bigram").built == [True, False]  # tokenizer change: BM25 rebuilt only
    assert build(chunk={"max_chars": 100}).built == [True, True]  # chunking change: both
    assert build(index="hnsw").built == [False, True]
    assert build(index="hnsw", hnsw_ef_search=16).built == [False, False]  # search-time only: no rebuild
    fits = count.fit
    f = corpus / "fire_safety" / "示例消防管理办法.md"
    f.write_text(f.read_text(encoding="utf-8") + "\n第九条 消防控制室应当实行二十四小时值班制度。\n", encoding="utf-8")
    changed = build()
    assert changed.built == [True, True] and count.fit == fits + 1
    assert set(changed.index_dirs).isdisjoint(first.index_dirs)
    assert "二十四小时值班" in changed.invoke("消防控制室值班", domain="fire_safety", k=1)[0].page_content
    assert not list(cache.glob("*.tmp-*"))  # no temporary build directories left behind


_CHILD = textwrap.dedent("""
    import json
    from retrievers.build import build_retriever
    r = build_retriever({{"kind": "hybrid", "embedder": {{"dim": 8}}}}, {corpus!r}, {cache!r})
    print(json.dumps({{"built": r.built, "dirs": r.index_dirs, "n": len(r.chunks),
                      "top": r.invoke("擅自拆除消火栓", domain="fire_safety", k=1)[0].id}}))
""")


def test_concurrent_builders_share_one_index(tmp_path):
    corpus, cache = write_demo_corpus(tmp_path / "c"), tmp_path / "cache"
    code = _CHILD.format(corpus=str(corpus), cache=str(cache))
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd=PROJECT_ROOT) for _ in range(2)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-2000:]
        outs.append(json.loads(out.strip().splitlines()[-1]))
    assert outs[0]["dirs"] == outs[1]["dirs"] and outs[0]["top"] == outs[1]["top"]
    assert [a or b for a, b in zip(outs[0]["built"], outs[1]["built"])] == [True, True]
    assert [a and b for a, b in zip(outs[0]["built"], outs[1]["built"])] == [False, False]  # each built once
    index_dirs = [p for p in cache.iterdir() if p.is_dir()]
    assert len(index_dirs) == 2 and all((p / MANIFEST).is_file() for p in index_dirs)


def test_store_lock_serialises_builders(tmp_path):
    """Two processes racing on one key with a slow build: the lock makes the second wait and load."""
    code = textwrap.dedent(f"""
        import json, time
        from retrievers.store import load_or_build
        def build(tmp):
            (tmp / "data.txt").write_text("ok")
            time.sleep(1.5)
            return {{"pid": __import__("os").getpid()}}
        d, manifest, built = load_or_build({str(tmp_path / "cache")!r}, {{"x": 1}}, build)
        print(json.dumps({{"built": built, "pid": manifest["pid"], "data": (d / "data.txt").read_text()}}))
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd=PROJECT_ROOT) for _ in range(2)]
    outs = [json.loads(p.communicate(timeout=60)[0].strip().splitlines()[-1]) for p in procs]
    assert sorted(o["built"] for o in outs) == [False, True]
    assert outs[0]["pid"] == outs[1]["pid"] and all(o["data"] == "ok" for o in outs)


def test_parallel_tokenisation_gives_the_same_tokens():
    """A large corpus is tokenised in forked workers (in a single-threaded process): same tokens, same order."""
    code = textwrap.dedent("""
        import retrievers.parallel as P
        import retrievers.tokenize as T
        assert P.single_threaded()
        texts = [f"第{i}条 生产经营单位的主要负责人对本单位的安全生产工作全面负责。Article {i}" for i in range(400)]
        P.PARALLEL_MIN = 100
        for name in T.TOKENIZERS:
            assert T.tokenize_all(texts, name, workers=2) == [T.get_tokenizer(name)(t) for t in texts], name
        print("ok")
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr[-2000:]


def test_lsa_fit_in_forked_workers_matches_sklearn_and_one_process():
    """LSA counts a large corpus's n-grams in forked workers and multiplies in threads: the TF-IDF matrix is
    sklearn's TfidfVectorizer's, and embeddings and components are the same as on one core."""
    code = textwrap.dedent("""
        import numpy as np
        import retrievers.parallel as P
        from retrievers.embedders import LSAEmbeddings, _count_ngrams, _merge_counts, truncated_svd
        assert P.single_threaded()
        texts = [f"第{i}条 生产经营单位的主要负责人对本单位{'安全生产消防'[i % 6:]}工作全面负责。Article {i % 7}"
                 for i in range(300)] + ["", "  \\t "]
        P.PARALLEL_MIN = 100
        forked = LSAEmbeddings(dim=16)
        emb = forked.fit_embed(texts)
        ref = LSAEmbeddings(dim=16)._vectorizer()
        x_ref = ref.fit_transform(texts)
        assert forked.vectorizer.get_feature_names_out().tolist() == ref.get_feature_names_out().tolist()
        assert abs(forked.vectorizer.transform(texts) - x_ref).max() < 1e-6
        P.PARALLEL_MIN = 10 ** 9
        one = LSAEmbeddings(dim=16)
        assert np.array_equal(one.fit_embed(texts), emb) and np.array_equal(one.components, forked.components)
        parts = [_count_ngrams(("char_wb", (1, 2), p)) for p in P.split(texts, 3)]
        whole = _merge_counts([_count_ngrams(("char_wb", (1, 2), texts))], 40)
        split = _merge_counts(parts, 40)  # max_features: the same 40 n-grams (ties by n-gram order) either way
        assert whole[0] == split[0] and len(whole[0]) == 40 and (whole[1] != split[1]).nnz == 0
        x = ref.transform(texts)
        for short_side in (x, x.T):  # wide and tall: threaded row blocks give the one-thread products bit for bit
            assert all(np.array_equal(a, b) for a, b in zip(truncated_svd(short_side, 8, workers=3),
                                                              truncated_svd(short_side, 8, workers=1)))
        print("ok")
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr[-2000:]


def test_killed_build_worker_is_one_clear_error():
    """A forked worker killed mid-build (the OOM killer, a signal) ends in WorkerDied, a one-line QualBenchError."""
    code = textwrap.dedent("""
        import os, signal
        import retrievers.parallel as P
        from qualbench.errors import QualBenchError

        def die(part):
            if part == 1:
                os.kill(os.getpid(), signal.SIGKILL)
            return part

        assert P.fork_map(die, [0, 2], 2) == [0, 2]
        try:
            P.fork_map(die, [0, 1, 2], 2)
        except P.WorkerDied as e:
            assert isinstance(e, QualBenchError) and "was killed" in str(e) and "\\n" not in str(e)
            print("ok")
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr[-2000:]
