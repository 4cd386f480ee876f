"""Turn raw records into canonical Questions; drop (or, in strict mode, reject) bad ones with reasons.

Cleaning follows the paper: duplicate questions are dropped, and so are answers outside the option set.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from qualbench.data.loaders import RawRecord
from qualbench.answers import AnswerError, canonical_answer, canonical_type
from qualbench.data.options import LETTERS, parse_options
from qualbench.domains import UnknownDomainError, canonical_domain
from qualbench.errors import DataError
from qualbench.records import JUDGE, MULTI, SINGLE, Question

# Field aliases: official names first, then the shuffled-file variant and common spellings.
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "idx": ("idx", "id", "qid"),
    "question_type": ("question_type", "type", "qtype"),
    "domain": ("domain",),
    "question": ("question", "content", "stem"),
    "answer": ("answer", "label", "gold"),
    "explanation": ("explanation", "explan", "analysis"),
    "qualification": ("qualification", "sub_domain", "subject", "exam"),
}
REQUIRED = ("question_type", "domain", "question", "answer")


@dataclass
class Drop:
    source: str
    idx: str
    reason: str


@dataclass
class CleaningReport:
    n_read: int = 0
    n_kept: int = 0
    drops: list[Drop] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for d in self.drops:
            key = d.reason.split(":")[0]
            out[key] = out.get(key, 0) + 1
        return out

    def summary(self) -> str:
        if not self.drops:
            return f"read {self.n_read} records, kept all"
        parts = ", ".join(f"{k}: {v}" for k, v in sorted(self.counts().items()))
        return f"read {self.n_read} records, kept {self.n_kept}, dropped {len(self.drops)} ({parts})"

    def write(self, directory: str | Path) -> None:
        """Save ``cleaning_report.json`` and ``dropped.csv`` (file:line, idx, reason) into a run dir."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "cleaning_report.json").write_text(
            json.dumps(
                {"n_read": self.n_read, "n_kept": self.n_kept, "dropped": self.counts()}, ensure_ascii=False, indent=2
            ),
            encoding="utf-8",
        )
        with (directory / "dropped.csv").open("w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=["source", "idx", "reason"])
            w.writeheader()
            for d in self.drops:
                w.writerow(asdict(d))


def _get(rec: dict[str, Any], name: str) -> Any:
    for key in FIELD_ALIASES[name]:
        if key in rec and rec[key] is not None:
            return rec[key]
    return None


class _Bad(Exception):
    pass


def to_question(raw: RawRecord) -> Question:
    """Canonicalise one raw record, or raise DataError naming its file and line."""
    if raw.error:
        raise DataError(f"{raw.source}: {raw.error}")
    try:
        return _to_question(raw)
    except _Bad as e:
        raise DataError(f"{raw.source}: {e}") from None


def _to_question(raw: RawRecord) -> Question:
    rec = raw.data
    missing = [f for f in REQUIRED if _get(rec, f) in (None, "")]
    if missing:
        raise _Bad(f"missing field: {', '.join(missing)}")
    try:
        qtype = canonical_type(_get(rec, "question_type"))
    except AnswerError:
        raise _Bad(f"unknown type: question_type={_get(rec, 'question_type')!r} (expected 单选题/多选题/判断题)") from None
    try:
        domain = canonical_domain(str(_get(rec, "domain")))
    except UnknownDomainError as e:
        raise _Bad(f"unknown domain: {e}") from None
    text = str(_get(rec, "question"))
    if qtype == JUDGE:
        stem, options = text.strip(), {}
    else:
        stem, options = parse_options(text)
        if len(options) < 2:
            raise _Bad(f"no options: could not find option lines (A．…) in a {qtype}")
    answer = canonical_answer(_get(rec, "answer"), qtype)
    several = canonical_answer(_get(rec, "answer"), MULTI) if not answer and qtype == SINGLE else ""
    if several:  # a letter set is not a 单选题 answer (qualbench.answers)
        raise _Bad(f"answer outside options: 单选题 with {len(several)} letters ({several!r})")
    if not answer:
        raise _Bad(f"answer outside options: unreadable answer {_get(rec, 'answer')!r} for a {qtype}")
    if qtype != JUDGE:
        outside = [c for c in answer if c not in options]
        if outside:
            raise _Bad(
                f"answer outside options: answer {answer!r} has {''.join(outside)} but options are "
                f"{''.join(options)}"
            )
    idx = _get(rec, "idx")
    qual = _get(rec, "qualification")
    extra = {k: v for k, v in rec.items() if k not in {a for v in FIELD_ALIASES.values() for a in v}}
    if "sub_domain" in rec:
        extra["sub_domain"] = rec["sub_domain"]
    return Question(
        idx=str(idx) if idx is not None else raw.source,
        question_type=qtype,
        domain=domain,
        stem=stem,
        options=options,
        answer=answer,
        explanation=str(_get(rec, "explanation") or ""),
        qualification=str(qual) if qual else None,
        source=raw.source,
        extra=extra,
    )


def _dedupe_key(q: Question) -> tuple:
    return (q.question_type, "".join(q.stem.split()), tuple("".join(v.split()) for v in q.options.values()))


def clean(
    records: Iterable[RawRecord], strict: bool = False, dedupe: bool = True
) -> tuple[list[Question], CleaningReport]:
    """Canonicalise records; drop duplicates and bad records with reasons (strict: raise on the first)."""
    report = CleaningReport()
    out: list[Question] = []
    seen_text: dict[tuple, str] = {}
    seen_idx: dict[str, str] = {}
    for raw in records:
        report.n_read += 1
        if raw.error:
            if strict:
                raise DataError(f"{raw.source}: {raw.error}")
            report.drops.append(Drop(raw.source, "", raw.error))
            continue
        try:
            q = _to_question(raw)
        except _Bad as e:
            if strict:
                raise DataError(f"{raw.source}: {e}") from None
            idx = _get(raw.data, "idx")
            report.drops.append(Drop(raw.source, str(idx), str(e)))
            continue
        if q.idx in seen_idx:
            msg = f"duplicate idx: {q.idx!r} already used at {seen_idx[q.idx]}"
            if strict:
                raise DataError(f"{raw.source}: {msg}")
            report.drops.append(Drop(raw.source, q.idx, msg))
            continue
        key = _dedupe_key(q)
        if dedupe and key in seen_text:
            report.drops.append(Drop(raw.source, q.idx, f"duplicate question: same text as {seen_text[key]}"))
            continue
        seen_text[key] = raw.source
        seen_idx[q.idx] = raw.source
        out.append(q)
    report.n_kept = len(out)
    return out, report


__all__ = ["clean", "to_question", "CleaningReport", "Drop", "LETTERS", "MULTI"]
