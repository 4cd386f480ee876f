"""The ``study`` config group: one dataclass per study, each key with its one default.

``experiment=<study>`` selects its schema (``- /study: <name>`` in the experiment's defaults), so Hydra checks
every ``study.<key>=...`` override: an unknown key or a wrong type fails before anything runs. A task turns
``cfg.study`` into its dataclass once (:func:`study_settings`) and passes plain values on. This module imports
nothing heavy: it is loaded at start-up, when the schemas are registered.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Optional, TypeVar

from hydra.core.config_store import ConfigStore
from omegaconf import II, DictConfig, OmegaConf

from qualbench.errors import ConfigError


@dataclass
class RetrievalEvalStudy:
    """``experiment=retrieval_eval``: citation recall of the retriever (docs/rag.md)."""

    ks: list[int] = field(default_factory=lambda: [1, 3, 5, 10])  # law/article recall@k, each k cut on its own
    mrr_depth: Optional[int] = 10  # MRR@mrr_depth by passage rank; null: max(ks)
    gold_from: str = "explanation"  # explanation | stem (questions that name their law; the name is masked in the query)
    min_cited: int = 30  # fewer cited items: recall reported with a warning, no sweep objective


@dataclass
class CrowdStudy:
    """``experiment=crowd``: aggregate several models' answers to the same items (docs/studies.md)."""

    runs: list[str] = field(default_factory=list)  # run directories or sweep roots (each run dir is one model)
    calibration_fraction: float = 0.3  # seeded stratified split; weights / best model chosen there, scored on the rest
    seed: int = II("seed")
    methods: list[str] = field(default_factory=lambda: ["dawid_skene", "glad", "mace"])  # crowd-kit aggregators
    # (majority and weighted votes always run)


@dataclass
class ContaminationStudy:
    """``experiment=contamination``: the same model on original vs shuffled-option items (docs/studies.md)."""

    shuffle_seed: int = II("seed")  # per-item derangements are seeded by (shuffle_seed, idx)
    shuffled_path: Optional[str] = None  # an existing shuffled file paired by idx; null: shuffle here


@dataclass
class PromptAblationStudy:
    """``experiment=prompt_ablation``: the prompt ``qualbench-report`` compares the others against."""

    baseline_prompt: str = "zero_shot"


STUDIES: dict[str, type] = {
    "retrieval_eval": RetrievalEvalStudy,
    "crowd": CrowdStudy,
    "contamination": ContaminationStudy,
    "prompt_ablation": PromptAblationStudy,
}

S = TypeVar("S")


def register_schemas(cs: ConfigStore) -> None:
    for name, schema in STUDIES.items():
        cs.store(group="study", name=name, node=schema)


def study_settings(cfg: DictConfig, schema: type[S]) -> S:
    """``cfg.study`` as ``schema`` (interpolations such as ``${seed}`` resolved); a ConfigError naming the
    experiment when the config holds another study's settings or none, or naming a key added with
    ``+study.<key>=`` that the schema does not have."""
    node = cfg.get("study")
    if node is None or OmegaConf.get_type(node) is not schema:
        name = next(k for k, v in STUDIES.items() if v is schema)
        raise ConfigError(f"task={cfg.get('task')} needs the {name} study settings ({schema.__name__}): "
                          f"run it with experiment={name} (or add study={name})")
    known = [f.name for f in fields(schema)]
    extra = [k for k in node if k not in known]
    if extra:
        raise ConfigError(f"study.{extra[0]} is not a {schema.__name__} setting (settings: {', '.join(known)})")
    return OmegaConf.to_object(node)
