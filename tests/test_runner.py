"""The eval loop end to end: the Hydra app, run-directory outputs, and resume after a crash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from qualbench.data import load_dataset
from qualbench.models.random_baseline import RandomModel
from qualbench.predictions import read_predictions
from qualbench.prompts.render import PromptConfig
from qualbench.records import Request
from qualbench.runner import evaluate

REPO = Path(__file__).resolve().parents[1]


def _run_app(*overrides: str, cwd: Path | None = None, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "qualbench", *overrides],
        cwd=cwd or REPO, env=env, capture_output=True, text=True, timeout=600,
    )


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
    r = _run_app("model=random", "data=qualbench_json", f"data.path={small_json}", f"hydra.run.dir={out}", "seed=1")
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
    r2 = _run_app("model=random", "data=qualbench_json", f"data.path={small_json}", f"hydra.run.dir={out}", "seed=1")
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert len((out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()) == 24
    # a different config into the same directory is refused with a clear message
    r3 = _run_app("model=random", "data=qualbench_json", f"data.path={small_json}", f"hydra.run.dir={out}", "model.seed=9")
    assert r3.returncode == 2 and "different config" in r3.stderr


def test_app_bad_input_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('[{"idx": 1, "question_type": "单选题"', encoding="utf-8")
    r = _run_app("model=random", "data=qualbench_json", f"data.path={bad}", f"hydra.run.dir={tmp_path / 'o'}")
    assert r.returncode == 2
    assert "bad.json:1" in r.stderr and "Traceback" not in r.stderr


def test_multirun_over_seeds(small_json, tmp_path):
    sweep = tmp_path / "sweep"
    r = _run_app("-m", "model=random", "data=qualbench_json", f"data.path={small_json}", "seed=0,1",
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
