"""The ``qualbench`` Hydra app: compose a config, run its task in Hydra's run directory."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from qualbench.config import PROJECT_ROOT, register_configs
from qualbench.secrets import collect_secrets, install_log_redaction, redact_text, redact_yaml_file

log = logging.getLogger("qualbench")

register_configs()
install_log_redaction()  # records made before the job starts (Hydra's launcher) are redacted too

HYDRA_FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")


def protect_outputs(cfg: DictConfig) -> None:
    """Before the task runs: register the config's secrets, redact every log record (Hydra's ``app.log``
    included), and rewrite the files Hydra already wrote (``.hydra/*.yaml``, a sweep's ``multirun.yaml``)."""
    hc = HydraConfig.get()
    collect_secrets(cfg)
    collect_secrets(list(hc.overrides.task))  # e.g. a key in URL userinfo typed on the command line
    install_log_redaction()  # Hydra re-creates the handlers for every job
    if hc.output_subdir is not None:
        for name in HYDRA_FILES:
            redact_yaml_file(Path(hc.runtime.output_dir) / hc.output_subdir / name)
    if hc.mode == RunMode.MULTIRUN:
        redact_yaml_file(Path(hc.sweep.dir) / "multirun.yaml")


@hydra.main(version_base="1.3", config_path=str(PROJECT_ROOT / "conf"), config_name="config")
def _main(cfg: DictConfig) -> float | None:
    from qualbench.errors import QualBenchError, ResumeRefused
    from qualbench.report.jobs import job_files, mark_completed, mark_failed, mark_running, restore_job_files
    from qualbench.runlock import RunDirLocked, run_dir_lock
    from qualbench.tasks import get_task

    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    multirun = hc.mode == RunMode.MULTIRUN
    protect_outputs(cfg)
    job = {"job": hc.job.num if multirun else None, "task": str(cfg.get("task")),
           "overrides": [redact_text(o) for o in hc.overrides.task]}
    try:
        with run_dir_lock(run_dir):  # one run per directory; refused at once, touching nothing, if held
            before = job_files(run_dir)
            mark_running(run_dir, job)
            try:
                metrics = get_task(cfg.task)(cfg, run_dir)
            except ResumeRefused:
                restore_job_files(run_dir, before)  # the earlier run's status stands: this one never started
                raise
            except Exception as e:  # noqa: BLE001 - recorded for the sweep summary and the report, then handled
                line = mark_failed(run_dir, job, e, _job_config(cfg))
                if not isinstance(e, QualBenchError):
                    line = config_error_line(e)  # a missing or ill-typed value: a config mistake, one line
                    if line is None:
                        raise  # a bug: the traceback is shown
                raise QualBenchError(line) from None
            mark_completed(run_dir, job)
    except QualBenchError as e:  # a clear message, no traceback, for bad input / broken servers / a busy dir
        line = redact_text(" ".join(str(e).split()))
        log.error("%s", line)
        print(f"qualbench: error: {line}", file=sys.stderr)
        if not multirun:
            sys.exit(2)
        if isinstance(e, RunDirLocked):
            log.error("job %s was not run: its directory is held by another run", hc.job.num)
        # a failed job does not end the sweep: the later jobs run, and the sweep ends with one line per
        # failed job and a non-zero exit (qualbench.report.jobs.SweepFailureSummary); NaN marks the job
        # failed for sweepers that read the return value (Optuna)
        return float("nan")
    if isinstance(metrics, dict) and "objective" in metrics and metrics["objective"] is None:
        return float("nan")  # e.g. too few cited items: a sweeper marks the trial failed instead of ranking it
    value = metrics.get("objective", metrics.get("accuracy")) if isinstance(metrics, dict) else None
    return float(value) if value is not None else None


def _job_config(cfg: DictConfig) -> object:
    """The job's config for failure.json, secrets removed (unresolved if it does not resolve)."""
    from omegaconf import OmegaConf

    from qualbench.secrets import redact

    try:
        return redact(OmegaConf.to_container(cfg, resolve=True))
    except Exception:  # noqa: BLE001 - the failure may be the config itself
        return redact(OmegaConf.to_container(cfg, resolve=False))


def main() -> None:
    """Console entry point: command-line checks and ``--help`` run before Hydra composes anything."""
    from qualbench.cli_checks import UsageError, check_overrides, help_text

    argv = sys.argv[1:]
    if "--help" in argv or "-h" in argv:
        print(help_text())
        return
    try:
        check_overrides(argv)
    except UsageError as e:
        print(f"qualbench: error: {e}", file=sys.stderr)
        sys.exit(2)
    user_full_error = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra re-raises; config mistakes become one line below, bugs keep tracebacks
    try:
        _main()
    except Exception as e:
        line = config_error_line(e)
        if line is None or user_full_error:
            raise
        print(f"qualbench: error: {redact_text(line)}", file=sys.stderr)
        sys.exit(2)


def config_error_line(e: BaseException) -> str | None:
    """One line for a config mistake (unknown key, wrong type, missing value, bad override); None for a bug."""
    from hydra.errors import HydraException
    from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

    if not isinstance(e, (HydraException, OmegaConfBaseException)):
        return None
    parts: list[str] = []
    for err in (e, e.__cause__):
        if err is None:
            continue
        for text in str(err).splitlines():
            text = text.strip()
            if text and not text.startswith(("full_key:", "object_type=", "reference_type=")) and text not in parts:
                parts.append(text)
    if isinstance(e, MissingMandatoryValue) or isinstance(e.__cause__, MissingMandatoryValue):
        key = getattr(e, "full_key", None) or getattr(e.__cause__, "full_key", None)
        if key:
            parts.append(f"set it on the command line: {key}=...")
    return "; ".join(parts) or type(e).__name__


if __name__ == "__main__":
    main()
