"""Retrieval throughput, measured in one run and reported as ratios.

    python -m benchmarks.bench_retrieval [--n 50000] [--dim 256] [--queries 1000] [--threads 1] [--json out.json]

1. Dense: FAISS IndexFlatIP vs IndexHNSWFlat vs a NumPy brute-force baseline (matrix product + argpartition)
   on ``--n`` synthetic L2-normalised vectors (clustered: a mixture of 256 Gaussians, like real embeddings):
   build time, batched and one-at-a-time query throughput, and HNSW recall@10 against the exact Flat result.
2. BM25 (bm25s + our tokenizers) query throughput on the real shared-corpus chunks when ``../shared/corpora``
   exists (queries: the real exam questions when ``../shared/exams`` exists), else on synthetic Chinese text
   (the bundled ``corpora/sample`` chunks, repeated and reversed).
3. Persistence: ``build_retriever`` build vs load-from-cache time (BM25 and dense LSA), and HNSW
   write/read vs build.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SAMPLE_CORPUS = ROOT / "corpora" / "sample"


def timed(fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t


def clustered_unit_vectors(n: int, dim: int, seed: int, n_centers: int = 256) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_centers, dim)).astype(np.float32)
    x = centers[rng.integers(0, n_centers, n)] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def numpy_topk(base: np.ndarray, queries: np.ndarray, k: int, batch: int = 256) -> np.ndarray:
    out = np.empty((len(queries), k), dtype=np.int64)
    for s in range(0, len(queries), batch):
        sims = queries[s:s + batch] @ base.T
        part = np.argpartition(-sims, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, part, axis=1), axis=1)
        out[s:s + batch] = np.take_along_axis(part, order, axis=1)
    return out


def bench_dense(args) -> dict:
    import faiss

    from retrievers.faiss_index import IndexParams, make_faiss_index

    base = clustered_unit_vectors(args.n, args.dim, args.seed)
    queries = clustered_unit_vectors(args.queries, args.dim, args.seed + 1)
    single = queries[: args.single]
    k = args.k
    res: dict = {"n": args.n, "dim": args.dim, "queries": args.queries, "k": k}

    (_, t_np_build) = timed(np.ascontiguousarray, base)
    np_ids, t_np = timed(numpy_topk, base, queries, k)
    _, t_np_single = timed(lambda: [numpy_topk(base, q[None], k) for q in single])
    res["numpy"] = {"build_s": t_np_build, "batch_qps": len(queries) / t_np, "single_qps": len(single) / t_np_single}

    (flat, _), t_flat_build = timed(make_faiss_index, base, IndexParams("flat"))
    (_, flat_ids), t_flat = timed(flat.search, queries, k)
    _, t_flat_single = timed(lambda: [flat.search(q[None], k) for q in single])
    res["flat"] = {"build_s": t_flat_build, "batch_qps": len(queries) / t_flat,
                   "single_qps": len(single) / t_flat_single}
    res["numpy_vs_flat_agreement@10"] = float(np.mean(
        [len(set(a) & set(b)) / k for a, b in zip(np_ids, flat_ids)]))

    params = IndexParams("hnsw", hnsw_m=args.hnsw_m, hnsw_ef_construction=args.ef_construction,
                         hnsw_ef_search=args.ef_search)
    (hnsw, _), t_hnsw_build = timed(make_faiss_index, base, params)
    (_, hnsw_ids), t_hnsw = timed(hnsw.search, queries, k)
    _, t_hnsw_single = timed(lambda: [hnsw.search(q[None], k) for q in single])
    recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(hnsw_ids, flat_ids)]))
    res["hnsw"] = {"build_s": t_hnsw_build, "batch_qps": len(queries) / t_hnsw,
                   "single_qps": len(single) / t_hnsw_single, "recall@10_vs_flat": recall,
                   "m": args.hnsw_m, "ef_construction": args.ef_construction, "ef_search": args.ef_search}

    sweep = []
    for ef in args.ef_sweep:  # the recall / speed trade-off of the same graph
        hnsw.hnsw.efSearch = ef
        (_, ids), t = timed(hnsw.search, queries, k)
        sweep.append({"ef_search": ef, "batch_qps": len(queries) / t,
                      "recall@10_vs_flat": float(np.mean([len(set(a) & set(b)) / k for a, b in zip(ids, flat_ids)]))})
    res["hnsw_ef_sweep"] = sweep

    with tempfile.TemporaryDirectory() as d:
        path = str(Path(d) / "hnsw.faiss")
        _, t_write = timed(faiss.write_index, hnsw, path)
        _, t_read = timed(faiss.read_index, path)
    res["hnsw"]["write_s"], res["hnsw"]["read_s"] = t_write, t_read
    return res


def _bm25_inputs(seed: int, n_queries: int):
    from retrievers.chunking import chunk_corpus
    from retrievers.corpus import read_corpus

    rng = random.Random(seed)
    corpora = SHARED / "corpora"
    if corpora.is_dir():
        chunks = chunk_corpus(read_corpus(corpora))
        source = f"shared corpus ({len(chunks)} chunks)"
    else:
        chunks = chunk_corpus(read_corpus(SAMPLE_CORPUS))
        chunks = [type(c)(f"{c.id}-{i}", c.text[::-1] if i % 2 else c.text, dict(c.metadata))
                  for i in range(25) for c in chunks]  # synthetic: repeated / reversed sample-corpus text
        source = f"synthetic Chinese text ({len(chunks)} chunks)"
    exams = sorted((SHARED / "exams").glob("*.json"))
    if exams:
        items = [x for f in exams for x in json.loads(f.read_text(encoding="utf-8"))]
        rng.shuffle(items)
        queries = [(x["question"], x["domain"]) for x in items[:n_queries]]
        qsource = f"{len(queries)} real exam questions"
    else:
        picks = [rng.choice(chunks) for _ in range(n_queries)]
        queries = [(c.text[rng.randrange(max(1, len(c.text) - 40)):][:40], c.metadata["domain"]) for c in picks]
        qsource = f"{len(queries)} 40-char chunk excerpts"
    return chunks, queries, source, qsource


def bench_bm25(args) -> dict:
    from qualbench.domains import domain_slug
    from retrievers.bm25_index import BM25Index, BM25Params

    chunks, queries, source, qsource = _bm25_inputs(args.seed, args.bm25_queries)
    res: dict = {"corpus": source, "queries": qsource}
    texts = [q for q, _ in queries]
    oracle = [frozenset([domain_slug(d)]) for _, d in queries]
    for tok in ("jieba", "char_bigram"):
        index, t_build = timed(BM25Index.build, chunks, BM25Params(tokenizer=tok))
        index.search(texts[:5], [None] * 5, 10)  # warm-up (jieba dictionary, numba-free paths)
        _, t_all = timed(index.search, texts, [None] * len(texts), 10)
        _, t_oracle = timed(index.search, texts, oracle, 10)
        _, t_single = timed(lambda: [index.search([q], [None], 10) for q in texts[: args.single]])
        res[tok] = {"build_s": t_build, "batch_qps_all": len(texts) / t_all,
                    "batch_qps_oracle": len(texts) / t_oracle, "single_qps": min(args.single, len(texts)) / t_single}
    return res


def bench_persistence(args) -> dict:
    from retrievers.build import build_retriever

    corpora = SHARED / "corpora"
    corpus, label = (corpora, "shared corpus") if corpora.is_dir() else (SAMPLE_CORPUS, "bundled sample corpus")
    res: dict = {"corpus": label}
    with tempfile.TemporaryDirectory() as cache:
        for kind in ("bm25", "dense"):
            cfg = {"kind": kind, "embedder": {"dim": args.dim}}
            r, t_build = timed(build_retriever, cfg, corpus, cache)
            r2, t_load = timed(build_retriever, cfg, corpus, cache)
            assert r.built == [True] and r2.built == [False]
            res[kind] = {"build_s": t_build, "load_s": t_load, "n_chunks": len(r.chunks)}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--single", type=int, default=200, help="queries timed one at a time")
    ap.add_argument("--bm25-queries", type=int, default=1000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--hnsw-m", type=int, default=32)
    ap.add_argument("--ef-construction", type=int, default=80)
    ap.add_argument("--ef-search", type=int, default=64)
    ap.add_argument("--ef-sweep", type=int, nargs="*", default=[16, 32, 64, 128, 256, 512])
    ap.add_argument("--threads", type=int, default=1, help="FAISS / BLAS threads (same for every method)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = ap.parse_args()

    import faiss
    from threadpoolctl import threadpool_limits

    faiss.omp_set_num_threads(args.threads)
    with threadpool_limits(args.threads):
        print(f"dense: {args.n:,} vectors × {args.dim} dims, {args.queries} queries, k={args.k}, "
              f"{args.threads} thread(s) ...", flush=True)
        dense = bench_dense(args)
        print("bm25 ...", flush=True)
        bm25 = bench_bm25(args)
        print("persistence ...", flush=True)
        persist = bench_persistence(args)

    np_, fl, hn = dense["numpy"], dense["flat"], dense["hnsw"]
    print(f"\n== Dense, {args.n:,} × {args.dim} (clustered synthetic, L2-normalised) ==")
    print(f"{'method':8} {'build s':>9} {'batch q/s':>11} {'single q/s':>11}")
    for name, r in (("numpy", np_), ("flat", fl), ("hnsw", hn)):
        print(f"{name:8} {r['build_s']:9.3f} {r['batch_qps']:11.0f} {r['single_qps']:11.0f}")
    print(f"HNSW (M={hn['m']}, efC={hn['ef_construction']}, efS={hn['ef_search']}) recall@10 vs Flat: "
          f"{hn['recall@10_vs_flat']:.4f}; NumPy/Flat top-10 agreement {dense['numpy_vs_flat_agreement@10']:.4f}")
    print(f"ratios: Flat/NumPy batch q/s {fl['batch_qps'] / np_['batch_qps']:.2f}×, single "
          f"{fl['single_qps'] / np_['single_qps']:.2f}×; HNSW/Flat batch q/s {hn['batch_qps'] / fl['batch_qps']:.2f}×, "
          f"single {hn['single_qps'] / fl['single_qps']:.2f}×; HNSW build / Flat build "
          f"{hn['build_s'] / fl['build_s']:.0f}×")
    print("HNSW efSearch sweep (same graph): " + "; ".join(
        f"ef={r['ef_search']}: recall {r['recall@10_vs_flat']:.3f}, {r['batch_qps'] / fl['batch_qps']:.1f}× Flat q/s"
        for r in dense["hnsw_ef_sweep"]))
    print(f"HNSW persisted: write {hn['write_s']:.3f}s, read {hn['read_s']:.3f}s = "
          f"{hn['build_s'] / hn['read_s']:.0f}× faster than building")
    print(f"\n== BM25 on {bm25['corpus']}, {bm25['queries']}, top-10 ==")
    for tok in ("jieba", "char_bigram"):
        r = bm25[tok]
        print(f"{tok:12} build {r['build_s']:6.2f}s  batch q/s all-domains {r['batch_qps_all']:7.0f}  "
              f"oracle-domain {r['batch_qps_oracle']:7.0f}  single {r['single_qps']:7.0f}")
    print(f"ratio jieba/char_bigram batch q/s: {bm25['jieba']['batch_qps_all'] / bm25['char_bigram']['batch_qps_all']:.2f}×")
    print(f"\n== Persistence (build_retriever on the {persist['corpus']}) ==")
    for kind in ("bm25", "dense"):
        r = persist[kind]
        print(f"{kind:6} build {r['build_s']:6.2f}s  load {r['load_s']:6.3f}s  = {r['build_s'] / r['load_s']:.0f}× "
              f"faster ({r['n_chunks']} chunks)")
    if args.json:
        args.json.write_text(json.dumps({"dense": dense, "bm25": bm25, "persistence": persist}, indent=1))


if __name__ == "__main__":
    main()
