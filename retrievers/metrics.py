"""BEIR-style retrieval metrics on plain dicts.

``results`` = ``{qid: {doc_id: score}}`` (higher is better), ``qrels`` = ``{qid: {doc_id: relevance}}``
(relevance > 0 counts as relevant). Queries without relevant documents are left out of every average.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping

Results = Mapping[str, Mapping[str, float]]
Qrels = Mapping[str, Mapping[str, int]]


def ranked(scores: Mapping[str, float]) -> list[str]:
    """Doc ids by descending score; ties keep insertion order (i.e. the retriever's rank)."""
    order = {d: i for i, d in enumerate(scores)}
    return sorted(scores, key=lambda d: (-scores[d], order[d]))


def _relevant(rels: Mapping[str, int]) -> set[str]:
    return {d for d, r in rels.items() if r > 0}


def recall_at_k(results: Results, qrels: Qrels, k: int) -> dict[str, float]:
    """Per-query share of relevant docs found among the top ``k``."""
    out: dict[str, float] = {}
    for qid, rels in qrels.items():
        rel = _relevant(rels)
        if not rel:
            continue
        top = set(ranked(results.get(qid, {}))[:k])
        out[qid] = len(rel & top) / len(rel)
    return out


def hit_at_k(results: Results, qrels: Qrels, k: int) -> dict[str, float]:
    """Per-query 1.0 if any relevant doc is among the top ``k``, else 0.0."""
    out: dict[str, float] = {}
    for qid, rels in qrels.items():
        rel = _relevant(rels)
        if rel:
            out[qid] = float(bool(rel & set(ranked(results.get(qid, {}))[:k])))
    return out


def reciprocal_rank(results: Results, qrels: Qrels, k: int | None = None) -> dict[str, float]:
    """Per-query 1/rank of the first relevant doc (0 if none within ``k``)."""
    out: dict[str, float] = {}
    for qid, rels in qrels.items():
        rel = _relevant(rels)
        if not rel:
            continue
        docs = ranked(results.get(qid, {}))
        if k is not None:
            docs = docs[:k]
        out[qid] = next((1.0 / i for i, d in enumerate(docs, 1) if d in rel), 0.0)
    return out


def mean(values: Mapping[str, float] | Iterable[float]) -> float | None:
    """Average of per-query values; None when there are none."""
    vals = list(values.values()) if isinstance(values, Mapping) else list(values)
    return sum(vals) / len(vals) if vals else None


def project(results: Results, label: Callable[[str], str | None]) -> dict[str, dict[str, float]]:
    """Map passage-level results to a coarser level (law, article): each label keeps its best passage score.

    Passages whose label is None are dropped. Ties keep the passage order.
    """
    out: dict[str, dict[str, float]] = {}
    for qid, scores in results.items():
        agg: dict[str, float] = {}
        for doc in ranked(scores):
            lab = label(doc)
            if lab is not None and lab not in agg:
                agg[lab] = scores[doc]
        out[qid] = agg
    return out


def evaluate(results: Results, qrels: Qrels, ks: Iterable[int] = (1, 3, 5, 10)) -> dict[str, object]:
    """``{"recall": {"k": value}, "mrr": value, "n": queries with relevant docs}`` averaged over queries."""
    ks = list(ks)
    return {
        "recall": {str(k): mean(recall_at_k(results, qrels, k)) for k in ks},
        "mrr": mean(reciprocal_rank(results, qrels, max(ks) if ks else None)),
        "n": sum(1 for r in qrels.values() if _relevant(r)),
    }
