"""Retrieval metrics on hand-made cases, citation-recall evaluation with a real BM25 retriever, and the task."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qualbench.records import JUDGE, SINGLE, Question
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
    assert ev == {"recall": {"1": 0.5, "2": 0.75}, "mrr": 0.75, "n": 2}
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
    m, rows = evaluate_items(items, sample_retriever, resolver, ks=(1, 3, 5))
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
