"""Typed config schemas registered in Hydra's ConfigStore; the yaml files in ``conf/`` extend them.

Each group option's yaml starts with ``defaults: [<schema name>]`` (Hydra's structured-config schema
pattern), so typos and wrong types in overrides fail before anything runs.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from qualbench.paths import PROJECT_ROOT, SAMPLE_DIR, project_root  # noqa: F401  (re-exported)


@dataclass
class DataConfig:
    """Where the questions come from and which of them to evaluate."""

    loader: str = "qualbench_json"  # qualbench_json | jsonl | sample | hub
    path: Optional[str] = None  # file, directory or hub id
    split: Optional[str] = None  # hub split, e.g. "train"
    encoding: Optional[str] = None  # None: UTF-8, else detected (GBK/GB18030 banks read as gb18030)
    name: str = "data"  # label used in reports
    strict: bool = False  # fail on the first bad record instead of dropping it with a report
    dedupe: bool = True
    domains: list[str] = field(default_factory=list)  # filter (any accepted spelling); empty = all
    types: list[str] = field(default_factory=list)  # filter: 单选题/多选题/判断题; empty = all
    limit: Optional[int] = None  # keep the first N after a seeded stratified shuffle (see eval_split)
    eval_split: Optional[str] = None  # None = all items; "test"/"val"/"train" = that part of a stratified split
    split_fractions: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])  # train/val/test
    split_seed: int = 0
    allow_train_overlap: bool = False  # score a federated adapter on items its clients trained on (refused by default)


@dataclass
class RandomModelConfig:
    _target_: str = "qualbench.models.random_baseline.RandomModel"
    seed: int = 0


@dataclass
class RunSettings:
    batch_size: int = 32
    resume: bool = True
    n_boot: int = 1000
    plots: bool = True
    log_samples: bool = True  # each prediction line carries its messages, passage ids and settings hash


class MultiPartial(str, enum.Enum):
    """多选题 partial credit in the exam score (docs/scoring.md, "Exam score")."""

    none = "none"  # the item's points only for the exact set
    half = "half"  # half the item's points for a non-empty proper subset of the key, no wrong option
    per_option = "per_option"  # 0.5 point per chosen option of such a subset, capped at the item's points


@dataclass
class PointsConfig:
    """Points per item of each type (ASCII names, so ``scoring.points.multi=3`` is a valid override)."""

    single: float = 1.0  # 单选题
    multi: float = 2.0  # 多选题
    judge: float = 1.0  # 判断题


@dataclass
class ScoringConfig:
    """The exam-score rule; written into metrics.json as ``exam_score_rule``. Accuracy does not depend on it."""

    multi_partial: MultiPartial = MultiPartial.none
    points: PointsConfig = field(default_factory=PointsConfig)


@dataclass
class QualBenchConfig:
    """The root config. Groups (data/model/prompt/...) are filled by the defaults list in conf/config.yaml."""

    task: str = "eval"
    seed: int = 0
    limit: Optional[int] = None  # shortcut for data.limit
    data: Any = MISSING
    model: Any = MISSING
    prompt: Any = MISSING
    retriever: Any = None
    embedder: Any = None
    corpus: Any = None
    federation: Any = None
    study: Any = None  # one of the study schemas (qualbench/study_config.py), chosen by experiment=<study>
    run: RunSettings = field(default_factory=RunSettings)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    experiment_name: str = "eval"


def _library_schemas() -> list[Callable[[ConfigStore], None]]:
    """The libraries' own ``register_schemas(cs)`` functions (imported here, when configs are registered)."""
    from federation.config import register_schemas as federation_schemas
    from qualbench.models.replay import register_schemas as replay_schemas
    from qualbench.models.retrieval import register_schemas as retrieval_model_schemas
    from qualbench.models.schemas import register_schemas as model_schemas
    from qualbench.study_config import register_schemas as study_schemas
    from retrievers.schema import register_schemas as retriever_schemas

    return [federation_schemas, model_schemas, retriever_schemas, retrieval_model_schemas, replay_schemas,
            study_schemas]


def register_configs() -> None:
    """Register the root schema, group schemas and the ``${qb_root:}`` resolver (idempotent)."""
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=QualBenchConfig)
    cs.store(group="data", name="base_data", node=DataConfig)
    cs.store(group="model", name="base_random", node=RandomModelConfig)
    from qualbench.prompts.render import PromptConfig

    cs.store(group="prompt", name="base_prompt", node=PromptConfig)
    for register in _library_schemas():
        register(cs)
    if not OmegaConf.has_resolver("qb_root"):
        OmegaConf.register_new_resolver("qb_root", project_root)
