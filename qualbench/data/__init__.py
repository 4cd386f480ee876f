"""The data layer: load → clean → filter → split/limit. ``load_dataset(cfg.data)`` is the entry point."""

from __future__ import annotations

import logging
from typing import Any

from qualbench.data.cleaning import CleaningReport, clean, to_question
from qualbench.data.loaders import RawRecord, read_any, read_hub, read_json_list, read_jsonl, read_sample
from qualbench.data.options import canonical_answer, normalize_type, parse_options
from qualbench.data.splits import filter_items, kfold, stratified_limit, stratified_split
from qualbench.errors import ConfigError
from qualbench.records import Question

log = logging.getLogger(__name__)

LOADERS = ("qualbench_json", "jsonl", "sample", "hub", "auto")


def _cfg_get(cfg: Any, key: str, default: Any = None) -> Any:
    if cfg is None:
        return default
    if isinstance(cfg, dict):
        return cfg.get(key, default)
    return getattr(cfg, key, default) if hasattr(cfg, key) else default


def read_records(data_cfg: Any):
    loader = _cfg_get(data_cfg, "loader", "qualbench_json")
    path = _cfg_get(data_cfg, "path")
    encoding = _cfg_get(data_cfg, "encoding")
    if loader == "sample":
        return read_sample() if not path else read_any(path, encoding)
    if loader not in LOADERS:
        raise ConfigError(f"unknown data.loader {loader!r}; choose one of {', '.join(LOADERS)}")
    if not path:
        raise ConfigError(f"data.loader={loader} needs data.path")
    if loader == "hub":
        return read_hub(str(path), _cfg_get(data_cfg, "split", "train"))
    if loader == "jsonl":
        return read_jsonl(path, encoding)
    return read_any(path, encoding)  # a JSON list, or JSONL by content, or a directory of them


def load_dataset_with_report(data_cfg: Any, seed: int | None = None) -> tuple[list[Question], CleaningReport]:
    """Load, clean, filter and (optionally) split/limit the items ``data_cfg`` describes."""
    items, report = clean(
        read_records(data_cfg),
        strict=bool(_cfg_get(data_cfg, "strict", False)),
        dedupe=bool(_cfg_get(data_cfg, "dedupe", True)),
    )
    if report.drops:
        log.warning("%s", report.summary())
        for d in report.drops[:5]:
            log.warning("dropped %s (idx %s): %s", d.source, d.idx, d.reason)
    items = filter_items(items, list(_cfg_get(data_cfg, "domains", []) or []), list(_cfg_get(data_cfg, "types", []) or []))
    split_seed = int(_cfg_get(data_cfg, "split_seed", 0) if seed is None else seed)
    part = _cfg_get(data_cfg, "eval_split")
    if part:
        fr = list(_cfg_get(data_cfg, "split_fractions", [0.8, 0.1, 0.1]))
        splits = stratified_split(items, fr, split_seed)
        if part not in splits:
            raise ConfigError(f"data.eval_split={part!r}; choose one of {', '.join(splits)}")
        items = splits[part]
    limit = _cfg_get(data_cfg, "limit")
    if limit:
        items = stratified_limit(items, int(limit), split_seed)
    return items, report


def load_dataset(data_cfg: Any, seed: int | None = None) -> list[Question]:
    """Canonical Questions for a data config (dict, dataclass or DictConfig)."""
    return load_dataset_with_report(data_cfg, seed)[0]


__all__ = [
    "load_dataset", "load_dataset_with_report", "clean", "to_question", "CleaningReport", "RawRecord",
    "read_any", "read_hub", "read_json_list", "read_jsonl", "read_sample", "parse_options", "canonical_answer",
    "normalize_type", "filter_items", "kfold", "stratified_limit", "stratified_split",
]
