"""Index build time against a plain build, and how builds scale with the corpus.

    python -m benchmarks.bench_build [--reps 3] [--sizes 1 10 50] [--queries 1000]

Corpus: ``../shared/corpora`` (86 laws) when present, else the bundled sample corpus.

1. Ratios at 1× (in one process, jieba's dictionary loaded before any timing, min/median of ``--reps``, the
   three builds interleaved in each repetition):
   ``build_retriever(kind=bm25)`` from the corpus folder (read, parse, chunk, tokenise, index, save, hash)
   against a plain ``jieba.lcut`` + ``bm25s.BM25().index`` over the same chunk texts held in memory; and
   ``build_retriever(kind=dense)`` (LSA + FAISS flat) against the BM25 build.
2. Scaling: the corpus replicated ``--sizes`` times (each file copied under another name, so every chunk is
   distinct), each kind built in a fresh child process: build seconds, peak RSS of the child, and batched
   search queries/s (routing=all, k=10) at each size.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def corpus_root() -> Path:
    return SHARED / "corpora" if (SHARED / "corpora").is_dir() else ROOT / "corpora" / "sample"


def replicate(src: Path, times: int, dst: Path) -> Path:
    for f in sorted(p for p in src.rglob("*") if p.is_file() and p.suffix in (".md", ".txt")):
        rel = f.relative_to(src)
        for i in range(times if rel.parent != Path(".") else 1):  # notes at the root (SOURCES.md): once
            out = dst / rel.parent / (f.name if i == 0 else f"{f.stem}_r{i}{f.suffix}")
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, out)
    return dst


def queries(n: int) -> list[str]:
    texts: list[str] = []
    for f in sorted((SHARED / "exams").glob("*.json")) if (SHARED / "exams").is_dir() else []:
        texts += [str(r["question"]) for r in json.loads(f.read_text(encoding="utf-8"))]
    texts = texts or ["生产经营单位的主要负责人对本单位安全生产工作负有哪些职责？"]
    return (texts * (n // len(texts) + 1))[:n]


def child(corpus: Path, kind: str, n_queries: int) -> None:
    """Build one index in this (fresh) process; print its build time, peak RSS and search speed as JSON."""
    from retrievers.build import build_retriever

    qs = queries(n_queries)
    with tempfile.TemporaryDirectory() as cache:
        t = time.perf_counter()
        r = build_retriever({"kind": kind, "routing": "all"}, corpus, cache)
        build_s = time.perf_counter() - t
        r.search_batch(qs[:10], k=10)  # warm
        t = time.perf_counter()
        r.search_batch(qs, k=10)
        search_s = time.perf_counter() - t
    print(json.dumps({"kind": kind, "n_chunks": len(r.chunks), "build_s": build_s,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "search_qps": len(qs) / search_s}))


def ratios(reps: int) -> dict:
    import bm25s
    import jieba

    from retrievers.build import build_retriever
    from retrievers.tokenize import jieba_words

    jieba.setLogLevel(60)
    jieba.initialize()
    jieba_words("预热")  # our tokenizer's own jieba instance, loaded before timing too
    root = corpus_root()
    with tempfile.TemporaryDirectory() as c:
        texts = [ch.text for ch in build_retriever({"kind": "bm25"}, root, c).chunks]

    def plain():
        bm25s.BM25().index([jieba.lcut(t) for t in texts], show_progress=False)

    def ours(kind):
        def run():
            with tempfile.TemporaryDirectory() as cache:
                build_retriever({"kind": kind}, root, cache)
        return run

    runs = (("plain jieba + bm25s", plain), ("ours bm25", ours("bm25")), ("ours dense", ours("dense")))
    times: dict[str, list[float]] = {name: [] for name, _ in runs}
    for _ in range(reps):  # interleaved, so a machine that slows down mid-run slows every build alike
        for name, fn in runs:
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    out = {name: (min(ts), statistics.median(ts)) for name, ts in times.items()}
    for name in out:
        print(f"{name:22s} min {out[name][0]:6.2f} s   median {out[name][1]:6.2f} s   ({len(texts)} chunks)",
              flush=True)
    bm, pl, de = out["ours bm25"], out["plain jieba + bm25s"], out["ours dense"]
    print(f"BM25 build / plain build: {bm[0] / pl[0]:.2f}× (medians {bm[1] / pl[1]:.2f}×)   "
          f"dense build / BM25 build: {de[0] / bm[0]:.2f}× (medians {de[1] / bm[1]:.2f}×)", flush=True)
    return {k: {"min_s": v[0], "median_s": v[1]} for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--sizes", type=int, nargs="*", default=[1, 10, 50])
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--child", nargs=2, metavar=("CORPUS", "KIND"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(Path(args.child[0]), args.child[1], args.queries)
    result = {"ratios": ratios(args.reps), "scaling": []}
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            corpus = replicate(corpus_root(), size, Path(tmp) / "corpus")
            for kind in ("bm25", "dense"):
                p = subprocess.run([sys.executable, "-m", "benchmarks.bench_build", "--child", str(corpus), kind,
                                    "--queries", str(args.queries)], cwd=ROOT, capture_output=True, text=True)
                if p.returncode != 0:
                    print(f"{size}× {kind}: failed: {p.stderr.strip().splitlines()[-1:]}")
                    continue
                r = json.loads(p.stdout.strip().splitlines()[-1])
                r["size"] = size
                result["scaling"].append(r)
                print(f"{size:3d}× {kind:5s} {r['n_chunks']:7d} chunks   build {r['build_s']:7.1f} s   "
                      f"peak RSS {r['peak_rss_mib']:7.0f} MiB   search {r['search_qps']:7.0f} q/s", flush=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
