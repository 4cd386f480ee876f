"""Issue 11 item 4: one failed job does not end a Hydra sweep; it is recorded, summarised and reported."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _env(**extra: str) -> dict[str, str]:
    return dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", OMP_NUM_THREADS="2", **extra)


def _qualbench(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    flags = [a for a in args if a == "-m"]  # --multirun goes before the overrides
    args = tuple(a for a in args if a != "-m")
    return subprocess.run([sys.executable, "-m", "qualbench", *flags, "run.plots=false", "run.n_boot=50", *args], cwd=REPO,
                          env=env or _env(), capture_output=True, text=True, timeout=600)


def _report(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qualbench.report.cli", *args], cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=600)


@pytest.fixture
def good_and_bad(small_json, tmp_path) -> tuple[Path, Path]:
    bad = tmp_path / "bad.json"
    bad.write_text('[{"idx": 1, "question_type": "单选题"', encoding="utf-8")  # cut off: a DataError naming bad.json:1
    return small_json, bad


@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_failed_job_does_not_end_the_sweep(good_and_bad, tmp_path, launcher):
    good, bad = good_and_bad
    sweep = tmp_path / "sweep"
    extra = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"] if launcher == "joblib" else []
    r = _qualbench("-m", *extra, "model=random", "data=qualbench_json", f"data.path={good},{bad},{good}",
                   f"hydra.sweep.dir={sweep}")
    assert r.returncode == 1, r.stderr[-3000:]  # before: job 2's sys.exit ended the sweep; job 3 never ran
    for job in (0, 2):
        assert json.loads((sweep / str(job) / "metrics.json").read_text(encoding="utf-8"))["n"] == 24
        assert json.loads((sweep / str(job) / "status.json").read_text(encoding="utf-8"))["status"] == "completed"
        assert not (sweep / str(job) / "failure.json").exists()
    failure = json.loads((sweep / "1" / "failure.json").read_text(encoding="utf-8"))
    assert failure["status"] == "failed" and failure["job"] == 1 and failure["error_type"] == "DataError"
    assert "bad.json:1" in failure["error"] and "\n" not in failure["error"]
    assert f"data.path={bad}" in failure["overrides"]
    assert failure["config"]["data"]["path"] == str(bad)
    assert not (sweep / "1" / "metrics.json").exists()
    # at the end: one line per failed job, after every job ran
    tail = r.stderr[r.stderr.index("qualbench: 1 of 3 sweep job(s) did not finish"):].splitlines()
    assert tail[1].startswith("  job 1 (") and f"data.path={bad}" in tail[1] and "failed: " in tail[1]
    assert "bad.json:1" in tail[1] and len(tail) == 2
    assert "Traceback" not in r.stderr


def test_report_lists_failed_and_missing_jobs(good_and_bad, tmp_path):
    good, bad = good_and_bad
    sweep = tmp_path / "sweep"
    r = _qualbench("-m", "model=random", "data=qualbench_json", f"data.path={good},{bad}", "seed=0,1",
                   f"hydra.sweep.dir={sweep}")
    assert r.returncode == 1, r.stderr[-3000:]
    # jobs: 0 good/seed0, 1 good/seed1, 2 bad/seed0, 3 bad/seed1; a job whose directory is lost (e.g. a node
    # that died before writing anything) is expected from multirun.yaml all the same
    shutil.rmtree(sweep / "1")
    out = tmp_path / "rep"
    rep = _report(str(sweep), "--out", str(out))
    assert rep.returncode == 0, rep.stderr[-3000:]
    assert "1 run(s)" in rep.stdout  # before: only this line, no word of the other three jobs
    assert "sweep jobs without results: 2 failed, 1 missing or interrupted" in rep.stdout
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "## Jobs without results (2 failed, 1 missing or interrupted)" in md
    row = {line.split("|")[1].strip(): line for line in md.splitlines() if line.startswith("| ") and "sweep" in line}
    assert set(row) == {"1", "2", "3"}
    assert "missing" in row["1"] and f"data.path={good}" in row["1"] and "seed=1" in row["1"]
    assert "failed: " in row["2"] and "bad.json:1" in row["2"] and "seed=0" in row["2"]
    assert "Jobs without results" in (out / "report.html").read_text(encoding="utf-8")
    # a sweep where every job failed still gets a report (before: "no run directories")
    (sweep / "0" / "metrics.json").unlink()
    (sweep / "0" / "status.json").unlink()
    rep2 = _report(str(sweep), "--out", str(tmp_path / "rep2"))
    assert rep2.returncode == 0 and "0 run(s)" in rep2.stdout and "2 failed, 2 missing" in rep2.stdout


def test_failure_records_and_summary_are_redacted(good_and_bad, tmp_path):
    good, _ = good_and_bad
    canary = f"qb{uuid.uuid4().hex}"
    missing = tmp_path / f"nope-{canary}.json"
    sweep = tmp_path / "sweep"
    # job 0: connection refused (a ModelError); job 1: the data file is missing, its name holds the key
    r = _qualbench("-m", "model=openai", "model.name=m", "model.base_url=http://127.0.0.1:9/v1", "model.max_retries=0",
                   "model.api_key_env=QB_SWEEP_KEY", "data=qualbench_json", f"data.path={good},{missing}",
                   f"hydra.sweep.dir={sweep}", env=_env(QB_SWEEP_KEY=canary))
    assert r.returncode == 1, r.stderr[-3000:]
    assert "2 of 2 sweep job(s) did not finish" in r.stderr and "job 1 (" in r.stderr
    assert "nope-***REDACTED***.json" in r.stderr  # the error line is there, the key is not
    rep = _report(str(sweep), "--out", str(tmp_path / "rep"))
    assert "2 failed" in rep.stdout
    assert canary not in r.stdout + r.stderr + rep.stdout + rep.stderr
    for f in list(sweep.rglob("*")) + list((tmp_path / "rep").rglob("*")):
        if f.is_file():
            assert canary.encode() not in f.read_bytes(), f


def test_single_run_keeps_exit_code_2_and_records_the_failure(good_and_bad, tmp_path):
    _, bad = good_and_bad
    run = tmp_path / "run"
    r = _qualbench("model=random", "data=qualbench_json", f"data.path={bad}", f"hydra.run.dir={run}")
    assert r.returncode == 2
    errors = [x for x in r.stderr.splitlines() if x.startswith("qualbench: error:")]
    assert len(errors) == 1 and "bad.json:1" in errors[0] and "Traceback" not in r.stderr
    failure = json.loads((run / "failure.json").read_text(encoding="utf-8"))
    assert failure["status"] == "failed" and failure["job"] is None and failure["error"] in errors[0]
    # a later successful run into the directory clears the stale failure
    r2 = _qualbench("model=random", "data=qualbench_json", f"data.path={good_and_bad[0]}", f"hydra.run.dir={run}")
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert not (run / "failure.json").exists()
    assert json.loads((run / "status.json").read_text(encoding="utf-8"))["status"] == "completed"
