"""Retrieval metrics on hand-made cases, citation-recall evaluation with a real BM25 retriever, and the task."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qualbench.records import JUDGE, SINGLE, Question
from qualbench.results import SCHEMA_VERSION
from qualbench.retrieval_eval import evaluate_items, metrics_markdown
from retrievers import metrics as M
from retrievers.citations import TitleResolver

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_CORPUS = ROOT / "corpora" / "sample"


# ---- metrics on hand-made results ---------------------------------------------------------------------
RESULTS = {"q1": {"a": 3.0, "b": 2.0, "c": 1.0}, "q2": {"x": 5.0, "y": 4.0}, "q3": {"a": 1.0}}
QRELS = {"q1": {"b": 1, "d": 1}, "q2": {"x": 1}, "q3": {"z": 0}}  # q3 has no relevant doc: left out


def test_recall_mrr_hit():
    assert M.recall_at_k(RESULTS, QRELS, 1) == {"q1": 0.0, "q2": 1.0}
    assert M.recall_at_k(RESULTS, QRELS, 2) == {"q1": 0.5, "q2": 1.0}
    assert M.hit_at_k(RESULTS, QRELS, 1) == {"q1": 0.0, "q2": 1.0}
    assert M.reciprocal_rank(RESULTS, QRELS) == {"q1": 0.5, "q2": 1.0}
    assert M.reciprocal_rank(RESULTS, QRELS, k=1) == {"q1": 0.0, "q2": 1.0}
    ev = M.evaluate(RESULTS, QRELS, ks=(1, 2))
    assert ev == {"recall": {"1": 0.5, "2": 0.75}, "mrr": 0.75, "mrr_depth": 2, "n": 2}
    assert M.mean({}) is None
    # a query missing from results counts as a miss
    assert M.recall_at_k({}, {"q": {"a": 1}}, 5) == {"q": 0.0}


def test_ranked_ties_keep_order_and_project():
    assert M.ranked({"b": 1.0, "a": 1.0, "c": 2.0}) == ["c", "b", "a"]
    law = {"p1": "L1", "p2": "L2", "p3": "L1", "p4": None}
    proj = M.project({"q": {"p1": 0.9, "p2": 0.8, "p3": 0.7, "p4": 0.95}}, law.get)
    assert proj == {"q": {"L1": 0.9, "L2": 0.8}}


# ---- evaluation with a real retriever --------------------------------------------------------------------

def _item(idx, stem, explanation, domain="安全生产", qtype=JUDGE, options=None, answer="正确"):
    return Question(idx=idx, question_type=qtype, domain=domain, stem=stem, options=options or {},
                    answer=answer, explanation=explanation)


def test_evaluate_items_hand_made(sample_retriever):
    titles = {c.metadata["law_title"] for c in sample_retriever.chunks}
    resolver = TitleResolver(titles)
    items = [
        # the wording of 安全生产法 第二十四条 (sample summary): should be found at rank 1
        _item("1", "矿山、金属冶炼、建筑施工、运输单位必须设安全管理机构或配专职安全管理人员，从业人员超过一百人的同样要求。",
              "依据《安全生产法》第二十四条。"),
        _item("2", "烟花爆竹的安全管理要求。", "见《建筑施工安全检查标准》。", domain="消防"),  # outside the corpus
        _item("3", "生产经营单位的主要负责人是本单位安全生产第一责任人。", ""),  # no citation
        _item("4", "下列说法正确的是（ ）。", "《消防法》第十六条", domain="消防", qtype=SINGLE,
              options={"A": "单位应当每年对建筑消防设施至少全面检测一次", "B": "无需检测"}, answer="A"),
    ]
    m, rows = evaluate_items(items, sample_retriever, resolver, ks=(1, 3, 5), depth=None, gold_from="explanation")
    assert m["n"] == 4 and m["n_with_citation"] == 2 and m["n_cited_outside_corpus"] == 1
    assert m["share_with_citation"] == 0.5
    assert set(m["law_recall"]) == {"1", "3", "5"} and set(m["article_recall"]) == {"1", "3", "5"}
    for v in list(m["law_recall"].values()) + list(m["article_recall"].values()):
        assert 0.0 <= v <= 1.0
    assert m["law_recall"]["1"] <= m["law_recall"]["3"] <= m["law_recall"]["5"]
    first = next(r for r in rows if r["idx"] == "1")
    assert first["retrieved_laws"][0] == "中华人民共和国安全生产法"
    assert first["citations"] == [{"cited": "安全生产法", "title": "中华人民共和国安全生产法", "article_num": 24}]
    assert set(m["by_domain"]) == {"安全生产", "消防"}
    assert m["by_domain"]["安全生产"]["law_recall"]["1"] == 1.0
    assert m["by_domain"]["安全生产"]["n"] == 2 and m["by_domain"]["安全生产"]["n_with_citation"] == 1
    table = metrics_markdown(m, "t")
    assert "| **all** | 4 | 2 |" in table and "law R@5" in table


def test_task_through_the_app(tmp_path):
    if not SAMPLE_CORPUS.is_dir():
        pytest.skip("sample corpus not present")
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "qualbench", "experiment=retrieval_eval", "task=retrieval_eval", "corpus=sample",
           "data=sample", f"retriever.cache_dir={tmp_path / 'idx'}", f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    for key in ("n", "n_with_citation", "law_recall", "article_recall", "mrr", "by_domain"):
        assert key in m
    assert set(m["law_recall"]) == {"1", "3", "5", "10"}
    assert m["n"] > 100 and m["n_with_citation"] > 0.5 * m["n"]  # sample explanations cite laws
    # sample items paraphrase the sample corpus: the cited law should usually be in the top 5
    assert m["law_recall"]["5"] > 0.5
    assert "| **all** |" in (run_dir / "report.md").read_text(encoding="utf-8")
    assert (run_dir / "retrieval.jsonl").stat().st_size > 0
    assert m["task"] == "retrieval_eval" and m["schema_version"] == SCHEMA_VERSION
    from qualbench.report.build import build_report  # the report lists the run in its retrieval table

    files = build_report([run_dir], tmp_path / "report", n_boot=10)
    assert files["retrieval_runs"] == [str(run_dir)] and files["runs"] == []
    table = (tmp_path / "report" / "retrieval.md").read_text(encoding="utf-8")
    assert "law R@5 %" in table and f"{100 * m['law_recall']['5']:.1f}" in table
    assert "## Retrieval (1 runs" in (tmp_path / "report" / "report.md").read_text(encoding="utf-8")


# ---- one definition of law recall@k: the laws of the first k passages ---------------------------------
PASSAGES = {  # passage -> law; q1's ranking repeats law L1 before reaching L2
    "p1": "L1", "p2": "L1", "p3": "L1", "p4": "L3", "p5": "L2", "p6": "L4", "p7": "L2",
}
P_RESULTS = {"q1": {f"p{i}": 10.0 - i for i in range(1, 8)}, "q2": {"p5": 2.0, "p1": 1.0}, "q3": {}}
LAW_QRELS = {"q1": {"L2": 1}, "q2": {"L2": 1, "L1": 1}, "q3": {"L4": 1}}


def _by_hand(k: int) -> dict[str, float]:
    out = {}
    for q, rels in LAW_QRELS.items():
        seen = {PASSAGES[p] for p in list(P_RESULTS[q])[:k]}
        out[q] = len(seen & set(rels)) / len(rels)
    return out


def test_law_recall_at_k_is_cut_at_k_passages_independently_of_other_ks():
    label = PASSAGES.get
    for k in (1, 3, 4, 5, 7):
        assert M.label_recall_at_k(P_RESULTS, LAW_QRELS, label, k) == _by_hand(k)
    # recall@5 does not depend on which other cut-offs are requested
    only5 = M.evaluate_labels(P_RESULTS, LAW_QRELS, label, ks=[5])["recall"]["5"]
    many = M.evaluate_labels(P_RESULTS, LAW_QRELS, label, ks=[1, 3, 5, 10, 20])["recall"]
    assert only5 == many["5"] == pytest.approx((1 + 1 + 0) / 3)
    assert [many[k] for k in ("1", "3", "5", "10", "20")] == sorted(many.values())  # monotone in k
    # MRR@depth by passage rank: q1's first L2 passage is p5 (rank 5), q2's is rank 1, q3 has none
    assert M.label_reciprocal_rank(P_RESULTS, LAW_QRELS, label, 10) == {"q1": 0.2, "q2": 1.0, "q3": 0.0}
    assert M.label_reciprocal_rank(P_RESULTS, LAW_QRELS, label, 4) == {"q1": 0.0, "q2": 1.0, "q3": 0.0}


def test_metrics_agree_with_trec_eval_conventions_of_ir_measures():
    import ir_measures
    from ir_measures import RR, Qrel, R, ScoredDoc

    judged = {q: rels for q, rels in QRELS.items() if any(r > 0 for r in rels.values())}  # q3 left out, as BEIR does
    qrels = [Qrel(q, d, r) for q, rels in judged.items() for d, r in rels.items()]
    run = [ScoredDoc(q, d, s) for q, docs in RESULTS.items() for d, s in docs.items()]
    agg = ir_measures.calc_aggregate([R @ 2, RR @ 2], qrels, run)
    ev = M.evaluate(RESULTS, QRELS, ks=(2,), depth=2)
    assert ev["recall"]["2"] == pytest.approx(agg[R @ 2]) and ev["mrr"] == pytest.approx(agg[RR @ 2])


def test_too_few_cited_items_withhold_the_sweep_objective(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "qualbench", "experiment=retrieval_eval", "limit=12", "study.min_cited=50",
         f"hydra.run.dir={tmp_path}"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))
    assert m["n_cited"] == m["n_with_citation"] == 12 and m["objective_withheld"] and m["objective"] is None
    assert m["law_recall"]["5"] is not None and m["mrr_depth"] == 10
    assert "no sweep objective" in (tmp_path / "report.md").read_text(encoding="utf-8")


def test_gold_from_stem_masks_the_law_name_in_the_query():
    from qualbench.retrieval_eval import gold_citations, query_text

    q = Question(idx="s1", question_type=JUDGE, domain="消防", stem="根据《中华人民共和国消防法》第十条，单位应当履行消防安全职责。",
                 options={}, answer="正确", explanation="")
    resolver = TitleResolver({"中华人民共和国消防法"})
    assert gold_citations([q], resolver, "explanation")["s1"] == []  # no explanation: nothing cited
    (cite,) = gold_citations([q], resolver, "stem")["s1"]
    assert cite.title == "中华人民共和国消防法" and cite.article_num == 10
    masked = query_text(q, "stem")
    assert "消防法" not in masked and "《》第十条" in masked and query_text(q, "explanation") == q.text
    with pytest.raises(Exception, match="gold_from"):
        evaluate_items([q], None, resolver, ks=[5], depth=None, gold_from="title")
