"""Job status of a sweep: what each job left in its directory, and which jobs are failed or missing.

Every ``qualbench`` job writes ``status.json`` into its run directory (``running`` at start, then
``completed`` or ``failed``). A failed job also writes ``failure.json``: ``status: failed``, the one-line
error (secrets redacted), the job number, its overrides and its config. A failed job does not end the
sweep: :class:`SweepFailureSummary` (a Hydra callback, registered in ``conf/config.yaml``) prints one line
per failed job when the sweep ends and exits non-zero. ``qualbench-report`` over a sweep root lists failed
jobs and missing ones (expected from ``multirun.yaml`` but without a directory or without a result).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from qualbench.report.sections import Section

log = logging.getLogger(__name__)

STATUS_FILE = "status.json"
FAILURE_FILE = "failure.json"
SWEEP_EXIT_CODE = 1  # a sweep that finished with failed jobs; a single run's bad input stays exit code 2


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, path)


def one_line(err: BaseException) -> str:
    """The error as one redacted line: ``Type: message`` (QualBench errors: the message alone)."""
    from qualbench.errors import QualBenchError
    from qualbench.secrets import redact_text

    text = " ".join(str(err).split()) or type(err).__name__
    if not isinstance(err, QualBenchError):
        text = f"{type(err).__name__}: {text}"
    return redact_text(text)


def job_files(run_dir: Path) -> dict[str, bytes | None]:
    """The bytes of status.json and failure.json (None where absent), to put back with restore_job_files."""
    return {name: (run_dir / name).read_bytes() if (run_dir / name).is_file() else None
            for name in (STATUS_FILE, FAILURE_FILE)}


def restore_job_files(run_dir: Path, saved: dict[str, bytes | None]) -> None:
    for name, data in saved.items():
        if data is None:
            (run_dir / name).unlink(missing_ok=True)
        else:
            (run_dir / name).write_bytes(data)


def mark_running(run_dir: Path, job: dict[str, Any]) -> None:
    """At job start: a stale failure.json from an earlier attempt no longer applies."""
    (run_dir / FAILURE_FILE).unlink(missing_ok=True)
    _write_json(run_dir / STATUS_FILE, {"status": "running", **job, "host": socket.gethostname(),
                                        "pid": os.getpid(), "started": time.strftime("%Y-%m-%dT%H:%M:%S")})


def mark_completed(run_dir: Path, job: dict[str, Any]) -> None:
    _write_json(run_dir / STATUS_FILE, {"status": "completed", **job,
                                        "ended": time.strftime("%Y-%m-%dT%H:%M:%S")})


def mark_failed(run_dir: Path, job: dict[str, Any], err: BaseException, config: Any = None) -> str:
    """Write failure.json and status.json for a job that raised ``err``; return the one-line error."""
    line = one_line(err)
    rec = {"status": "failed", "error": line, "error_type": type(err).__name__, **job,
           "ended": time.strftime("%Y-%m-%dT%H:%M:%S")}
    try:
        _write_json(run_dir / STATUS_FILE, rec)
        _write_json(run_dir / FAILURE_FILE, {**rec, "config": config})
    except OSError as e:  # the failure is still printed and the sweep summary still counts the job
        log.error("%s: could not record the failure (%s)", run_dir, e)
    return line


# ---------------------------------------------------------------------------------------------- reading


@dataclass
class JobState:
    num: int | None
    path: Path
    status: str  # completed | failed | running (interrupted, or still going) | missing
    overrides: list[str] = field(default_factory=list)
    error: str = ""

    def line(self) -> str:
        ov = " ".join(self.overrides) or "—"
        what = {"failed": f"failed: {self.error}", "missing": "missing: no result (job directory absent or empty)",
                "running": "no result: status 'running' (interrupted, or still running)"}.get(self.status, self.status)
        from qualbench.secrets import redact_text

        return redact_text(f"job {self.num if self.num is not None else self.path.name} ({ov}): {what}")


def _read(path: Path) -> dict[str, Any] | None:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        return d if isinstance(d, dict) else None
    except (OSError, ValueError):
        return None


def expected_jobs(sweep_cfg: dict[str, Any]) -> list[list[str]] | None:
    """The override list of every job a basic-sweeper sweep launches (``None`` for other sweepers)."""
    hydra_cfg = sweep_cfg.get("hydra") or {}
    sweeper = hydra_cfg.get("sweeper") or {}
    if "BasicSweeper" not in str(sweeper.get("_target_", "")):
        return None
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    args = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()]
    args += list((hydra_cfg.get("overrides") or {}).get("task") or [])
    try:
        parsed = OverridesParser.create().parse_overrides(args)
        batches = BasicSweeper.split_arguments(parsed, None)
    except Exception as e:  # noqa: BLE001 - a sweep file we cannot parse: fall back to scanning
        log.warning("cannot work out the jobs of the sweep from its overrides (%s)", one_line(e))
        return None
    return [job for batch in batches for job in batch]


def job_states(sweep_root: str | Path, sweep_cfg: dict[str, Any] | None = None) -> list[JobState]:
    """Every job of the sweep rooted at ``sweep_root`` (which holds multirun.yaml), with its status."""
    root = Path(sweep_root)
    if sweep_cfg is None:
        import yaml

        try:
            sweep_cfg = yaml.safe_load((root / "multirun.yaml").read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as e:
            log.warning("%s: multirun.yaml unreadable (%s)", root, e)
            sweep_cfg = {}
    jobs = expected_jobs(sweep_cfg)
    subdir = str(((sweep_cfg.get("hydra") or {}).get("sweep") or {}).get("subdir", "${hydra.job.num}"))
    numbered = subdir.strip() == "${hydra.job.num}"
    states: list[JobState] = []
    seen: set[Path] = set()
    if jobs is not None and numbered:
        for i, ov in enumerate(jobs):
            states.append(_state(root / str(i), i, ov))
            seen.add(root / str(i))
    for d in sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                    key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name)):
        if d not in seen and ((d / STATUS_FILE).exists() or (d / FAILURE_FILE).exists()
                              or (d / "metrics.json").exists()):
            states.append(_state(d, int(d.name) if d.name.isdigit() else None, None))
    if jobs is not None and not numbered:  # job dirs are not named by number: only the count can be checked
        found = sum(s.status != "missing" for s in states)
        for k in range(found, len(jobs)):
            states.append(JobState(None, root / "?", "missing", []))
    return states


def _state(d: Path, num: int | None, overrides: list[str] | None) -> JobState:
    failure = _read(d / FAILURE_FILE)
    status = _read(d / STATUS_FILE) or {}
    ov = overrides if overrides is not None else list((failure or status).get("overrides") or [])
    if failure is not None:
        return JobState(num, d, "failed", ov, str(failure.get("error", "")))
    if status.get("status") == "completed" or (d / "metrics.json").exists():
        return JobState(num, d, "completed", ov)
    if status.get("status") == "running":
        return JobState(num, d, "running", ov)
    return JobState(num, d, "missing", ov)


def sweep_roots(paths: Sequence[str | Path]) -> list[Path]:
    """Sweep roots (folders holding multirun.yaml) at or below ``paths``."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_file():
            p = p.parent
        if not p.is_dir():
            continue
        for m in ([p / "multirun.yaml"] if (p / "multirun.yaml").exists() else []) + sorted(p.rglob("*/multirun.yaml")):
            if m.parent.resolve() not in {r.resolve() for r in out}:
                out.append(m.parent)
    return out


def problem_jobs(paths: Sequence[str | Path]) -> list[JobState]:
    """Failed, interrupted and missing jobs of every sweep at or below ``paths``."""
    return [s for r in sweep_roots(paths) for s in job_states(r) if s.status != "completed"]


def job_records(problems: Sequence[JobState]) -> list[dict[str, Any]]:
    """The failed/missing jobs as the report's ``files["jobs"]`` entries (read back by :func:`summary_lines`)."""
    return [{"job": s.num, "dir": str(s.path), "status": s.status, "overrides": s.overrides, "error": s.error}
            for s in problems]


def jobs_section(problems: Sequence[JobState]) -> Section | None:
    """The report section listing failed and missing jobs (a Markdown table); None when there are none."""
    from qualbench.secrets import redact_text

    if not problems:
        return None
    n_failed = sum(s.status == "failed" for s in problems)
    lines = ["| job | dir | overrides | status |", "|---|---|---|---|"]
    for s in problems:
        what = s.error if s.status == "failed" else s.status
        cells = [str(s.num if s.num is not None else "?"), str(s.path), " ".join(s.overrides) or "—",
                 f"{s.status}: {what}" if s.status == "failed" else what]
        lines.append(redact_text("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"))
    return Section(f"Jobs without results ({n_failed} failed, {len(problems) - n_failed} missing or interrupted)",
                   markdown="\n".join(lines))


def summary_lines(records: Sequence[dict[str, Any]]) -> list[str]:
    """For the console: a count of failed / missing jobs, then one line per job (from ``files["jobs"]``)."""
    if not records:
        return []
    states = [JobState(r["job"], Path(r["dir"]), r["status"], list(r["overrides"]), r["error"]) for r in records]
    n_failed = sum(s.status == "failed" for s in states)
    return ([f"sweep jobs without results: {n_failed} failed, {len(states) - n_failed} missing or interrupted"]
            + [f"  {s.line()}" for s in states])


# ------------------------------------------------------------------------------------- Hydra callback


try:
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover - hydra-core < 1.1
    Callback = object  # type: ignore[misc,assignment]


class SweepFailureSummary(Callback):  # type: ignore[misc]
    """At the end of a multirun: one line per job that failed (or left no result), then exit non-zero."""

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        from qualbench.secrets import collect_secrets

        root = Path(str(config.hydra.sweep.dir))
        if not root.is_dir():
            return
        collect_secrets(list(config.hydra.overrides.task))  # joblib/ray jobs registered them in other processes
        states = job_states(root)  # multirun.yaml as the jobs left it (secrets already rewritten)
        bad = [s for s in states if s.status != "completed"]
        if not bad:
            return
        total = len(states)
        print(f"qualbench: {len(bad)} of {total} sweep job(s) did not finish ({root}):", file=sys.stderr)
        for s in bad:
            print(f"  {s.line()}", file=sys.stderr)
        sys.stderr.flush()
        sys.exit(SWEEP_EXIT_CODE)
