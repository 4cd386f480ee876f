"""What ``qualbench`` can run: ``cfg.task`` → a function ``fn(cfg, run_dir) -> dict`` (lazy imports)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig

TASKS: dict[str, str] = {
    "eval": "qualbench.runner:run_eval",
    "federated": "federation.run:run_federated",
    "crowd": "qualbench.analysis.crowd:run_crowd",
    "contamination": "qualbench.analysis.contamination:run_contamination",
    "retrieval_eval": "qualbench.retrieval_eval:run_retrieval_eval",
}


def get_task(name: str) -> Callable[[DictConfig, Path], dict[str, Any]]:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    module, func = TASKS[name].split(":")
    return getattr(importlib.import_module(module), func)
