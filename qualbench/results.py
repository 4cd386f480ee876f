"""What every task writes: one stated shape per results file, stamped with its ``task`` and ``schema_version``.

Every results file is a JSON object written through :func:`write_result` (atomically: temp file + rename, non-finite
floats as ``null``) and read back through :func:`read_result`, which checks the stamp and the required keys and
names the file in a one-line error. ``qualbench-report`` reads results only through this module.

| task | file | required keys (besides ``task``, ``schema_version``) |
|---|---|---|
| ``eval``, ``federated`` | ``metrics.json`` | :data:`METRICS_KEYS` (``compute_metrics`` + run description) |
| ``retrieval_eval`` | ``metrics.json`` | :data:`RETRIEVAL_KEYS` |
| ``crowd`` | ``crowd.json`` | :data:`CROWD_KEYS` |
| ``contamination`` | ``contamination.json`` | :data:`CONTAMINATION_KEYS` |
| ``federated_summary`` | ``summary.json`` | :data:`SUMMARY_KEYS` |

A federated run also keeps ``history.json`` (its resume record: one :class:`RoundRecord` per completed round) and
``rounds.jsonl`` (one line per round: :meth:`RoundRecord.curve_row`, what the report draws).
Files written before the stamp existed (no ``schema_version``) are read as version 0, their task taken from the
file name and contents.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from qualbench.errors import DataError

SCHEMA_VERSION = 1

METRICS = "metrics.json"
PREDICTIONS = "predictions.jsonl"
HISTORY = "history.json"
ROUNDS = "rounds.jsonl"

METRICS_KEYS = ("n", "accuracy", "accuracy_ci95", "exam_score", "by_domain", "by_type", "model", "data")
RETRIEVAL_KEYS = ("n", "n_with_citation", "ks", "law_recall", "mrr", "mrr_depth", "retriever", "corpus", "data")
CROWD_KEYS = ("n_scored", "methods", "workers")
CONTAMINATION_KEYS = ("n", "overall", "by_domain", "by_type", "letter_memory", "shuffle_plan")
SUMMARY_KEYS = ("mode", "strategy", "results")


@dataclass(frozen=True)
class ResultSpec:
    """One task's results file: its name and the keys it always holds."""

    task: str
    file: str
    keys: tuple[str, ...]


RESULTS: dict[str, ResultSpec] = {s.task: s for s in (
    ResultSpec("eval", METRICS, METRICS_KEYS),
    ResultSpec("federated", METRICS, METRICS_KEYS + ("mode", "rounds")),
    ResultSpec("retrieval_eval", METRICS, RETRIEVAL_KEYS),
    ResultSpec("crowd", "crowd.json", CROWD_KEYS),
    ResultSpec("contamination", "contamination.json", CONTAMINATION_KEYS),
    ResultSpec("federated_summary", "summary.json", SUMMARY_KEYS),
)}
SCORED_TASKS = ("eval", "federated")  # metrics.json files with predictions behind them (leaderboard rows)


def finite(x: Any) -> Any:
    """``x`` with NaN/inf floats replaced by None, recursively (JSON has no NaN)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, Mapping):
        return {str(k): finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite(v) for v in x]
    return x


def write_json(path: str | Path, data: Any) -> Path:
    """Write JSON via a temp file + rename so readers never see half a file."""
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(finite(data), ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, p)
    return p


def stamp(task: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` with ``task`` and ``schema_version`` first; refuses a body missing one of the task's keys."""
    spec = RESULTS.get(task)
    if spec is None:
        raise ValueError(f"unknown result task {task!r}; known: {', '.join(RESULTS)}")
    missing = [k for k in spec.keys if k not in body]
    if missing:
        raise ValueError(f"{task} result lacks {', '.join(missing)}")
    return {"task": task, "schema_version": SCHEMA_VERSION, **{k: v for k, v in body.items()
                                                               if k not in ("task", "schema_version")}}


def write_result(run_dir: str | Path, task: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """Write ``body`` as ``task``'s results file in ``run_dir``; returns what was written."""
    data = finite(stamp(task, body))
    write_json(Path(run_dir) / RESULTS[task].file, data)
    return data


def _legacy_task(path: Path, data: Mapping[str, Any]) -> str:
    if data.get("task") in RESULTS:
        return str(data["task"])
    if path.name == "crowd.json":
        return "crowd"
    if path.name == "contamination.json":
        return "contamination"
    if path.name == "summary.json":
        return "federated_summary"
    return "retrieval_eval" if "law_recall" in data else "eval"


def load_json(path: str | Path) -> Any:
    """A JSON file's contents; a one-line DataError naming the file and line when it is not valid JSON."""
    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{p}:{e.lineno}: not valid JSON ({e.msg})") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{p}: not UTF-8 ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise DataError(f"{p}: cannot read ({e.strerror or e})") from None


def read_result(path: str | Path, tasks: Sequence[str] | None = None) -> dict[str, Any]:
    """A results file checked against its stated shape (``tasks``: the ones accepted here, default any)."""
    p = Path(path)
    data = load_json(p)
    if not isinstance(data, dict):
        raise DataError(f"{p}: a results file holds one JSON object, found {type(data).__name__}")
    version = data.get("schema_version", 0)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise DataError(f"{p}: schema_version {version!r} is newer than this qualbench reads ({SCHEMA_VERSION}); "
                        "upgrade qualbench")
    task = _legacy_task(p, data)
    if tasks is not None and task not in tasks:
        raise DataError(f"{p}: holds a {task} result, expected {' or '.join(tasks)}")
    missing = [k for k in RESULTS[task].keys if k not in data]
    if missing and version > 0:
        raise DataError(f"{p}: {task} result (schema {version}) lacks {', '.join(missing)}")
    return {**data, "task": task, "schema_version": version}


@dataclass
class RoundRecord:
    """One completed round of a federated run (or a baseline's round-equivalent): what ``history.json`` keeps.

    ``train`` maps a client id (``"pooled"`` for centralized training) to its training statistics
    (``num_examples``, ``loss_mean``, ...); ``val``/``test`` are ``compute_metrics`` dicts with losses;
    ``train_loss`` is the example-weighted mean of the clients' ``loss_mean`` (None in round 0).
    """

    round: int
    train: dict[str, dict[str, Any]] = field(default_factory=dict)
    val: dict[str, Any] | None = None
    test: dict[str, Any] | None = None
    by_client: dict[str, Any] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    bytes_down: int = 0
    bytes_up: int = 0
    wall_s: float = 0.0
    train_loss: float | None = None

    def __post_init__(self) -> None:
        if self.train_loss is None and self.train:
            n = sum(int(t.get("num_examples", 0)) for t in self.train.values())
            self.train_loss = sum(float(t["loss_mean"]) * int(t.get("num_examples", 0))
                                  for t in self.train.values()) / max(n, 1)

    @classmethod
    def from_evaluation(cls, rnd: int, evaluation: Mapping[str, Any], **kw: Any) -> RoundRecord:
        """A record from ``round_metrics`` output (``val``, ``test``, ``by_client``) plus the round's other fields."""
        return cls(round=rnd, val=evaluation.get("val"), test=evaluation.get("test"),
                   by_client=dict(evaluation.get("by_client") or {}), **kw)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RoundRecord:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return finite(asdict(self))

    def curve_row(self, mode: str | None) -> dict[str, Any]:
        """This round's line in ``rounds.jsonl``."""
        return finite({"round": self.round, "mode": mode, "train_loss": self.train_loss, "val": self.val,
                       "test": self.test})


def write_rounds(run_dir: str | Path, history: Mapping[str, Any]) -> Path:
    """``rounds.jsonl`` from a history: one :meth:`RoundRecord.curve_row` per completed round, written atomically."""
    p = Path(run_dir) / ROUNDS
    tmp = p.with_name(p.name + ".tmp")
    rounds = sorted((RoundRecord.from_dict(r) for r in history.get("rounds", [])), key=lambda r: r.round)
    tmp.write_text("".join(json.dumps(r.curve_row(history.get("mode")), ensure_ascii=False) + "\n" for r in rounds),
                   encoding="utf-8")
    os.replace(tmp, p)
    return p


def read_rounds(path: str | Path) -> list[dict[str, Any]]:
    """The lines of a ``rounds.jsonl`` (a bad line: one-line DataError naming file and line)."""
    p = Path(path)
    out = []
    for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{p}:{i}: not valid JSON ({e.msg})") from None
        if not isinstance(rec, dict) or "round" not in rec:
            raise DataError(f"{p}:{i}: a round line is an object with a 'round' key")
        out.append(rec)
    return out
