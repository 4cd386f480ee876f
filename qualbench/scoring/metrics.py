"""Scoring over plain prediction dicts (lines of predictions.jsonl): accuracy, exam score, CI, weighted F1.

Small BEIR-style functions; ``compute_metrics`` assembles them into the metrics.json schema documented in
docs/scoring.md and ``metrics_markdown`` renders that dict as Markdown tables for report.md.
"""

from __future__ import annotations

import dataclasses
import math
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import f1_score

from qualbench.domains import DOMAIN_NAMES, UnknownDomainError, canonical_domain
from qualbench.records import FALSE, JUDGE, MULTI, QUESTION_TYPES, TRUE
from qualbench.scoring.extract import ScoringError, normalize_question_type

__all__ = [
    "UNPARSED",
    "accuracy",
    "bootstrap_ci",
    "canonical_answer",
    "compute_metrics",
    "exam_score",
    "group_accuracy",
    "is_correct",
    "metrics_markdown",
    "weighted_f1",
]

UNPARSED = "<unparsed>"  # the class an empty prediction falls into for weighted F1

_JUDGE_ALIASES = {
    TRUE: TRUE, "对": TRUE, "√": TRUE, "✓": TRUE, "T": TRUE, "TRUE": TRUE, "是": TRUE,
    FALSE: FALSE, "错": FALSE, "×": FALSE, "✗": FALSE, "F": FALSE, "FALSE": FALSE, "否": FALSE,
}


def canonical_answer(answer: str | None, question_type: str) -> str:
    """Canonical form of an answer: sorted unique letters, or 正确/错误; "" when empty or unreadable."""
    if not answer:
        return ""
    text = unicodedata.normalize("NFKC", str(answer)).strip()
    if normalize_question_type(question_type) == JUDGE:
        return _JUDGE_ALIASES.get(text.upper(), _JUDGE_ALIASES.get(text, ""))
    return "".join(sorted({c for c in text.upper() if "A" <= c <= "Z"}))


def is_correct(answer: str, prediction: str | None, question_type: str) -> bool:
    """Exact match; letters compare as sets (多选题 needs exactly the right set). Empty is never correct."""
    pred = canonical_answer(prediction, question_type)
    return bool(pred) and pred == canonical_answer(answer, question_type)


def exam_score(answer: str, prediction: str | None, question_type: str) -> float:
    """Points as a Chinese qualification exam awards them, out of 1.

    单选题/判断题: 1 if correct else 0. 多选题: 1 for the exact set; 0.5 when the prediction is a non-empty
    proper subset of the answer (少选得0.5分); 0 as soon as any chosen letter is wrong (错选不得分).
    """
    qtype = normalize_question_type(question_type)
    gold, pred = canonical_answer(answer, qtype), canonical_answer(prediction, qtype)
    if not pred:
        return 0.0
    if pred == gold:
        return 1.0
    if qtype == MULTI and set(pred) < set(gold):
        return 0.5
    return 0.0


def accuracy(correct: Sequence[bool] | Sequence[float]) -> float:
    """Mean of 0/1 (or partial-credit) values; NaN for an empty sequence."""
    return float(np.mean(np.asarray(correct, dtype=float))) if len(correct) else math.nan


def bootstrap_ci(
    values: Sequence[float] | Sequence[bool], n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean, deterministic per ``seed``.

    Resampling n values with replacement only matters through how often each distinct value is drawn, so
    each replicate is one multinomial draw over the distinct values (0/1, or 0/0.5/1 exam scores): the
    same distribution as index resampling, in O(n_boot × distinct values) memory instead of O(n_boot × n).
    """
    x = np.asarray(values, dtype=float).ravel()
    if x.size == 0:
        return (math.nan, math.nan)
    if not 0 < alpha < 1:
        raise ScoringError(f"alpha must be in (0, 1), got {alpha}")
    if n_boot < 1:
        raise ScoringError(f"n_boot must be >= 1, got {n_boot}")
    levels, counts = np.unique(x, return_counts=True)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(x.size, counts / x.size, size=n_boot)
    means = draws @ levels / x.size
    lo, hi = np.percentile(means, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return (float(lo), float(hi))


def _f1_label(answer: str | None, question_type: str) -> str:
    return canonical_answer(answer, question_type) or UNPARSED


def weighted_f1(
    answers: Sequence[str], predictions: Sequence[str | None], question_types: Sequence[str] | None = None
) -> float:
    """The paper's weighted F1: each canonical answer string is a class ("C", "ABD", 正确, ...).

    Per-class F1 weighted by the class's support among the gold answers (sklearn ``average="weighted"``).
    An unparsed (empty) prediction is its own class, ``<unparsed>``, that no gold answer has, so it only
    costs recall. ``question_types`` (optional) lets answers like "对"/"√" canonicalise to 正确/错误.
    """
    if len(answers) != len(predictions):
        raise ScoringError(f"{len(answers)} answers but {len(predictions)} predictions")
    if not answers:
        return math.nan
    types = question_types if question_types is not None else [_guess_type(a) for a in answers]
    y_true = [_f1_label(a, t) for a, t in zip(answers, types)]
    y_pred = [_f1_label(p, t) for p, t in zip(predictions, types)]
    return float(f1_score(y_true, y_pred, average="weighted", zero_division=0))


def _guess_type(answer: str) -> str:
    return JUDGE if canonical_answer(answer, JUDGE) else MULTI


# --------------------------------------------------------------------------------------------------
# prediction records
# --------------------------------------------------------------------------------------------------
_REQUIRED = ("answer", "prediction", "question_type")


def _as_dict(pred: Any, i: int) -> Mapping[str, Any]:
    if isinstance(pred, Mapping):
        d = pred
    elif dataclasses.is_dataclass(pred) and not isinstance(pred, type):
        d = dataclasses.asdict(pred)
    else:
        raise ScoringError(f"prediction #{i}: expected a dict or Prediction, got {type(pred).__name__}")
    missing = [k for k in _REQUIRED if k not in d]
    if missing:
        raise ScoringError(f"prediction #{i} (idx={d.get('idx')!r}) lacks field(s) {', '.join(missing)}")
    return d


def _domain_name(domain: Any) -> str:
    try:
        return canonical_domain(str(domain))
    except UnknownDomainError:
        return str(domain)


class _Scored:
    """One prediction re-scored from answer/prediction/question_type (stored 'correct' is not trusted)."""

    __slots__ = ("domain", "qtype", "qualification", "answer", "prediction", "skipped", "unparsed", "correct",
                 "score")

    def __init__(self, d: Mapping[str, Any], i: int) -> None:
        try:
            self.qtype = normalize_question_type(d["question_type"])
        except ScoringError as err:
            raise ScoringError(f"prediction #{i} (idx={d.get('idx')!r}): {err}") from None
        self.domain = _domain_name(d.get("domain", ""))
        self.qualification = d.get("qualification") or None
        self.skipped = bool(d.get("skipped"))
        self.answer = canonical_answer(d["answer"], self.qtype)
        if not self.answer:
            raise ScoringError(f"prediction #{i} (idx={d.get('idx')!r}) has no readable answer: {d['answer']!r}")
        self.prediction = "" if self.skipped else canonical_answer(d["prediction"], self.qtype)
        self.unparsed = not self.skipped and not self.prediction
        self.correct = bool(self.prediction) and self.prediction == self.answer
        self.score = exam_score(self.answer, self.prediction, self.qtype) if self.prediction else 0.0


def _score_all(preds: Iterable[Any]) -> list[_Scored]:
    return [_Scored(_as_dict(p, i), i) for i, p in enumerate(preds)]


def _key_fn(key: str | Callable[[Mapping[str, Any]], Any]) -> Callable[[Mapping[str, Any]], Any]:
    if callable(key):
        return key
    if key == "domain":
        return lambda d: _domain_name(d.get("domain", ""))
    if key == "question_type":
        return lambda d: normalize_question_type(d["question_type"])
    return lambda d: d.get(key)


def group_accuracy(
    preds: Sequence[Any], key: str | Callable[[Mapping[str, Any]], Any]
) -> dict[Any, dict[str, Any]]:
    """{group: {"n", "accuracy", "exam_score", "n_unparsed"}} grouped by a field name or a function.

    Items whose key is None or "" are left out (e.g. no qualification). Groups keep first-seen order.
    """
    dicts = [_as_dict(p, i) for i, p in enumerate(preds)]
    fn = _key_fn(key)
    groups: dict[Any, list[_Scored]] = {}
    for i, d in enumerate(dicts):
        g = fn(d)
        if g is None or g == "":
            continue
        groups.setdefault(g, []).append(_Scored(d, i))
    return {g: _summary(items) for g, items in groups.items()}


def _summary(items: Sequence[_Scored], n_boot: int = 0, seed: int = 0) -> dict[str, Any]:
    correct = [s.correct for s in items]
    out: dict[str, Any] = {
        "n": len(items),
        "accuracy": accuracy(correct),
        "exam_score": accuracy([s.score for s in items]),
        "n_unparsed": sum(s.unparsed for s in items),
    }
    if n_boot:
        out["ci95"] = list(bootstrap_ci(correct, n_boot=n_boot, seed=seed))
    return out


def _ordered_groups(items: Sequence[_Scored], attr: str, order: Sequence[str]) -> dict[str, list[_Scored]]:
    groups: dict[str, list[_Scored]] = {}
    for s in items:
        g = getattr(s, attr)
        if g:
            groups.setdefault(g, []).append(s)
    rank = {name: i for i, name in enumerate(order)}
    return {g: groups[g] for g in sorted(groups, key=lambda g: (rank.get(g, len(rank)), str(g)))}


def compute_metrics(preds: Sequence[Any], n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """metrics.json for a list of prediction dicts (or Prediction objects); see docs/scoring.md.

    Correctness and exam score are recomputed from answer/prediction/question_type. Skipped items
    count as wrong and stay in ``n``; unparsed predictions (empty) are wrong too.
    """
    items = _score_all(preds)
    if not items:
        raise ScoringError("compute_metrics: no predictions to score")
    correct = [s.correct for s in items]
    by_domain = {g: _summary(v, n_boot, seed) for g, v in _ordered_groups(items, "domain", DOMAIN_NAMES).items()}
    by_type = {g: _summary(v, n_boot, seed) for g, v in _ordered_groups(items, "qtype", QUESTION_TYPES).items()}
    metrics: dict[str, Any] = {
        "n": len(items),
        "n_scored": sum(not s.skipped for s in items),
        "n_unparsed": sum(s.unparsed for s in items),
        "n_skipped": sum(s.skipped for s in items),
        "n_correct": sum(correct),
        "accuracy": accuracy(correct),
        "accuracy_ci95": list(bootstrap_ci(correct, n_boot=n_boot, seed=seed)),
        "macro_accuracy": float(np.mean([v["accuracy"] for v in by_domain.values()])),
        "exam_score": accuracy([s.score for s in items]),
        "exam_score_ci95": list(bootstrap_ci([s.score for s in items], n_boot=n_boot, seed=seed)),
        "weighted_f1": weighted_f1([s.answer for s in items], [s.prediction for s in items],
                                   [s.qtype for s in items]),
        "by_domain": by_domain,
        "by_type": by_type,
    }
    if any(s.qualification for s in items):
        metrics["by_qualification"] = {
            g: _summary(v, n_boot, seed) for g, v in _ordered_groups(items, "qualification", ()).items()
        }
    metrics["bootstrap"] = {"n_boot": n_boot, "alpha": 0.05, "seed": seed}
    return metrics


# --------------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------------
def _pct(x: float | None) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def _ci(ci: Sequence[float] | None) -> str:
    return f"[{_pct(ci[0])}, {_pct(ci[1])}]" if ci else "–"


def _group_table(groups: Mapping[str, Mapping[str, Any]], label: str) -> list[str]:
    lines = [f"| {label} | n | accuracy (%) | 95% CI | exam score (%) | unparsed |", "|---|---:|---:|---|---:|---:|"]
    for g, v in groups.items():
        lines.append(
            f"| {g} | {v['n']} | {_pct(v['accuracy'])} | {_ci(v.get('ci95'))} | {_pct(v['exam_score'])} "
            f"| {v.get('n_unparsed', '–')} |"
        )
    return lines


def metrics_markdown(metrics: Mapping[str, Any], title: str) -> str:
    """Markdown for report.md: overall table, then by domain, by type and by qualification."""
    lines = [f"## {title}", "", "| metric | value |", "|---|---|"]
    lines += [
        f"| items | {metrics['n']} (scored {metrics['n_scored']}, skipped {metrics['n_skipped']}, "
        f"unparsed {metrics['n_unparsed']}) |",
        f"| accuracy (%) | {_pct(metrics['accuracy'])} {_ci(metrics.get('accuracy_ci95'))} |",
        f"| macro accuracy over domains (%) | {_pct(metrics['macro_accuracy'])} |",
        f"| exam score (%) | {_pct(metrics['exam_score'])} |",
        f"| weighted F1 (%) | {_pct(metrics['weighted_f1'])} |",
    ]
    for key, label, heading in (
        ("by_domain", "domain", "By domain"),
        ("by_type", "type", "By question type"),
        ("by_qualification", "qualification", "By qualification"),
    ):
        if metrics.get(key):
            lines += ["", f"### {heading}", ""] + _group_table(metrics[key], label)
    return "\n".join(lines) + "\n"
