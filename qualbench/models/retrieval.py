"""``model=retrieval``: an offline answerer that picks options from retrieved law passages alone.

Each option (stem + option text) and each 判断题 statement is searched in one batched call; evidence features
(retriever score, lexical overlap with the passages, blank-filling fit, wording mismatches) are turned into a
decision by a ``Calibration``. By default nothing is fitted on the labels of the evaluated file:

- ``calibration=sample`` (default): the option weights are fitted once on a separate labelled set (the bundled
  sample set, or ``calibration_data``). Evaluated items found in that set (by content) are left out of the fit;
  if too few items remain, the fixed rules of ``none`` are used. Both cases are logged.
- ``calibration=none``: fixed weights and rules, no labels at all.
- ``calibration=crossfit`` (opt-in): K folds over the evaluated items, each predicted by a fit on the others.
  80% of the evaluated file's labels shape every prediction, so such runs carry ``uses_eval_labels: true``.

多选题: an option is chosen unless its score is more than ``multi_tau`` SD below the item's mean (fixed 0.8 by
default; ``multi_tau: null`` fits it). 判断题: a fixed rule unless ``fit_judge``. Ties are broken by a random
choice seeded by ``(seed, idx)``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from hydra.core.config_store import ConfigStore

from qualbench.errors import ConfigError
from qualbench.models.base import Model
from qualbench.models.calibration import (
    DEFAULT_MULTI_TAU,
    MIN_FIT_ITEMS,
    Calibration,
    FoldRecord,
    crossfit,
    fit_calibration,
)
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
    calibration: str = "sample"  # sample | none | crossfit (fits on the evaluated file's labels: opt-in only)
    calibration_data: Optional[dict[str, Any]] = None  # a data config for calibration; None: the bundled sample
    folds: int = 5  # crossfit folds
    min_multi: int = 2  # 多选题: always select at least this many options
    multi_tau: Optional[float] = DEFAULT_MULTI_TAU  # 多选题 cut in item SDs below the mean; None: fitted
    fit_judge: bool = False  # 判断题: fit the classifier on the calibration labels (False: the fixed rule)
    seed: int = 0  # tie-break seed (with each item's idx); also the crossfit folds
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


_DEFAULTS = RetrievalModelConfig()  # the one place for each default


class RetrievalAnswerer(Model):
    """Answers from retrieval evidence alone (see the module docstring). Needs a retriever attached."""

    needs_retriever = True

    def __init__(
        self,
        name: str = _DEFAULTS.name,
        top_k: int | None = _DEFAULTS.top_k,
        calibration: str = _DEFAULTS.calibration,
        calibration_data: dict[str, Any] | None = _DEFAULTS.calibration_data,
        folds: int = _DEFAULTS.folds,
        min_multi: int = _DEFAULTS.min_multi,
        multi_tau: float | None = _DEFAULTS.multi_tau,
        fit_judge: bool = _DEFAULTS.fit_judge,
        seed: int = _DEFAULTS.seed,
        show_progress: bool = _DEFAULTS.show_progress,
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
        self.multi_tau = None if multi_tau is None else float(multi_tau)
        self.fit_judge = bool(fit_judge)
        self.seed = int(seed)
        self.show_progress = show_progress
        self.retriever: Any = None
        self._decisions: dict[str, Decision] = {}
        # audit trail: what each prediction's calibration was fitted on
        self.mode_used: str | None = None
        self.fold_records: list[FoldRecord] = []
        self.calibration_keys: set[tuple] = set()
        self.fitted: Calibration | None = None
        self._cal_items: list[Question] | None = None

    @property
    def uses_eval_labels(self) -> bool:
        """True only for ``calibration=crossfit``: predictions then depend on the evaluated file's labels."""
        return self.calibration == "crossfit"

    def _fit(self, feats: Sequence[ItemFeatures]) -> Calibration:
        return fit_calibration(feats, self.min_multi, self.seed, self.multi_tau, self.fit_judge)

    def _rules(self) -> Calibration:
        tau = DEFAULT_MULTI_TAU if self.multi_tau is None else self.multi_tau
        return Calibration(multi_tau=tau, min_multi=self.min_multi, seed=self.seed)

    # ---- retriever ----------------------------------------------------------------------------------
    def attach_retriever(self, retriever: Any) -> None:
        if retriever is None:
            raise ConfigError("model=retrieval needs a retriever: add retriever=<bm25|dense|hybrid> and corpus=...")
        self.retriever = retriever
        self._decisions.clear()
        self.fitted = None
        self.mode_used = None

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
        feats = self._features(items)
        if mode == "sample":  # fitted once per retriever, reused by every later batch
            mode = self.mode_used if self.mode_used is not None else self._fit_sample(items)
        self.mode_used = mode
        if mode == "crossfit":
            self._crossfit(items, feats)
            return
        rules = self._rules()
        cal = rules if mode == "none" else self.fitted
        seen = [q.idx for q in items if mode == "sample" and content_key(q) in self.calibration_keys]
        if seen:  # a later batch holds items the fit saw: decide them without labels
            log.warning("model=retrieval: %d items of this batch were in the calibration fit; deciding them "
                        "with the label-free rules", len(seen))
        for q, f in zip(items, feats):
            self._store(q, f, rules if q.idx in seen else cal)

    def _fit_sample(self, items: Sequence[Question]) -> str:
        """Fit on the calibration set minus any evaluated item; ``none`` when too little of it is left."""
        cal_items = self._cal_items if self._cal_items is not None else self.calibration_items()
        self._cal_items = cal_items
        evaluated = {content_key(q) for q in items}
        disjoint = [q for q in cal_items if content_key(q) not in evaluated]
        if len(disjoint) < len(cal_items):
            log.warning(
                "model=retrieval: %d of %d calibration items are evaluated items; fitting on the other %d "
                "(never on the evaluated file's labels)", len(cal_items) - len(disjoint), len(cal_items), len(disjoint),
            )
        if len(disjoint) < MIN_FIT_ITEMS:
            log.warning("model=retrieval: too few calibration items left (%d); using the label-free rules of "
                        "calibration=none", len(disjoint))
            return "none"
        self.calibration_keys = {content_key(q) for q in disjoint}
        self.fitted = self._fit(self._features(disjoint))
        log.info("model=retrieval: calibrated on %d items of the calibration set", len(disjoint))
        return "sample"

    def _crossfit(self, items: list[Question], feats: list[ItemFeatures]) -> None:
        from qualbench.data import kfold

        k = min(self.folds, len(items))
        if k < 2:
            log.warning("model=retrieval: 1 item cannot be cross-fitted; using default decisions")
            self._store(items[0], feats[0], self._rules())
            return
        folds = [[q.idx for q in fold] for fold in kfold(items, k, self.seed)]
        decisions, records = crossfit(feats, folds, self._fit)
        self.fold_records.extend(records)
        fold_of = {idx: r.fold for r in records for idx in r.predicted}
        for q, f in zip(items, feats):
            answer, scores = decisions[q.idx]
            self._decisions[q.idx] = Decision(answer, scores, f.evidence, fold_of[q.idx])
        log.warning("model=retrieval: calibration=crossfit fits on the evaluated file's labels (%d items, %d "
                    "folds); the run is marked uses_eval_labels", len(items), k)

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
            answer=d.answer,
            meta={"scores": d.scores, "calibration": self.mode_used, "fold": d.fold,
                  "uses_eval_labels": self.uses_eval_labels},
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
