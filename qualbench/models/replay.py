"""``model=replay``: score responses someone else generated, keyed by ``idx``, with our extraction and scorer.

Reads one JSONL file in any of these shapes (detected per line):

- our own ``predictions.jsonl`` (``idx`` + ``raw``),
- a plain ``{"idx": ..., "response": ...}`` file (also ``text``/``output``/``completion``),
- lm-evaluation-harness ``--log_samples`` output (``doc`` + ``resps``/``filtered_resps``; idx from ``doc.idx``),
- OpenAI Batch API output (``custom_id`` + ``response.body.choices[0].message.content``).

An item with no response is skipped and counted (``skipped="no replayed response"``); responses whose idx is
not among the evaluated items are reported. Nothing is guessed: a duplicate idx with two different responses is
an error naming both lines.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from hydra.core.config_store import ConfigStore

from qualbench.data.loaders import read_text
from qualbench.errors import DataError
from qualbench.models.base import Model
from qualbench.records import Question, Request, Response

log = logging.getLogger(__name__)
MISSING_REASON = "no replayed response"
TEXT_KEYS = ("response", "raw", "text", "output", "completion", "generation")


@dataclass
class ReplayModelConfig:
    """Schema of ``conf/model/replay.yaml``."""

    _target_: str = "qualbench.models.replay.ReplayModel"
    path: str = "???"  # the responses file (JSONL)
    name: str = "replay"  # label in reports; the file name is appended


def register_schemas(cs: ConfigStore) -> None:
    cs.store(group="model", name="base_replay", node=ReplayModelConfig)


def _first_text(value: Any) -> str | None:
    """The first string inside nested lists (lm-eval keeps ``resps`` as ``[[text]]``)."""
    while isinstance(value, list) and value:
        value = value[0]
    return value if isinstance(value, str) else None


def parse_line(rec: dict[str, Any]) -> tuple[str, str | None] | None:
    """``(idx, response)`` from one record of any supported shape; None when the shape is unknown."""
    if "custom_id" in rec:  # OpenAI Batch API output
        body = ((rec.get("response") or {}).get("body") or {})
        choices = body.get("choices") or [{}]
        msg = choices[0].get("message") or {}
        text = msg.get("content") if isinstance(msg, dict) else None
        return str(rec["custom_id"]), text if isinstance(text, str) else choices[0].get("text")
    if isinstance(rec.get("doc"), dict) and ("resps" in rec or "filtered_resps" in rec):  # lm-eval log_samples
        doc = rec["doc"]
        idx = doc.get("idx", doc.get("id", rec.get("doc_id")))
        text = _first_text(rec.get("filtered_resps")) or _first_text(rec.get("resps"))
        return (None if idx is None else str(idx)), text
    if "idx" in rec:
        for key in TEXT_KEYS:
            if key in rec:
                v = rec[key]
                return str(rec["idx"]), v if isinstance(v, str) else _first_text(v)
    return None


def read_responses(path: str | Path) -> dict[str, str]:
    """idx → response text from a replay file; one-line ``DataError`` naming file:line for bad lines."""
    path = Path(path)
    out: dict[str, str] = {}
    line_of: dict[str, int] = {}
    for lineno, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{lineno}: invalid JSON line: {e.msg}") from None
        parsed = parse_line(rec) if isinstance(rec, dict) else None
        if parsed is None or parsed[0] is None:
            raise DataError(
                f"{path}:{lineno}: unknown response shape; expected idx+response, our predictions.jsonl, "
                "lm-eval --log_samples or OpenAI Batch output"
            )
        idx, text = parsed
        text = text or ""
        if idx in out and out[idx] != text:
            raise DataError(f"{path}:{lineno}: idx {idx!r} already has a different response at line {line_of[idx]}")
        out[idx] = text
        line_of.setdefault(idx, lineno)
    if not out:
        raise DataError(f"{path}: no responses in the file")
    return out


class ReplayModel(Model):
    """Serves precomputed responses by ``idx``; see the module docstring. The text goes through extraction like
    any reply (our own predictions.jsonl stores the raw reply, so old files replay unchanged)."""

    def __init__(self, path: str, name: str = "replay") -> None:
        self.path = Path(path)
        self.responses = read_responses(self.path)
        self.name = f"{name}({self.path.name})"
        self.n_missing = 0
        self.unknown: list[str] = []

    def prepare(self, items: Sequence[Question]) -> None:
        """Report, once, which items have no response and which responses match no item."""
        wanted = {q.idx for q in items}
        missing = sorted(wanted - self.responses.keys())
        self.n_missing = len(missing)
        self.unknown = sorted(self.responses.keys() - wanted)
        if missing:
            log.warning("model=replay: %d of %d items have no response in %s (first: %s); they are skipped",
                        len(missing), len(wanted), self.path, ", ".join(missing[:5]))
        if self.unknown:
            log.warning("model=replay: %d responses in %s match no evaluated idx (first: %s); ignored",
                        len(self.unknown), self.path, ", ".join(self.unknown[:5]))

    def replay_report(self) -> dict[str, Any]:
        return {"path": str(self.path), "n_responses": len(self.responses), "n_missing": self.n_missing,
                "n_unknown": len(self.unknown), "unknown_idx": self.unknown[:50]}

    def run_report(self) -> dict[str, Any]:
        """metrics.json ``replay``: which idx had no response, which responses matched no item."""
        return {"replay": self.replay_report()}

    def generate(self, requests: list[Request]) -> list[Response]:
        out = []
        for r in requests:
            text = self.responses.get(r.item.idx)
            out.append(Response(text="", skipped=MISSING_REASON) if text is None else Response(text=text))
        return out
