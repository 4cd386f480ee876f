"""BEIR-style retrieval metrics on plain dicts, computed with ``ir_measures`` (trec_eval underneath).

``results`` = ``{qid: {doc_id: score}}`` (higher is better; ties keep insertion order, i.e. the retriever's
rank), ``qrels`` = ``{qid: {doc_id: relevance}}`` (relevance > 0 counts as relevant). Queries without relevant
documents are left out of every average; a query with no results scores 0.

One definition, whatever other cut-offs are asked for:

* ``recall_at_k`` — share of a query's relevant docs among its first ``k`` results;
* ``label_recall_at_k`` — share of a query's relevant *labels* (laws, articles) among the labels of its first
  ``k`` **passages**: what a top-k RAG prompt shows. Each k cuts the passage ranking on its own;
* ``reciprocal_rank`` (MRR@depth) — 1/rank of the first relevant doc within ``depth``;
  ``label_reciprocal_rank`` — 1/(passage rank) of the first passage carrying a relevant label.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping

import ir_measures
from ir_measures import RR, R, Qrel, ScoredDoc

Results = Mapping[str, Mapping[str, float]]
Qrels = Mapping[str, Mapping[str, int]]
Label = Callable[[str], "str | None"]


def ranked(scores: Mapping[str, float]) -> list[str]:
    """Doc ids by descending score; ties keep insertion order (i.e. the retriever's rank)."""
    order = {d: i for i, d in enumerate(scores)}
    return sorted(scores, key=lambda d: (-scores[d], order[d]))


def _relevant(rels: Mapping[str, int]) -> set[str]:
    return {d for d, r in rels.items() if r > 0}


def _by_query(measure: object, results: Results, qrels: Qrels) -> dict[str, float]:
    """Per-query values of one ir_measures measure; every judged query gets a value (0 without results)."""
    judged = {q for q, rels in qrels.items() if _relevant(rels)}
    qrel_rows = [Qrel(q, d, int(r)) for q in judged for d, r in qrels[q].items()]
    run_rows = []
    for q in judged:
        docs = ranked(results.get(q, {}))
        # trec_eval breaks score ties by doc id: give strictly decreasing scores in rank order instead
        run_rows += [ScoredDoc(q, d, float(len(docs) - i)) for i, d in enumerate(docs)]
    out = {q: 0.0 for q in judged}
    for m in ir_measures.iter_calc([measure], qrel_rows, run_rows):
        out[m.query_id] = float(m.value)
    return out


def recall_at_k(results: Results, qrels: Qrels, k: int) -> dict[str, float]:
    """Per-query share of relevant docs found among the top ``k``."""
    return _by_query(R @ int(k), results, qrels)


def hit_at_k(results: Results, qrels: Qrels, k: int) -> dict[str, float]:
    """Per-query 1.0 if any relevant doc is among the top ``k``, else 0.0 (``ir_measures`` Success@k)."""
    return _by_query(ir_measures.Success @ int(k), results, qrels)


def reciprocal_rank(results: Results, qrels: Qrels, k: int | None = None) -> dict[str, float]:
    """Per-query 1/rank of the first relevant doc (0 if none within ``k``; no cut-off when ``k`` is None)."""
    return _by_query(RR @ int(k) if k else RR, results, qrels)


def cut(results: Results, k: int) -> dict[str, dict[str, float]]:
    """The first ``k`` results of every query."""
    return {q: {d: s[d] for d in ranked(s)[:k]} for q, s in results.items()}


def project(results: Results, label: Label) -> dict[str, dict[str, float]]:
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


def label_recall_at_k(results: Results, label_qrels: Qrels, label: Label, k: int) -> dict[str, float]:
    """Per-query share of relevant labels among the labels of the first ``k`` passages."""
    projected = project(cut(results, k), label)
    return _by_query(R @ max(1, int(k)), projected, label_qrels)  # ≤ k labels, so R@k counts all of them


def label_reciprocal_rank(results: Results, label_qrels: Qrels, label: Label, depth: int) -> dict[str, float]:
    """Per-query 1/(passage rank) of the first passage whose label is relevant, within ``depth`` passages."""
    passage_qrels: dict[str, dict[str, int]] = {}
    for q, rels in label_qrels.items():
        gold = _relevant(rels)
        if gold:
            hits = {d: 1 for d in results.get(q, {}) if label(d) in gold}
            passage_qrels[q] = hits or {"\x00none": 1}  # judged, nothing retrieved is relevant → 0
    return _by_query(RR @ int(depth), results, passage_qrels)


def mean(values: Mapping[str, float] | Iterable[float]) -> float | None:
    """Average of per-query values; None when there are none."""
    vals = list(values.values()) if isinstance(values, Mapping) else list(values)
    return sum(vals) / len(vals) if vals else None


def evaluate(results: Results, qrels: Qrels, ks: Iterable[int] = (1, 3, 5, 10),
             depth: int | None = None) -> dict[str, object]:
    """``{"recall": {"k": value}, "mrr": value, "mrr_depth": d, "n": queries with relevant docs}``."""
    ks = sorted({int(k) for k in ks})
    depth = int(depth or (max(ks) if ks else 10))
    return {
        "recall": {str(k): mean(recall_at_k(results, qrels, k)) for k in ks},
        "mrr": mean(reciprocal_rank(results, qrels, depth)),
        "mrr_depth": depth,
        "n": sum(1 for r in qrels.values() if _relevant(r)),
    }


def evaluate_labels(results: Results, label_qrels: Qrels, label: Label, ks: Iterable[int] = (1, 3, 5, 10),
                    depth: int | None = None) -> dict[str, object]:
    """Label-level (law / article) recall@k over the first k passages and MRR@depth by passage rank."""
    ks = sorted({int(k) for k in ks})
    depth = int(depth or (max(ks) if ks else 10))
    return {
        "recall": {str(k): mean(label_recall_at_k(results, label_qrels, label, k)) for k in ks},
        "mrr": mean(label_reciprocal_rank(results, label_qrels, label, depth)),
        "mrr_depth": depth,
        "n": sum(1 for r in label_qrels.values() if _relevant(r)),
    }
