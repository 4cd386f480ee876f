"""Scoring over plain prediction dicts (lines of predictions.jsonl): accuracy, exam score, CI, weighted F1.

Small BEIR-style functions; ``compute_metrics`` assembles them into the metrics.json schema documented in
docs/scoring.md and ``metrics_markdown`` renders that dict as Markdown tables for report.md.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from qualbench import answers as _answers
from qualbench.domains import DOMAIN_NAMES, UnknownDomainError, canonical_domain
from qualbench.formatting import MISSING_MARK, pct as _pct
from qualbench.records import JUDGE, MULTI, QUESTION_TYPES, SINGLE
from qualbench.scoring.extract import ScoringError, normalize_question_type

__all__ = [
    "DEFAULT_POINTS",
    "MULTI_PARTIAL_RULES",
    "PER_OPTION_POINTS",
    "UNPARSED",
    "ExamScoreRule",
    "accuracy",
    "bootstrap_ci",
    "canonical_answer",
    "compute_metrics",
    "exam_points",
    "exam_score",
    "group_accuracy",
    "is_correct",
    "metrics_markdown",
    "weighted_f1",
]

UNPARSED = "<unparsed>"  # the class an empty prediction falls into for weighted F1

def canonical_answer(answer: str | None, question_type: str) -> str:
    """:func:`qualbench.answers.canonical_answer` ("" when empty or unreadable); an unknown type raises
    :class:`ScoringError`."""
    return _answers.canonical_answer(answer, normalize_question_type(question_type))


def is_correct(answer: str, prediction: str | None, question_type: str) -> bool:
    """Exact match; letters compare as sets (多选题 needs exactly the right set). Empty is never correct."""
    pred = canonical_answer(prediction, question_type)
    return bool(pred) and pred == canonical_answer(answer, question_type)


# --------------------------------------------------------------------------------------------------
# exam score rules (docs/scoring.md, "Exam score"): stated in the config, written into metrics.json
# --------------------------------------------------------------------------------------------------
MULTI_PARTIAL_RULES = ("none", "half", "per_option")
DEFAULT_POINTS: dict[str, float] = {SINGLE: 1.0, MULTI: 2.0, JUDGE: 1.0}
PER_OPTION_POINTS = 0.5  # per_option: points per correct option chosen (no wrong option chosen)

_RULE_TEXT = {
    "none": "多选题: the item's points only for exactly the key's set, else 0",
    "half": "多选题: full points for the exact set; half the item's points for a non-empty proper subset of the "
            "key with no wrong option; 0 with any wrong option or none",
    "per_option": f"多选题: full points for the exact set; {PER_OPTION_POINTS:g} point per option chosen for a "
                  "non-empty proper subset of the key with no wrong option, capped at the item's points; 0 with "
                  "any wrong option or none",
}


@dataclass(frozen=True)
class ExamScoreRule:
    """How many points an item earns: points per question type and the 多选题 partial-credit rule.

    ``multi_partial``: ``none`` (the exact set or nothing), ``half`` (0.5 × the item's points for a non-empty
    proper subset of the key with no wrong option) or ``per_option`` (0.5 point per chosen option of such a
    subset, capped at the item's points). 单选题/判断题 earn their points only when correct. The default is
    ``none`` with 单选题 1, 多选题 2, 判断题 1 points. No rule here is claimed to be any exam's official one.
    """

    multi_partial: str = "none"
    points: tuple[tuple[str, float], ...] = tuple(DEFAULT_POINTS.items())

    def __post_init__(self) -> None:
        mode = str(getattr(self.multi_partial, "value", self.multi_partial))
        if mode not in MULTI_PARTIAL_RULES:
            raise ScoringError(f"scoring.multi_partial={mode!r}: expected one of {', '.join(MULTI_PARTIAL_RULES)}")
        given = dict(self.points.items() if isinstance(self.points, Mapping) else self.points)
        pts = dict(DEFAULT_POINTS)
        for k, v in given.items():
            try:
                qtype = normalize_question_type(str(k))
            except ScoringError:
                raise ScoringError(f"scoring.points: unknown question type {k!r} (use 单选题, 多选题, 判断题)") from None
            try:
                x = float(v)
            except (TypeError, ValueError):
                x = math.nan
            if not (math.isfinite(x) and x > 0):
                raise ScoringError(f"scoring.points.{k}={v!r}: points must be a positive number")
            pts[qtype] = x
        object.__setattr__(self, "multi_partial", mode)
        object.__setattr__(self, "points", tuple((t, pts[t]) for t in QUESTION_TYPES))

    @classmethod
    def from_config(cls, node: Any) -> "ExamScoreRule":
        """From the ``scoring`` config section (a dict, DictConfig or None = the defaults)."""
        if node is None:
            return cls()
        if isinstance(node, ExamScoreRule):
            return node
        if not isinstance(node, Mapping):
            raise ScoringError(f"scoring: expected a mapping with multi_partial/points, got {type(node).__name__}")
        unknown = sorted(set(node) - {"multi_partial", "points"})
        if unknown:
            raise ScoringError(f"scoring: unknown key(s) {', '.join(map(str, unknown))} (multi_partial, points)")
        points = node.get("points") or {}
        if not isinstance(points, Mapping):
            raise ScoringError(f"scoring.points: expected a mapping type -> points, got {points!r}")
        return cls(node.get("multi_partial") or "none", tuple((str(k), v) for k, v in points.items()))

    def points_for(self, question_type: str) -> float:
        return dict(self.points)[normalize_question_type(question_type)]

    def earned(self, answer: str, prediction: str | None, question_type: str) -> float:
        """Points this prediction earns, between 0 and the item's points."""
        qtype = normalize_question_type(question_type)
        full = self.points_for(qtype)
        gold, pred = canonical_answer(answer, qtype), canonical_answer(prediction, qtype)
        if not pred:
            return 0.0
        if pred == gold:
            return full
        if qtype != MULTI or not set(pred) < set(gold):  # a wrong option (or a wrong 单选/判断 answer): 0
            return 0.0
        if self.multi_partial == "half":
            return 0.5 * full
        if self.multi_partial == "per_option":
            return min(PER_OPTION_POINTS * len(pred), full)
        return 0.0

    def to_dict(self) -> dict[str, Any]:
        """What metrics.json records as ``exam_score_rule``."""
        out: dict[str, Any] = {"multi_partial": self.multi_partial, "points": dict(self.points)}
        if self.multi_partial == "per_option":
            out["per_option_points"] = PER_OPTION_POINTS
        out["rule"] = _RULE_TEXT[self.multi_partial] + "; 单选题/判断题: the item's points when correct, else 0"
        return out


def _rule(rule: "ExamScoreRule | Mapping[str, Any] | None") -> ExamScoreRule:
    return rule if isinstance(rule, ExamScoreRule) else ExamScoreRule.from_config(rule)


def exam_points(answer: str, prediction: str | None, question_type: str,
                rule: "ExamScoreRule | Mapping[str, Any] | None" = None) -> float:
    """Points earned under ``rule`` (default: ``ExamScoreRule()``, i.e. multi_partial none, 1/2/1 points)."""
    return _rule(rule).earned(answer, prediction, question_type)


def exam_score(answer: str, prediction: str | None, question_type: str,
               rule: "ExamScoreRule | Mapping[str, Any] | None" = None) -> float:
    """The share of the item's points earned under ``rule``, 0-1 (see :class:`ExamScoreRule`).

    Default rule ``none``: 1 for the exact answer, else 0 — 多选题 get no partial credit unless the
    config asks for ``half`` or ``per_option``.
    """
    r = _rule(rule)
    return r.earned(answer, prediction, question_type) / r.points_for(question_type)


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


def ratio_bootstrap_ci(
    num: Sequence[float], den: Sequence[float], n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap CI of sum(num)/sum(den) over items (points earned / points possible).

    Same multinomial trick as :func:`bootstrap_ci`, over the distinct (num, den) pairs; with a constant
    ``den`` it equals ``bootstrap_ci(num/den)`` draw for draw.
    """
    pairs = np.column_stack([np.asarray(num, dtype=float).ravel(), np.asarray(den, dtype=float).ravel()])
    if pairs.shape[0] == 0:
        return (math.nan, math.nan)
    if not 0 < alpha < 1:
        raise ScoringError(f"alpha must be in (0, 1), got {alpha}")
    if n_boot < 1:
        raise ScoringError(f"n_boot must be >= 1, got {n_boot}")
    levels, counts = np.unique(pairs, axis=0, return_counts=True)
    n = pairs.shape[0]
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, counts / n, size=n_boot)
    ratios = (draws @ levels[:, 0]) / (draws @ levels[:, 1])
    lo, hi = np.percentile(ratios, [100 * alpha / 2, 100 * (1 - alpha / 2)])
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
    from sklearn.metrics import f1_score  # here: sklearn costs ~1 s to import, which extraction-only users skip

    return float(f1_score(y_true, y_pred, average="weighted", zero_division=0))


_guess_type = _answers.guess_type


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
                 "score", "points", "earned")

    def __init__(self, d: Mapping[str, Any], i: int, rule: ExamScoreRule | None = None) -> None:
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
        rule = rule or ExamScoreRule()
        self.points = rule.points_for(self.qtype)
        self.earned = rule.earned(self.answer, self.prediction, self.qtype) if self.prediction else 0.0
        self.score = self.earned / self.points


def _score_all(preds: Iterable[Any], rule: ExamScoreRule | None = None) -> list[_Scored]:
    return [_Scored(_as_dict(p, i), i, rule) for i, p in enumerate(preds)]


def _exam(items: Sequence[_Scored]) -> float:
    """Points earned / points possible (0-1); the mean exam score when all items carry the same points."""
    total = sum(s.points for s in items)
    return sum(s.earned for s in items) / total if total else math.nan


def _key_fn(key: str | Callable[[Mapping[str, Any]], Any]) -> Callable[[Mapping[str, Any]], Any]:
    if callable(key):
        return key
    if key == "domain":
        return lambda d: _domain_name(d.get("domain", ""))
    if key == "question_type":
        return lambda d: normalize_question_type(d["question_type"])
    return lambda d: d.get(key)


def group_accuracy(
    preds: Sequence[Any], key: str | Callable[[Mapping[str, Any]], Any],
    rule: ExamScoreRule | Mapping[str, Any] | None = None,
) -> dict[Any, dict[str, Any]]:
    """{group: {"n", "accuracy", "exam_score", "n_unparsed"}} grouped by a field name or a function.

    Items whose key is None or "" are left out (e.g. no qualification). Groups keep first-seen order.
    """
    dicts = [_as_dict(p, i) for i, p in enumerate(preds)]
    fn = _key_fn(key)
    r = _rule(rule)
    groups: dict[Any, list[_Scored]] = {}
    for i, d in enumerate(dicts):
        g = fn(d)
        if g is None or g == "":
            continue
        groups.setdefault(g, []).append(_Scored(d, i, r))
    return {g: _summary(items) for g, items in groups.items()}


def _summary(items: Sequence[_Scored], n_boot: int = 0, seed: int = 0) -> dict[str, Any]:
    correct = [s.correct for s in items]
    out: dict[str, Any] = {
        "n": len(items),
        "accuracy": accuracy(correct),
        "exam_score": _exam(items),
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


def compute_metrics(preds: Sequence[Any], n_boot: int = 1000, seed: int = 0,
                    rule: ExamScoreRule | Mapping[str, Any] | None = None) -> dict[str, Any]:
    """metrics.json for a list of prediction dicts (or Prediction objects); see docs/scoring.md.

    Correctness and exam score are recomputed from answer/prediction/question_type; the exam score follows
    ``rule`` (an :class:`ExamScoreRule` or the ``scoring`` config section; None = the defaults), which is
    written into the result as ``exam_score_rule``. Skipped items count as wrong and stay in ``n``;
    unparsed predictions (empty) are wrong too.
    """
    rule = _rule(rule)
    items = _score_all(preds, rule)
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
        "exam_score": _exam(items),
        "exam_score_ci95": list(ratio_bootstrap_ci([s.earned for s in items], [s.points for s in items],
                                                   n_boot=n_boot, seed=seed)),
        "exam_points": sum(s.earned for s in items),
        "exam_points_max": sum(s.points for s in items),
        "exam_score_rule": rule.to_dict(),
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

def _ci(ci: Sequence[float] | None) -> str:
    return f"[{_pct(ci[0])}, {_pct(ci[1])}]" if ci else MISSING_MARK


def _group_table(groups: Mapping[str, Mapping[str, Any]], label: str) -> list[str]:
    lines = [f"| {label} | n | accuracy (%) | 95% CI | exam score (%) | unparsed |", "|---|---:|---:|---|---:|---:|"]
    for g, v in groups.items():
        lines.append(
            f"| {g} | {v['n']} | {_pct(v['accuracy'])} | {_ci(v.get('ci95'))} | {_pct(v['exam_score'])} "
            f"| {v.get('n_unparsed', MISSING_MARK)} |"
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
    rule = metrics.get("exam_score_rule")
    if rule:
        pts = ", ".join(f"{t} {v:g}" for t, v in (rule.get("points") or {}).items())
        lines.append(f"| exam score rule | multi_partial={rule.get('multi_partial')}; points: {pts} |")
    if "uses_eval_labels" in metrics:
        lines.append("| uses eval labels | " + ("**YES: this model read the evaluated items' labels**"
                                                if metrics["uses_eval_labels"] else "no") + " |")
    for key, label, heading in (
        ("by_domain", "domain", "By domain"),
        ("by_type", "type", "By question type"),
        ("by_qualification", "qualification", "By qualification"),
    ):
        if metrics.get(key):
            lines += ["", f"### {heading}", ""] + _group_table(metrics[key], label)
    if metrics.get("references"):
        lines += ["", "### Reference rows (computed from the evaluated items)", ""] + _reference_table(metrics)
    return "\n".join(lines) + "\n"


def _reference_table(metrics: Mapping[str, Any]) -> list[str]:
    """Model accuracy next to each reference, overall and per type, with a mark where the model is below."""
    refs = {k: v for k, v in metrics["references"].items() if isinstance(v, Mapping)}
    types = list(metrics.get("by_type") or {})
    head = ["row"] + ["all"] + types
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]

    def cell(v: Mapping[str, Any] | None, extra: str = "") -> str:
        return (_pct(v.get("accuracy")) + extra) if v else MISSING_MARK

    rows = [metrics] + [metrics["by_type"][t] for t in types]
    model = []
    for j, m in enumerate(rows):
        below = [name for name, ref in refs.items()
                 if (r := ref if j == 0 else (ref.get("by_type") or {}).get(types[j - 1]))
                 and m.get("accuracy") is not None and m["accuracy"] < r["accuracy"] - 1e-12]
        model.append(cell(m) + (f" (below {', '.join(below)})" if below else ""))
    lines.append("| model | " + " | ".join(model) + " |")
    for name, ref in refs.items():
        by = ref.get("by_type") or {}
        cells = [cell(ref)] + [cell(by.get(t), f" ({by[t]['answer']})" if by.get(t, {}).get("answer") else "")
                               for t in types]
        lines.append(f"| reference: {ref.get('label', name)} | " + " | ".join(cells) + " |")
    return lines
