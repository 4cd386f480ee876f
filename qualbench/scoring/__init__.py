"""Answer extraction and scoring: read the answer out of a reply, then accuracy, exam score, CI, weighted F1."""

from qualbench.scoring.extract import DEFAULT_LETTERS, ScoringError, extract_answer, normalize_question_type
from qualbench.scoring.metrics import (
    UNPARSED,
    accuracy,
    bootstrap_ci,
    canonical_answer,
    compute_metrics,
    exam_score,
    group_accuracy,
    is_correct,
    metrics_markdown,
    weighted_f1,
)

__all__ = [
    "DEFAULT_LETTERS",
    "UNPARSED",
    "ScoringError",
    "accuracy",
    "bootstrap_ci",
    "canonical_answer",
    "compute_metrics",
    "exam_score",
    "extract_answer",
    "group_accuracy",
    "is_correct",
    "metrics_markdown",
    "normalize_question_type",
    "weighted_f1",
]
