"""MLflow tracking through the Hydra callback: one MLflow run per job, with params, metrics and artifacts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mlflow", reason='MLflow tracking needs the tracking extra: pip install -e ".[tracking]"')

from qualbench.tracking import flat_metrics  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def test_flat_metrics_keeps_finite_numbers_only():
    m = {"accuracy": 0.5, "n": 3, "ci": [0.1, 0.9], "config": {"seed": 1}, "bad": float("nan"),
         "by_type": {"单选题": {"accuracy": 0.25, "n": 2}}, "uses_eval_labels": False, "by_q": {"级（样例）": 1}}
    assert flat_metrics(m) == {"accuracy": 0.5, "n": 3.0, "by_type/单选题/accuracy": 0.25,
                               "by_type/单选题/n": 2.0, "uses_eval_labels": 0.0, "by_q/级_样例_": 1.0}


def test_sweep_jobs_are_logged_with_metrics_params_and_artifacts(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.run(
        [sys.executable, "-m", "qualbench", "-m", "model=random", "model.seed=1,2", "limit=8", "run.plots=false",
         "run.n_boot=10", "hydra/callbacks=mlflow", f"hydra.callbacks.mlflow.tracking_uri={uri}",
         f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("qualbench")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 2
    for run in runs:
        job_dir = Path(run.data.tags["qualbench.run_dir"])
        metrics = json.loads((job_dir / "metrics.json").read_text(encoding="utf-8"))
        assert run.data.metrics["accuracy"] == pytest.approx(metrics["accuracy"])
        assert run.data.params["model.seed"] in {"1", "2"} and run.data.params["task"] == "eval"
        assert run.info.status == "FINISHED" and run.data.tags["uses_eval_labels"] == "false"
        names = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"metrics.json", "report.md", "config.yaml"} <= names
    assert {r.data.params["model.seed"] for r in runs} == {"1", "2"}
