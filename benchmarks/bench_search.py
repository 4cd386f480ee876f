"""Batched search of our indices against the raw library on the same index, same inputs, in one process.

    python -m benchmarks.bench_search [--queries 1000] [--k 10] [--reps 5]

Corpus: ``../shared/corpora`` (86 laws) when present, else the bundled sample corpus; queries: the real exam
questions of ``../shared/exams`` when present, else the sample set. Indices are built into a temporary cache.

* dense (LSA + FAISS flat): ``DenseIndex.search_vectors`` on the query vectors vs one raw ``index.search`` of
  the same FAISS index with the same vectors; routing=all (no filter) and one-domain filters (each query limited
  to one domain, as routing=oracle/routed does).
* BM25: ``BM25Index.search_tokens`` vs bm25s ``retrieve`` with the same token lists (tokenisation excluded from
  both), routing=all and one-domain filters (bm25s ``weight_mask``).

Prints min and median seconds over ``--reps`` repetitions (ours and raw alternating), the ratio raw/ours of the minima (1.0 = as fast as the
raw library, higher is better for us), and whether the top-k ids are identical.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def paired(ours_fn, raw_fn, reps: int) -> tuple[tuple[float, float, object], tuple[float, float, object]]:
    """Time ``ours_fn`` and ``raw_fn`` alternately ``reps`` times each (a machine that slows down mid-run slows
    both alike): (min, median, last result) for each."""
    res: list[list] = [[None, []], [None, []]]
    for _ in range(reps):
        for slot, fn in zip(res, (ours_fn, raw_fn)):
            t = time.perf_counter()
            slot[0] = fn()
            slot[1].append(time.perf_counter() - t)
    return tuple((min(ts), statistics.median(ts), out) for out, ts in res)  # type: ignore[return-value]


def queries(n: int) -> list[str]:
    files = sorted((SHARED / "exams").glob("*.json")) if (SHARED / "exams").is_dir() else []
    texts: list[str] = []
    for f in files:
        texts += [str(r["question"]) for r in json.loads(f.read_text(encoding="utf-8"))]
    if not texts:
        from qualbench.data import load_dataset

        texts = [q.stem for q in load_dataset({"loader": "sample"})]
    return (texts * (n // len(texts) + 1))[:n]


def row(name: str, ours: tuple, raw: tuple, same: bool) -> dict:
    r = {"case": name, "ours_min_s": ours[0], "ours_median_s": ours[1], "raw_min_s": raw[0],
         "raw_median_s": raw[1], "ratio_raw_over_ours": raw[0] / ours[0],
         "median_ratio_raw_over_ours": raw[1] / ours[1], "identical_topk": same}
    print(f"{name:34s} ours {ours[0]*1e3:8.1f} ms (median {ours[1]*1e3:8.1f})   raw {raw[0]*1e3:8.1f} ms "
          f"(median {raw[1]*1e3:8.1f})   ratio {r['ratio_raw_over_ours']:.2f}× (medians "
          f"{r['median_ratio_raw_over_ours']:.2f}×)   identical top-k: {same}", flush=True)
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="FAISS threads (same for both)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    import faiss

    from retrievers.build import build_retriever

    faiss.omp_set_num_threads(args.threads)
    corpus = SHARED / "corpora" if (SHARED / "corpora").is_dir() else ROOT / "corpora" / "sample"
    qs = queries(args.queries)
    k = args.k
    results = []
    with tempfile.TemporaryDirectory() as cache:
        bm25 = build_retriever({"kind": "bm25", "routing": "all"}, corpus, cache).searcher
        dense = build_retriever({"kind": "dense", "routing": "all"}, corpus, cache).searcher
        print(f"corpus {corpus}: {len(bm25.domains)} chunks; {len(qs)} queries; k={k}; {args.reps} reps")
        domains = sorted(set(bm25.domains.tolist()))
        one_domain = [frozenset([domains[i % len(domains)]]) for i in range(len(qs))]

        # dense: the same FAISS index, the same query vectors
        qv = dense.embed_queries(qs)
        ours, raw = paired(lambda: dense.search_vectors(qv, [None] * len(qs), k), lambda: dense.index.search(qv, k),
                           args.reps)
        same = [[p for p, _ in h] for h in ours[2]] == [[int(j) for j in r if j >= 0] for r in raw[2][1]]
        results.append(row("dense, routing=all", ours, raw, same))
        sel_rows = {d: np.flatnonzero(dense.domains == d) for d in domains}

        def raw_filtered():
            out = [None] * len(qs)
            for d in domains:
                rows = [i for i, a in enumerate(one_domain) if d in a]
                params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(sel_rows[d]))
                _, ids = dense.index.search(qv[rows], k, params=params)
                for r, i in enumerate(rows):
                    out[i] = [int(j) for j in ids[r] if j >= 0]
            return out

        ours_f, raw_f = paired(lambda: dense.search_vectors(qv, one_domain, k), raw_filtered, args.reps)
        same_f = [[p for p, _ in h] for h in ours_f[2]] == raw_f[2]
        results.append(row("dense, one domain per query", ours_f, raw_f, same_f))

        # BM25: the same bm25s model, the same token lists
        toks = [bm25._query_tokens(q) for q in qs]
        keep = [i for i, t in enumerate(toks) if t]
        toks_kept = [toks[i] for i in keep]
        ours_b, raw_b = paired(lambda: bm25.search_tokens(toks, [None] * len(qs), k),
                               lambda: bm25.model.retrieve(toks_kept, k=k, show_progress=False), args.reps)
        ours_ids = [[p for p, _ in ours_b[2][i]] for i in keep]
        raw_ids = [[int(d) for d, s in zip(dr, sr) if s > 0] for dr, sr in zip(*raw_b[2])]
        results.append(row("bm25, routing=all", ours_b, raw_b, ours_ids == raw_ids))

        def raw_bm25_filtered():
            out = {}
            for d in domains:
                rows = [i for i in keep if d in one_domain[i]]
                mask = (bm25.domains == d).astype(np.float32)
                docs, scores = bm25.model.retrieve([toks[i] for i in rows], k=k, show_progress=False,
                                                   weight_mask=mask)
                for r, i in enumerate(rows):
                    out[i] = [int(x) for x, s in zip(docs[r], scores[r]) if s > 0]
            return out

        ours_bf, raw_bf = paired(lambda: bm25.search_tokens(toks, one_domain, k), raw_bm25_filtered, args.reps)
        same_bf = all([p for p, _ in ours_bf[2][i]] == raw_bf[2][i] for i in keep)
        results.append(row("bm25, one domain per query", ours_bf, raw_bf, same_bf))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
