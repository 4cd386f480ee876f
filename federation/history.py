"""Reading a federated run's ``history.json`` (its record: one :class:`qualbench.results.RoundRecord` per completed
round, what resume reads). Writing it, and ``rounds.jsonl``, is :mod:`qualbench.results`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qualbench.results import HISTORY, load_json


def load_history(run_dir: str | Path) -> dict[str, Any] | None:
    p = Path(run_dir) / HISTORY
    return load_json(p) if p.exists() else None


def completed_rounds(history: dict[str, Any] | None) -> int:
    """The last round with training done (0 = only the initial evaluation, -1 = nothing)."""
    if not history or not history.get("rounds"):
        return -1
    return max(r["round"] for r in history["rounds"])


def final_round(history: dict[str, Any]) -> dict[str, Any]:
    return max(history["rounds"], key=lambda r: r["round"])
