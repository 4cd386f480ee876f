"""Plain records that flow through the pipeline: questions, model requests/responses, predictions."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SINGLE = "单选题"
MULTI = "多选题"
JUDGE = "判断题"
QUESTION_TYPES: tuple[str, ...] = (SINGLE, MULTI, JUDGE)
TRUE = "正确"
FALSE = "错误"
JUDGE_ANSWERS: tuple[str, ...] = (TRUE, FALSE)

TYPE_SLUGS = {SINGLE: "single", MULTI: "multi", JUDGE: "judge"}


@dataclass(frozen=True)
class Question:
    """One canonical QualBench item.

    ``options`` maps letters to option texts in letter order ({} for 判断题); ``answer`` is canonical:
    sorted letters ("C", "ABD") or 正确/错误.
    """

    idx: str
    question_type: str
    domain: str
    stem: str
    options: dict[str, str]
    answer: str
    explanation: str = ""
    qualification: str | None = None
    source: str = ""  # "file:line" or "file#record" where the item came from
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. sub_domain, shuffle mapping

    @property
    def domain_slug(self) -> str:
        from qualbench.domains import domain_slug

        return domain_slug(self.domain)

    @property
    def text(self) -> str:
        """The question as an exam shows it: stem then one ``A．option`` line per option."""
        lines = [self.stem] + [f"{k}．{v}" for k, v in self.options.items()]
        return "\n".join(lines)

    @property
    def choices(self) -> tuple[str, ...]:
        """Letters for choice questions, 正确/错误 for 判断题."""
        return JUDGE_ANSWERS if self.question_type == JUDGE else tuple(self.options)

    def to_official(self) -> dict[str, Any]:
        """The record in the official QualBench JSON format."""
        d: dict[str, Any] = {
            "idx": self.idx,
            "question_type": self.question_type,
            "domain": self.domain,
            "question": self.text,
            "answer": self.answer,
            "explanation": self.explanation,
        }
        if self.qualification:
            d["qualification"] = self.qualification
        return d

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Request:
    """What a model backend receives: the item and the rendered chat messages."""

    item: Question
    messages: list[dict[str, str]]
    passages: list[Any] = field(default_factory=list)  # langchain Documents used in the prompt (RAG)


@dataclass
class Response:
    """What a model backend returns for one request."""

    text: str
    latency_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    skipped: str | None = None  # reason when the item was not run (e.g. prompt exceeds context)
    meta: dict[str, Any] = field(default_factory=dict)  # backend-specific (scores, logprobs, ...)
    # a canonical answer the backend decided itself (log-likelihood, retrieval answerer, random): the runner
    # scores it instead of extracting from ``text``; None = extract from ``text`` (qualbench.models.base)
    answer: str | None = None


@dataclass
class Prediction:
    """One line of predictions.jsonl."""

    idx: str
    domain: str
    question_type: str
    answer: str
    prediction: str
    correct: bool
    raw: str
    qualification: str | None = None
    exam_score: float = 0.0
    skipped: str | None = None
    latency_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    # per-sample log (as lm-eval's --log_samples): what the model saw, so any item can be audited
    messages: list[dict[str, str]] | None = None  # the rendered chat messages
    passage_ids: list[str] | None = None  # chunk ids of the retrieved passages in the prompt (RAG)
    settings_hash: str | None = None  # hash of the model + prompt (+ retriever) settings that produced it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
