"""``model=retrieval``: an offline answerer that picks options from retrieved law passages alone.

Each option (stem + option text) and each 判断题 statement is searched in one batched call; evidence features
(retriever score, lexical overlap with the passages, blank-filling fit, wording mismatches) are turned into a
decision by a ``Calibration`` fitted on labelled items that never include the item being predicted:

- ``calibration=crossfit`` (default): K folds over the evaluated items; each fold is predicted by a fit on the others.
- ``calibration=sample``: fit once on a separate calibration set (default: the bundled sample set). If the
  evaluated items overlap it (evaluating the sample set itself), it switches to ``crossfit`` and logs it.
- ``calibration=none``: fixed default weights and thresholds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from hydra.core.config_store import ConfigStore

from qualbench.errors import ConfigError
from qualbench.models.calibration import Calibration, FoldRecord, crossfit, fit_calibration
from qualbench.models.evidence import ItemFeatures, collect_features
from qualbench.records import JUDGE, Question, Request, Response

log = logging.getLogger(__name__)
CALIBRATION_MODES = ("sample", "crossfit", "none")


@dataclass
class RetrievalModelConfig:
    """Schema of ``conf/model/retrieval.yaml``."""

    _target_: str = "qualbench.models.retrieval.RetrievalAnswerer"
    name: str = "retrieval"
    top_k: Optional[int] = None  # passages per query; None: the retriever's top_k; 0: no evidence at all
    calibration: str = "crossfit"  # crossfit | sample | none
    calibration_data: Optional[dict[str, Any]] = None  # a data config for calibration; None: the bundled sample
    folds: int = 5  # crossfit folds
    min_multi: int = 2  # 多选题: always select at least this many options
    seed: int = 0
    show_progress: bool = True


def register_schemas(cs: ConfigStore) -> None:
    cs.store(group="model", name="base_retrieval", node=RetrievalModelConfig)


def content_key(q: Question) -> tuple[str, str, tuple[str, ...]]:
    """Identity of an item by content (idx values of different files collide)."""
    return (q.question_type, " ".join(q.stem.split()), tuple(" ".join(v.split()) for v in q.options.values()))


@dataclass
class Decision:
    answer: str
    scores: dict[str, float]
    evidence: list[list[dict[str, Any]]]
    fold: int | None = None


class RetrievalAnswerer:
    """Answers from retrieval evidence alone (see the module docstring). Needs a retriever attached."""

    needs_retriever = True

    def __init__(
        self,
        name: str = "retrieval",
        top_k: int | None = None,
        calibration: str = "sample",
        calibration_data: dict[str, Any] | None = None,
        folds: int = 5,
        min_multi: int = 2,
        seed: int = 0,
        show_progress: bool = True,
    ) -> None:
        if calibration not in CALIBRATION_MODES:
            raise ConfigError(f"model.calibration={calibration!r}; choose one of {', '.join(CALIBRATION_MODES)}")
        if folds < 2:
            raise ConfigError(f"model.folds={folds}; crossfit needs at least 2 folds")
        self.name = name
        self.top_k = top_k
        self.calibration = calibration
        self.calibration_data = dict(calibration_data) if calibration_data else None
        self.folds = folds
        self.min_multi = min_multi
        self.seed = seed
        self.show_progress = show_progress
        self.retriever: Any = None
        self._decisions: dict[str, Decision] = {}
        # audit trail: what each prediction's calibration was fitted on
        self.mode_used: str | None = None
        self.fold_records: list[FoldRecord] = []
        self.calibration_keys: set[tuple] = set()
        self.fitted: Calibration | None = None
        self._cal_items: list[Question] | None = None

    # ---- retriever ----------------------------------------------------------------------------------
    def attach_retriever(self, retriever: Any) -> None:
        if retriever is None:
            raise ConfigError("model=retrieval needs a retriever: add retriever=<bm25|dense|hybrid> and corpus=...")
        self.retriever = retriever
        self._decisions.clear()
        self.fitted = None

    @property
    def k(self) -> int:
        if self.top_k is not None:
            return int(self.top_k)
        return int(getattr(self.retriever, "top_k", 5) or 0)

    def _features(self, items: Sequence[Question]) -> list[ItemFeatures]:
        if self.retriever is None:
            raise ConfigError("model=retrieval: attach_retriever() was not called before generate()")
        return collect_features(items, self.retriever, k=self.k, progress=self.show_progress)

    # ---- calibration --------------------------------------------------------------------------------
    def calibration_items(self) -> list[Question]:
        """The labelled calibration set (the bundled sample set unless ``calibration_data`` names one)."""
        from qualbench.data import load_dataset

        data = self.calibration_data or {"loader": "sample", "name": "sample"}
        items = load_dataset(data, seed=self.seed)
        if not items:
            raise ConfigError(f"calibration set {data} is empty")
        return items

    def prepare(self, items: Sequence[Question]) -> None:
        """Decide every item at once (call with the whole evaluated file so crossfit folds span all of it)."""
        items = [q for q in items if q.idx not in self._decisions]
        if not items:
            return
        mode = self.calibration
        cal_items: list[Question] = []
        if mode == "sample":
            cal_items = self._cal_items if self._cal_items is not None else self.calibration_items()
            self._cal_items = cal_items
            overlap = {content_key(q) for q in items} & {content_key(q) for q in cal_items}
            if overlap:
                log.warning(
                    "model=retrieval: %d evaluated items are in the calibration set; switching to "
                    "calibration=crossfit (%d folds) so no item is predicted by a fit that saw it",
                    len(overlap), self.folds,
                )
                mode = "crossfit"
        self.mode_used = mode
        feats = self._features(items)
        if mode == "none":
            cal = Calibration(min_multi=self.min_multi)
            for q, f in zip(items, feats):
                self._store(q, f, cal)
        elif mode == "sample":
            if self.fitted is None:  # fitted once per retriever, reused by every later batch
                cal_feats = self._features(cal_items)
                self.calibration_keys = {content_key(q) for q in cal_items}
                self.fitted = fit_calibration(cal_feats, self.min_multi)
                log.info("model=retrieval: calibrated on %d items of the calibration set", len(cal_items))
            for q, f in zip(items, feats):
                self._store(q, f, self.fitted)
        else:
            self._crossfit(items, feats)

    def _crossfit(self, items: list[Question], feats: list[ItemFeatures]) -> None:
        from qualbench.data import kfold

        k = min(self.folds, len(items))
        if k < 2:
            log.warning("model=retrieval: 1 item cannot be cross-fitted; using default decisions")
            self._store(items[0], feats[0], Calibration(min_multi=self.min_multi))
            return
        folds = [[q.idx for q in fold] for fold in kfold(items, k, self.seed)]
        decisions, records = crossfit(feats, folds, lambda tr: fit_calibration(tr, self.min_multi))
        self.fold_records.extend(records)
        fold_of = {idx: r.fold for r in records for idx in r.predicted}
        for q, f in zip(items, feats):
            answer, scores = decisions[q.idx]
            self._decisions[q.idx] = Decision(answer, scores, f.evidence, fold_of[q.idx])
        log.info("model=retrieval: cross-fitted %d items over %d folds", len(items), k)

    def _store(self, q: Question, f: ItemFeatures, cal: Calibration) -> None:
        answer, scores = cal.decide(f)
        self._decisions[q.idx] = Decision(answer, scores, f.evidence)

    # ---- generation ---------------------------------------------------------------------------------
    def generate(self, requests: list[Request]) -> list[Response]:
        missing = [r.item for r in requests if r.item.idx not in self._decisions]
        if missing:
            if self.calibration != "none" and self.mode_used is None:
                log.info("model=retrieval: prepare() was not called with the whole file; deciding batch by "
                         "batch (crossfit folds then span one batch)")
            self.prepare(missing)
        return [self._response(r.item) for r in requests]

    def _response(self, item: Question) -> Response:
        d = self._decisions[item.idx]
        return Response(
            text=render_answer(item, d),
            meta={"answer": d.answer, "scores": d.scores, "calibration": self.mode_used, "fold": d.fold},
        )


def render_answer(item: Question, d: Decision) -> str:
    """``答案：AC`` plus a 依据 line naming the best passages behind the chosen option(s)."""
    if item.question_type == JUDGE:
        chosen = d.evidence[:1]
    else:
        letters = list(item.options)
        chosen = [d.evidence[letters.index(l)] for l in d.answer if l in letters and letters.index(l) < len(d.evidence)]
    cites: list[str] = []
    for ev in chosen:
        if ev and ev[0].get("law_title"):
            c = f"《{ev[0]['law_title']}》{ev[0].get('article', '')}"
            if c not in cites:
                cites.append(c)
    basis = "；".join(cites) if cites else "未检索到相关条文"
    return f"答案：{d.answer}\n依据：{basis}"
