"""The ``retrieval_eval`` task: does the retriever find the laws and articles an item's explanation cites?

Gold = citations parsed from each item's explanation (``retrievers.citations``) that resolve to a corpus law.
Query = the question as shown to a model (stem and options), searched with the item's domain (as routing
allows). Scored with ``retrievers.metrics`` (ir_measures underneath), one definition per measure:
law recall@k = share of the cited laws among the laws of the **first k passages** (what a top-k RAG prompt
shows), each k cut on its own, so it does not depend on which other ks are asked for; article recall@k the
same at article level (title#article number); MRR@depth = 1/(passage rank) of the first passage from a cited
law within ``study.mrr_depth`` passages (null: max(ks)). ``n_cited`` (items with a resolved citation) stands
beside every recall; below ``study.min_cited`` a warning is logged and no sweep objective is returned.
The ``study`` keys and their defaults: ``RetrievalEvalStudy`` (``qualbench/study_config.py``).
Writes ``metrics.json``, ``report.md``, ``retrieval.jsonl``.
"""

from __future__ import annotations

import json
import logging
import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig, OmegaConf

from qualbench.data import load_dataset
from qualbench.errors import ConfigError
from qualbench.formatting import MISSING_MARK
from qualbench.records import Question
from qualbench.results import write_result
from qualbench.study_config import RetrievalEvalStudy, study_settings
from retrievers import metrics as M
from retrievers.citations import Citation, TitleResolver, article_id, manifest_aliases, parse_citations

log = logging.getLogger(__name__)

GOLD_SOURCES = ("explanation", "stem")
_TITLE_SPAN = re.compile(r"《[^》]{1,60}》")


def gold_citations(items: Sequence[Question], resolver: TitleResolver, source: str) -> dict[str, list[Citation]]:
    """Parsed citations of every item (unresolved ones included, with ``title=None``): from the explanation,
    or (``source="stem"``) from the question itself, for banks whose questions name the law they ask about."""
    return {q.idx: parse_citations(q.explanation if source == "explanation" else q.text, resolver) for q in items}


def query_text(item: Question, source: str) -> str:
    """The search query: the question as a model sees it; with gold from the stem, every 《title》 is masked
    (replaced by 《》) so the retriever must find the law from the question's content, not its name."""
    return item.text if source == "explanation" else _TITLE_SPAN.sub("《》", item.text)


def qrels_from(citations: dict[str, list[Citation]]) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]]:
    """Law-level and article-level qrels from resolved citations."""
    law: dict[str, dict[str, int]] = {}
    art: dict[str, dict[str, int]] = {}
    for qid, cites in citations.items():
        laws = {c.law_id: 1 for c in cites if c.law_id}
        arts = {c.article_id: 1 for c in cites if c.article_id}
        if laws:
            law[qid] = laws
        if arts:
            art[qid] = arts
    return law, art


def passage_results(docs_by_qid: dict[str, list[Any]]) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, Any]]]:
    """``{qid: {chunk_id: score}}`` in rank order, plus each chunk's metadata."""
    results: dict[str, dict[str, float]] = {}
    meta: dict[str, dict[str, Any]] = {}
    for qid, docs in docs_by_qid.items():
        row: dict[str, float] = {}
        n = len(docs)
        for r, d in enumerate(docs):
            md = d.metadata or {}
            cid = str(md.get("chunk_id") or d.id or f"{md.get('law_title')}#{md.get('article_num')}#{r}")
            # the retriever's rank order is what counts (scores of hybrid fusion are not comparable)
            row.setdefault(cid, float(n - r))
            meta[cid] = md
        results[qid] = row
    return results, meta


def _law_label(meta: dict[str, dict[str, Any]]):
    return lambda cid: meta[cid].get("law_title") or None


def _article_label(meta: dict[str, dict[str, Any]]):
    def label(cid: str) -> str | None:
        m = meta[cid]
        if not m.get("law_title") or m.get("article_num") is None:
            return None
        return article_id(m["law_title"], int(m["article_num"]))

    return label


def score(
    results: dict[str, dict[str, float]],
    meta: dict[str, dict[str, Any]],
    law_qrels: dict[str, dict[str, int]],
    art_qrels: dict[str, dict[str, int]],
    ks: Sequence[int],
    depth: int,
) -> dict[str, Any]:
    """Law/article recall@k (first k passages) and MRR@depth (passage rank) for one set of queries."""
    law = M.evaluate_labels(results, law_qrels, _law_label(meta), ks, depth)
    art = M.evaluate_labels(results, art_qrels, _article_label(meta), ks, depth)
    return {
        "n_cited": law["n"],
        "n_law_queries": law["n"],
        "n_article_queries": art["n"],
        "law_recall": law["recall"],
        "article_recall": art["recall"],
        "mrr": law["mrr"],
        "article_mrr": art["mrr"],
        "mrr_depth": law["mrr_depth"],
    }


def _subset(d: dict[str, Any], keep: set[str]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k in keep}


def evaluate_items(
    items: Sequence[Question], retriever: Any, resolver: TitleResolver, ks: Sequence[int], depth: int | None,
    gold_from: str,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Metrics (overall and by domain) and one row per item for ``retrieval.jsonl``; ``depth`` None: max(ks)."""
    if gold_from not in GOLD_SOURCES:
        raise ConfigError(f"retrieval_eval study.gold_from must be one of {GOLD_SOURCES}, got {gold_from!r}")
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] <= 0:
        raise ConfigError(f"retrieval_eval ks must be positive integers, got {ks}")
    depth = int(depth or max(ks))
    if depth <= 0:
        raise ConfigError(f"retrieval_eval study.mrr_depth must be a positive integer, got {depth}")
    cites = gold_citations(items, resolver, gold_from)
    law_q, art_q = qrels_from(cites)
    with_cite = [q for q in items if q.idx in law_q]
    docs = retriever.search_batch([query_text(q, gold_from) for q in with_cite], [q.domain for q in with_cite], k=max(max(ks), depth)) if with_cite else []
    results, meta = passage_results({q.idx: d for q, d in zip(with_cite, docs)})
    overall = score(results, meta, law_q, art_q, ks, depth)
    n_parsed = sum(1 for q in items if cites[q.idx])
    out: dict[str, Any] = {
        "n": len(items),
        "n_with_citation": len(with_cite),
        "share_with_citation": len(with_cite) / len(items) if items else 0.0,
        "n_with_article": len(art_q),
        "n_cited_outside_corpus": n_parsed - len(with_cite),
        "ks": ks,
        "gold_from": gold_from,
        **overall,
        "by_domain": {},
    }
    by_domain: dict[str, list[Question]] = defaultdict(list)
    for q in items:
        by_domain[q.domain].append(q)
    for dom, qs in sorted(by_domain.items()):
        keep = {q.idx for q in qs}
        sub = score(_subset(results, keep), meta, _subset(law_q, keep), _subset(art_q, keep), ks, depth)
        out["by_domain"][dom] = {"n": len(qs), "n_with_citation": sum(1 for q in qs if q.idx in law_q), **sub}
    rows = []
    law_res = M.project(results, _law_label(meta))
    for q in items:
        rows.append({
            "idx": q.idx,
            "domain": q.domain,
            "citations": [{"cited": c.cited, "title": c.title, "article_num": c.article_num} for c in cites[q.idx]],
            "retrieved_laws": list(M.ranked(law_res.get(q.idx, {}))),
            "retrieved": [
                f"{meta[c].get('law_title', '')}{meta[c].get('article', '')}" for c in M.ranked(results.get(q.idx, {}))
            ],
        })
    return out, rows


def _fmt(v: float | None) -> str:
    return MISSING_MARK if v is None else f"{v:.3f}"


def metrics_markdown(m: dict[str, Any], title: str) -> str:
    """The report table: overall and per-domain law/article recall@k and MRR."""
    ks = [str(k) for k in m["ks"]]
    head = (["scope", "n", "n_cited"] + [f"law R@{k}" for k in ks] + [f"art R@{k}" for k in ks]
            + [f"MRR@{m.get('mrr_depth', max(m['ks']))}"])
    lines = [f"# {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def row(name: str, d: dict[str, Any]) -> str:
        cells = [name, str(d["n"]), str(d["n_with_citation"])]
        cells += [_fmt(d["law_recall"][k]) for k in ks] + [_fmt(d["article_recall"][k]) for k in ks]
        cells.append(_fmt(d["mrr"]))
        return "| " + " | ".join(cells) + " |"

    lines.append(row("**all**", m))
    for dom, d in m["by_domain"].items():
        lines.append(row(dom, d))
    lines += [
        "",
        f"Items with a citation that resolves to a corpus law: {m['n_with_citation']}/{m['n']} "
        f"({m['share_with_citation']:.1%}); with an article number: {m['n_with_article']}; "
        f"citing only laws outside the corpus: {m['n_cited_outside_corpus']}.",
        "Recall@k: share of cited laws (articles) among the laws (articles) of the first k retrieved passages, "
        "each k on its own. MRR@d: 1/(passage rank) of the first passage from a cited law within d passages.",
    ]
    if m.get("objective_withheld"):
        lines.append(f"**Only {m['n_with_citation']} cited items (< study.min_cited={m['min_cited']}): "
                     "too few to compare retrievers; no sweep objective was returned.**")
    return "\n".join(lines) + "\n"


def run_retrieval_eval(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Task entry point: ``qualbench experiment=retrieval_eval [data=... corpus=... retriever=...]``."""
    from qualbench.runner import build_retriever, data_config, resolved_config

    study = study_settings(cfg, RetrievalEvalStudy)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg_plain = resolved_config(cfg)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(cfg_plain)), encoding="utf-8")
    items = load_dataset(data_config(cfg), seed=cfg.seed)
    if not items:
        raise ConfigError("retrieval_eval: no items after loading and filtering the data")
    retriever = build_retriever(cfg)
    titles = {c.metadata["law_title"] for c in retriever.chunks if c.metadata.get("law_title")}
    resolver = TitleResolver(titles, manifest_aliases(cfg.corpus.path))
    metrics, rows = evaluate_items(items, retriever, resolver, study.ks, study.mrr_depth, study.gold_from)
    metrics.update({
        "retriever": cfg.retriever.kind,
        "routing": cfg.retriever.routing,
        "corpus": cfg.corpus.name,
        "data": cfg.data.name,
    })
    k_obj = "5" if "5" in metrics["law_recall"] else str(metrics["ks"][-1])
    metrics["objective_metric"] = f"law_recall@{k_obj}"
    metrics["min_cited"] = study.min_cited
    metrics["objective_withheld"] = metrics["n_with_citation"] < study.min_cited
    metrics["objective"] = None if metrics["objective_withheld"] else metrics["law_recall"][k_obj]
    if metrics["objective_withheld"]:
        log.warning("retrieval_eval: only %d of %d items cite a corpus law (< study.min_cited=%d): recall is "
                    "reported but not returned as a sweep objective", metrics["n_with_citation"], metrics["n"],
                    study.min_cited)
    metrics = write_result(run_dir, "retrieval_eval", metrics)
    title = f"Retrieval: {metrics['retriever']} (routing={metrics['routing']}) on {metrics['data']} / {metrics['corpus']}"
    (run_dir / "report.md").write_text(metrics_markdown(metrics, title), encoding="utf-8")
    with open(run_dir / "retrieval.jsonl", "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    log.info("retrieval_eval: law recall@%s %s, MRR@%d %s on %d cited items → %s", k_obj,
             _fmt(metrics["law_recall"][k_obj]), metrics["mrr_depth"], _fmt(metrics["mrr"]),
             metrics["n_with_citation"], run_dir)
    return metrics
