"""The eval loop end to end: the Hydra app, run-directory outputs, and resume after a crash."""

from __future__ import annotations

import json

import pytest

from helpers.cli import run_app
from qualbench.data import load_dataset
from qualbench.models.random_baseline import RandomModel
from qualbench.predictions import read_predictions
from qualbench.prompts.render import PromptConfig
from qualbench.records import Request
from qualbench.evaluation import evaluate


class CrashingModel(RandomModel):
    """Fails on the n-th batch, like a backend whose server died mid-run."""

    def __init__(self, seed: int, crash_on_batch: int) -> None:
        super().__init__(seed)
        self.calls = 0
        self.crash_on_batch = crash_on_batch
        self.seen: list[str] = []

    def generate(self, requests: list[Request]):
        self.calls += 1
        if self.calls == self.crash_on_batch:
            raise RuntimeError("server went away")
        self.seen.extend(r.item.idx for r in requests)
        return super().generate(requests)


def test_resume_after_crash_recomputes_nothing(small_json, tmp_path):
    items = load_dataset({"loader": "qualbench_json", "path": str(small_json)})
    run = tmp_path / "run"
    m1 = CrashingModel(0, crash_on_batch=3)
    with pytest.raises(RuntimeError):
        evaluate(items, m1, PromptConfig(), run, batch_size=5)
    first = read_predictions(run / "predictions.jsonl")
    assert len(first) == 10  # two full batches were written before the crash
    # simulate a crash in the middle of writing a line
    with (run / "predictions.jsonl").open("a", encoding="utf-8") as f:
        f.write('{"idx": "10", "domain": "石')
    m2 = CrashingModel(0, crash_on_batch=-1)
    preds = evaluate(items, m2, PromptConfig(), run, batch_size=5)
    assert sorted(m2.seen) == sorted(q.idx for q in items[10:])  # nothing already written is recomputed
    assert [p["idx"] for p in preds] == [q.idx for q in items]
    lines = (run / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 24 and all(json.loads(x) for x in lines)
    # the same seed gives the same answers whether or not the run was interrupted
    fresh = evaluate(items, RandomModel(0), PromptConfig(), tmp_path / "fresh", batch_size=24)
    assert [p["prediction"] for p in preds] == [p["prediction"] for p in fresh]


def test_app_random_on_file_writes_run_dir(small_json, tmp_path):
    out = tmp_path / "out"
    r = run_app("model=random", "data=qualbench_json", f"data.path={small_json}", f"hydra.run.dir={out}", "seed=1")
    assert r.returncode == 0, r.stderr[-3000:]
    for name in ("predictions.jsonl", "metrics.json", "report.md", "by_domain.png", "config.yaml", "cleaning_report.json"):
        assert (out / name).exists(), name
    m = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    for key in ("n", "n_unparsed", "accuracy", "accuracy_ci95", "macro_accuracy", "exam_score", "by_domain", "by_type", "config"):
        assert key in m
    assert m["n"] == 24 and 0 <= m["accuracy"] <= 1
    assert set(m["by_domain"]) == {"安全生产", "消防", "石油天然气", "建筑工程", "经济金融", "银行保险"}
    assert m["by_type"]["判断题"]["n"] == 12
    lines = [json.loads(x) for x in (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {"idx", "domain", "question_type", "answer", "prediction", "correct", "raw"} <= set(lines[0])
    acc = sum(x["correct"] for x in lines) / len(lines)
    assert m["accuracy"] == pytest.approx(acc)
    # re-running into the same directory resumes: nothing recomputed, same metrics
    r2 = run_app("model=random", "data=qualbench_json", f"data.path={small_json}", f"hydra.run.dir={out}", "seed=1")
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert len((out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()) == 24
    # a different config into the same directory is refused with a clear message
    r3 = run_app("model=random", "data=qualbench_json", f"data.path={small_json}", f"hydra.run.dir={out}", "model.seed=9")
    assert r3.returncode == 2 and "different config" in r3.stderr


def test_app_bad_input_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('[{"idx": 1, "question_type": "单选题"', encoding="utf-8")
    r = run_app("model=random", "data=qualbench_json", f"data.path={bad}", f"hydra.run.dir={tmp_path / 'o'}")
    assert r.returncode == 2
    assert "bad.json:1" in r.stderr and "Traceback" not in r.stderr


def test_multirun_over_seeds(small_json, tmp_path):
    sweep = tmp_path / "sweep"
    r = run_app("-m", "model=random", "data=qualbench_json", f"data.path={small_json}", "seed=0,1",
                 f"hydra.sweep.dir={sweep}")
    assert r.returncode == 0, r.stderr[-3000:]
    accs = [json.loads((sweep / str(i) / "metrics.json").read_text(encoding="utf-8"))["accuracy"] for i in (0, 1)]
    assert len(accs) == 2


def test_random_baseline_is_seeded_and_uniform():
    from qualbench.records import Question

    q = Question("1", "多选题", "消防", "题", {"A": "a", "B": "b", "C": "c", "D": "d"}, "AB")
    answers = {RandomModel(s).answer(Request(q, [])) for s in range(400)}
    assert len(answers) == 15  # every non-empty subset of 4 options shows up
    assert RandomModel(3).answer(Request(q, [])) == RandomModel(3).answer(Request(q, []))


def test_each_prediction_line_is_a_per_sample_log(tmp_path):
    """As lm-eval's --log_samples: the rendered messages, the RAG passage ids and the settings hash per line."""
    from qualbench.evaluation import settings_hash

    runs = []
    for name, cache in (("a", tmp_path / "cache1"), ("b", tmp_path / "cache2")):
        proc = run_app("model=random", "prompt=rag", "limit=6", f"retriever.cache_dir={cache}",
                        f"hydra.run.dir={tmp_path / name}", "run.plots=false", "run.n_boot=10")
        assert proc.returncode == 0, proc.stderr[-2000:]
        runs.append(list(read_predictions(tmp_path / name / "predictions.jsonl")))
    a, b = runs
    assert len(a) == 6
    for row in a:
        user = row["messages"][-1]["content"]
        assert row["messages"][-1]["role"] == "user" and user
        assert len(row["passage_ids"]) == 5 and all(row["passage_ids"])  # retriever.top_k passages
        assert row["settings_hash"] and len(row["settings_hash"]) == 16
    # where the index is cached does not change what was asked; the prompt does
    assert {r["settings_hash"] for r in a} == {r["settings_hash"] for r in b}
    cfg = {"model": {"seed": 0}, "prompt": {"name": "rag"}, "retriever": {"top_k": 5, "cache_dir": "x"}}
    assert settings_hash(cfg, True) == settings_hash({**cfg, "retriever": {"top_k": 5, "cache_dir": "y"}}, True)
    assert settings_hash(cfg, True) != settings_hash({**cfg, "retriever": {"top_k": 3}}, True)
    assert settings_hash(cfg, False) != settings_hash({**cfg, "prompt": {"name": "cot"}}, False)


def test_default_experiment_writes_rule_label_mark_and_references(tmp_path):
    """The default experiment (retrieval answerer on the bundled sample): exam-score rule, label mark and
    reference rows in metrics.json, checked against values computed here from the items themselves."""
    from collections import Counter

    out = tmp_path / "default"
    r = run_app(f"hydra.run.dir={out}")
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert m["uses_eval_labels"] is False  # calibration=sample: fitted on the bundled set minus evaluated items
    rule = m["exam_score_rule"]
    assert rule["multi_partial"] == "none" and rule["points"] == {"单选题": 1.0, "多选题": 2.0, "判断题": 1.0}
    lines = [json.loads(x) for x in (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    pts = {"单选题": 1.0, "多选题": 2.0, "判断题": 1.0}
    assert m["exam_points_max"] == sum(pts[x["question_type"]] for x in lines)
    assert m["exam_points"] == sum(pts[x["question_type"]] * x["correct"] for x in lines)  # none: exact or 0
    assert m["exam_score"] == pytest.approx(m["exam_points"] / m["exam_points_max"])
    # references, recomputed from the evaluated items
    items = load_dataset({"loader": "sample", "name": "sample"})
    chance, gold = {}, {}
    for q in items:
        n = len(q.options)
        chance.setdefault(q.question_type, []).append(
            {"单选题": 1 / max(n, 1), "多选题": 1 / (2**n - 1) if n else 0, "判断题": 0.5}[q.question_type])
        gold.setdefault(q.question_type, []).append(q.answer)
    refs = m["references"]
    assert refs["chance"]["reads_labels"] is False and refs["majority"]["reads_labels"] is True
    for t in chance:
        assert refs["chance"]["by_type"][t]["accuracy"] == pytest.approx(sum(chance[t]) / len(chance[t]))
        answer, count = Counter(gold[t]).most_common(1)[0]
        assert refs["majority"]["by_type"][t]["accuracy"] == pytest.approx(count / len(gold[t]))
        assert refs["majority"]["by_type"][t]["n"] == m["by_type"][t]["n"]
    assert refs["chance"]["accuracy"] == pytest.approx(sum(map(sum, chance.values())) / len(items))
    # the flags agree with the numbers
    for t, v in m["by_type"].items():
        for name in ("chance", "majority"):
            below = v["accuracy"] < refs[name]["by_type"][t]["accuracy"]
            assert (name in m["below_reference"]["by_type"].get(t, [])) == below
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "### Reference rows" in report and "| exam score rule | multi_partial=none;" in report
    assert "| uses eval labels | no |" in report


def test_label_mark_and_scoring_overrides(small_json, tmp_path):
    out = tmp_path / "crossfit"
    r = run_app("model.calibration=crossfit", "model.folds=2", f"hydra.run.dir={out}", "run.plots=false")
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert m["uses_eval_labels"] is True
    assert "**YES: this model read the evaluated items' labels**" in (out / "report.md").read_text(encoding="utf-8")
    # a stated rule: half credit, 多选题 worth 4 points; recorded, and applied to every prediction line
    out = tmp_path / "half"
    r = run_app("model=random", "data=qualbench_json", f"data.path={small_json}", f"hydra.run.dir={out}",
                 "scoring.multi_partial=half", "scoring.points.multi=4", "run.plots=false")
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert m["uses_eval_labels"] is False
    assert m["exam_score_rule"]["multi_partial"] == "half"
    assert m["exam_score_rule"]["points"] == {"单选题": 1.0, "多选题": 4.0, "判断题": 1.0}
    lines = [json.loads(x) for x in (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    pts = {"单选题": 1.0, "多选题": 4.0, "判断题": 1.0}
    for x in lines:
        subset = x["question_type"] == "多选题" and x["prediction"] and set(x["prediction"]) < set(x["answer"])
        assert x["exam_score"] == (1.0 if x["correct"] else 0.5 if subset else 0.0)
    assert any(x["exam_score"] == 0.5 for x in lines)  # this seed draws 少选 answers, so half credit is used
    assert m["exam_points"] == pytest.approx(sum(pts[x["question_type"]] * x["exam_score"] for x in lines))
    # typos and bad points stop the run with one line, no traceback
    bad = run_app("model=random", f"hydra.run.dir={tmp_path / 'bad'}", "scoring.multi_partial=halff")
    assert bad.returncode != 0 and "Invalid value 'halff'" in bad.stderr and "Traceback" not in bad.stderr
    bad = run_app("model=random", f"hydra.run.dir={tmp_path / 'bad2'}", "scoring.points.multi=0")
    assert bad.returncode == 2 and "points must be a positive number" in bad.stderr
    assert "Traceback" not in bad.stderr
