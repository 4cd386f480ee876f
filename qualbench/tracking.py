"""Experiment tracking: a Hydra callback that logs each job's params, metrics and artifacts to MLflow.

    qualbench hydra/callbacks=mlflow                      # local store: ./mlruns/mlflow.db (+ artifacts)
    qualbench hydra/callbacks=mlflow hydra.callbacks.mlflow.tracking_uri=http://mlflow:5000

Every job of a sweep becomes one MLflow run (params = the job's overrides and the chosen groups; metrics =
the numbers in the job's ``metrics.json``; artifacts = metrics.json, report.md, config.yaml, plots). A job
that failed is logged with status FAILED. Needs the ``tracking`` extra (``mlflow-skinny``).
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)

ARTIFACTS = ("metrics.json", "report.md", "config.yaml", "by_domain.png", "failure.json")
SKIP_KEYS = {"config", "cleaning", "references_config"}


def metric_name(name: str) -> str:
    """MLflow accepts letters, digits, ``_ - . : /`` and spaces in names; anything else becomes ``_``."""
    return re.sub(r"[^\w\-. :/]", "_", name)[:250]


def flat_metrics(metrics: dict[str, Any], prefix: str = "", depth: int = 2) -> dict[str, float]:
    """Finite numbers of a metrics.json as MLflow metric names (``by_type/单选题/accuracy``); lists skipped."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if key in SKIP_KEYS:
            continue
        name = metric_name(f"{prefix}{key}")
        if isinstance(value, bool):
            out[name] = float(value)
        elif isinstance(value, (int, float)) and math.isfinite(float(value)):
            out[name] = float(value)
        elif isinstance(value, dict) and depth > 0:
            out.update(flat_metrics(value, f"{name}/", depth - 1))
    return out


def job_params(config: DictConfig, overrides: list[str]) -> dict[str, str]:
    """The job's command-line overrides plus the names of its model, data and prompt (secrets redacted)."""
    from qualbench.secrets import redact_text

    params: dict[str, str] = {}
    for section in ("task", "model.name", "data.name", "prompt.name", "retriever.kind", "seed"):
        node: Any = config
        for part in section.split("."):
            node = node.get(part) if hasattr(node, "get") else None
        if node is not None:
            params[section] = str(node)
    for ov in overrides:
        key, _, value = ov.partition("=")
        params[key.lstrip("+~")] = value
    return {k[:250]: redact_text(v)[:6000] for k, v in params.items()}


class MLflowCallback(Callback):
    """Log every finished (or failed) job to MLflow; tracking problems are warnings, never a failed job."""

    def __init__(self, tracking_uri: str | None = None, experiment: str = "qualbench", log_artifacts: bool = True):
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.log_artifacts = log_artifacts

    def _uri(self) -> tuple[str, str | None]:
        if self.tracking_uri:
            return self.tracking_uri, None
        root = Path.cwd() / "mlruns"
        root.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{root / 'mlflow.db'}", (root / "artifacts").as_uri()

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        try:
            self._log(config, job_return)
        except ImportError:
            log.warning('hydra/callbacks=mlflow needs mlflow: pip install -e ".[tracking]"')
        except Exception as e:  # noqa: BLE001 - a tracking server being down must not fail the job
            log.warning("MLflow tracking failed: %s", e)

    def _log(self, config: DictConfig, job_return: JobReturn) -> None:
        from mlflow.entities import Metric
        from mlflow.tracking import MlflowClient

        logging.getLogger("mlflow").setLevel(logging.WARNING)  # its store set-up INFO lines
        run_dir = Path(config.hydra.runtime.output_dir)
        uri, artifact_root = self._uri()
        client = MlflowClient(uri)
        exp = client.get_experiment_by_name(self.experiment)
        exp_id = exp.experiment_id if exp else client.create_experiment(self.experiment, artifact_location=artifact_root)
        name = "/".join(run_dir.parts[-2:])  # <time>/<job num> in a sweep, <task>/<time> for one run
        run = client.create_run(exp_id, run_name=name, tags={"qualbench.run_dir": str(run_dir)})
        rid = run.info.run_id
        for key, value in job_params(config, list(job_return.overrides or [])).items():
            client.log_param(rid, key, value)
        metrics_file = run_dir / "metrics.json"
        if metrics_file.exists():
            metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
            ts = int(time.time() * 1000)
            batch = [Metric(k, v, ts, 0) for k, v in flat_metrics(metrics).items()]
            for i in range(0, len(batch), 900):
                client.log_batch(rid, metrics=batch[i : i + 900])
            client.set_tag(rid, "uses_eval_labels", str(bool(metrics.get("uses_eval_labels", False))).lower())
        if self.log_artifacts:
            for fname in ARTIFACTS:
                if (run_dir / fname).exists():
                    client.log_artifact(rid, str(run_dir / fname))
        ok = job_return.status == JobStatus.COMPLETED
        client.set_terminated(rid, status="FINISHED" if ok else "FAILED")
        log.info("MLflow: logged %s as run %s (%s)", run_dir, rid, uri)
