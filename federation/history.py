"""``history.json`` (the run's record: one entry per completed round, what resume reads) and ``rounds.jsonl``
(one line per round: its val/test metrics from ``compute_metrics`` plus losses, what ``qualbench-report``
draws), both rewritten atomically after every round."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

HISTORY = "history.json"
ROUNDS = "rounds.jsonl"
ROUND_KEYS = ("round", "train_loss", "val", "test")  # what rounds.jsonl keeps of a history round


def _clean(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def write_json(path: str | Path, data: Any) -> Path:
    """Write JSON via a temp file + rename so readers never see half a file."""
    p = Path(path)
    tmp = p.with_suffix(p.suffix + ".tmp")
    tmp.write_text(json.dumps(_clean(data), ensure_ascii=False, indent=2), encoding="utf-8")
    os.replace(tmp, p)
    return p


def load_history(run_dir: str | Path) -> dict[str, Any] | None:
    p = Path(run_dir) / HISTORY
    return json.loads(p.read_text(encoding="utf-8")) if p.exists() else None


def completed_rounds(history: dict[str, Any] | None) -> int:
    """The last round with training done (0 = only the initial evaluation, -1 = nothing)."""
    if not history or not history.get("rounds"):
        return -1
    return max(r["round"] for r in history["rounds"])


def final_round(history: dict[str, Any]) -> dict[str, Any]:
    return max(history["rounds"], key=lambda r: r["round"])


def write_rounds(run_dir: str | Path, history: dict[str, Any]) -> Path:
    """``rounds.jsonl`` from the history: ``{"round", "mode", "train_loss", "val", "test"}`` per completed round."""
    p = Path(run_dir) / ROUNDS
    tmp = p.with_suffix(p.suffix + ".tmp")
    rounds = sorted(history.get("rounds", []), key=lambda r: r["round"])
    lines = [json.dumps(_clean({"round": r["round"], "mode": history.get("mode"),
                                **{k: r.get(k) for k in ROUND_KEYS[1:]}}), ensure_ascii=False) for r in rounds]
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    os.replace(tmp, p)
    return p
