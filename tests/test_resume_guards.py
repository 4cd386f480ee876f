"""Issue 11 item 6: a resume is refused when anything that picks the items or the answers changed (seed, data
file content, corpus content, ...), and a refused resume writes nothing into the run directory."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from qualbench.errors import ConfigError
from qualbench.runner import _check_resume

REPO = Path(__file__).resolve().parents[1]
SAMPLE_CORPUS = REPO / "corpora" / "sample"
KEPT = ("config.yaml", "cleaning_report.json", "dropped.csv", "run_state.json", "predictions.jsonl", "metrics.json",
        "status.json")  # a refused resume never started: the earlier run's status stands (and no failure.json)


def _run(*overrides: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", OMP_NUM_THREADS="2")
    return subprocess.run([sys.executable, "-m", "qualbench", "run.plots=false", "run.n_boot=50", *overrides],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def _digests(run: Path) -> dict[str, str]:
    return {n: hashlib.sha256((run / n).read_bytes()).hexdigest() for n in KEPT}


def _rows(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "predictions.jsonl").read_text(encoding="utf-8").splitlines() if x.strip()]


@pytest.fixture
def data_with_a_drop(small_json) -> Path:
    """small.json plus one record that cleaning drops, so dropped.csv has a row."""
    recs = json.loads(small_json.read_text(encoding="utf-8"))
    recs.append({"idx": 999, "question_type": "单选题", "domain": "消防", "question": "没有选项的题目", "answer": "Z"})
    small_json.write_text(json.dumps(recs, ensure_ascii=False, indent=1), encoding="utf-8")
    return small_json


def _base(data: Path, run: Path) -> list[str]:
    # model.seed is pinned, so `seed` alone decides which items `limit` samples
    return ["model=random", "model.seed=0", "data=qualbench_json", f"data.path={data}", "limit=10",
            f"hydra.run.dir={run}"]


def test_changed_seed_is_refused_and_the_run_dir_is_left_byte_identical(data_with_a_drop, tmp_path):
    run = tmp_path / "run"
    r1 = _run(*_base(data_with_a_drop, run), "seed=0")
    assert r1.returncode == 0, r1.stderr[-3000:]
    assert len((run / "dropped.csv").read_text(encoding="utf-8").splitlines()) == 2  # header + the dropped record
    before = _digests(run)
    r2 = _run(*_base(data_with_a_drop, run), "seed=1")  # another stratified sample of 10 of the 24 items
    assert r2.returncode == 2, r2.stderr[-3000:]
    err = [x for x in r2.stderr.splitlines() if x.startswith("qualbench: error:")]
    assert len(err) == 1 and "different config (changed: seed)" in err[0], r2.stderr[-3000:]
    assert _digests(run) == before  # config.yaml, cleaning_report.json, dropped.csv, ... untouched
    # and a refused resume with another data filter too
    r3 = _run(*_base(data_with_a_drop, run), "seed=0", "data.types=['单选题']")
    assert r3.returncode == 2 and "changed: data" in r3.stderr
    assert _digests(run) == before
    assert not (run / "failure.json").exists()
    assert len(_rows(run)) == 10


def test_edited_data_file_is_refused(small_json, tmp_path):
    run = tmp_path / "run"
    assert _run(*_base(small_json, run)).returncode == 0
    recs = json.loads(small_json.read_text(encoding="utf-8"))
    recs[0]["answer"] = "D" if recs[0]["answer"] != "D" else "A"  # same path, same config, other gold answers
    small_json.write_text(json.dumps(recs, ensure_ascii=False, indent=1), encoding="utf-8")
    before = _digests(run)
    r = _run(*_base(small_json, run))
    assert r.returncode == 2 and "changed: data_sha256" in r.stderr, r.stderr[-3000:]
    assert _digests(run) == before


def test_unchanged_config_resumes_exactly(small_json, tmp_path):
    run, fresh = tmp_path / "run", tmp_path / "fresh"
    assert _run(*_base(small_json, fresh)).returncode == 0
    assert _run(*_base(small_json, run)).returncode == 0
    lines = (run / "predictions.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    (run / "predictions.jsonl").write_text("".join(lines[:4]) + lines[4][:15], encoding="utf-8")  # a crash
    r = _run(*_base(small_json, run))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resuming: 4 of 10 items" in r.stdout + r.stderr
    drop = ("latency_s",)
    got = sorted(({k: v for k, v in x.items() if k not in drop} for x in _rows(run)), key=lambda x: x["idx"])
    want = sorted(({k: v for k, v in x.items() if k not in drop} for x in _rows(fresh)), key=lambda x: x["idx"])
    assert got == want  # the same 10 items, each once, with the answers of an uninterrupted run
    m_run = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    m_fresh = json.loads((fresh / "metrics.json").read_text(encoding="utf-8"))
    assert (m_run["n"], m_run["accuracy"]) == (m_fresh["n"], m_fresh["accuracy"]) == (10, m_fresh["accuracy"])


@pytest.mark.skipif(not SAMPLE_CORPUS.is_dir(), reason="sample corpus not present")
def test_edited_corpus_is_refused_for_a_retrieving_run(small_json, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(SAMPLE_CORPUS, corpus)
    run = tmp_path / "run"
    args = ["data=qualbench_json", f"data.path={small_json}", "limit=6", f"corpus.path={corpus}",
            f"retriever.cache_dir={tmp_path / 'idx'}", "model.show_progress=false", f"hydra.run.dir={run}"]
    r1 = _run(*args)  # the default model: the retrieval answerer over the corpus
    assert r1.returncode == 0, r1.stderr[-3000:]
    state = json.loads((run / "run_state.json").read_text(encoding="utf-8"))["resume_keys"]
    assert len(state["corpus_sha256"]) == 64
    law = sorted((corpus / "fire_safety").glob("*.md"))[0]
    law.write_text(law.read_text(encoding="utf-8") + "\n第九百九十九条 新增的条文。\n", encoding="utf-8")
    before = _digests(run)
    r2 = _run(*args)
    assert r2.returncode == 2 and "changed: corpus_sha256" in r2.stderr, r2.stderr[-3000:]
    assert _digests(run) == before
    # the cache location is not part of what answers: moving it still resumes
    r3 = _run(*args[:-1], f"retriever.cache_dir={tmp_path / 'idx2'}", f"hydra.run.dir={tmp_path / 'run2'}")
    assert r3.returncode == 0


def test_check_resume_rules(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    current = {"data": {"loader": "sample"}, "seed": 1, "data_sha256": "ab"}
    _check_resume(run, current)  # nothing there yet: fine
    (run / "predictions.jsonl").write_text('{"idx": "1"}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="no run_state.json"):
        _check_resume(run, current)
    # a run_state.json written before seed and data_sha256 were compared: those are not compared
    (run / "run_state.json").write_text(json.dumps({"resume_keys": {"data": {"loader": "sample"}}}), encoding="utf-8")
    _check_resume(run, current)
    (run / "run_state.json").write_text(json.dumps({"resume_keys": {**current, "seed": 0}}), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"changed: seed\)"):
        _check_resume(run, current)
    # where the retriever cache lives does not count
    prev = {**current, "retriever": {"kind": "bm25", "cache_dir": "/a"}}
    (run / "run_state.json").write_text(json.dumps({"resume_keys": prev}), encoding="utf-8")
    _check_resume(run, {**current, "retriever": {"kind": "bm25"}})
