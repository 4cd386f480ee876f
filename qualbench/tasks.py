"""What ``qualbench`` can run: ``cfg.task`` → a function ``fn(cfg, run_dir) -> dict``.

Each entry imports its task when called, so ``qualbench`` starts without loading every library.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig

Task = Callable[[DictConfig, Path], dict[str, Any]]


def _eval(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    from qualbench.runner import run_eval

    return run_eval(cfg, run_dir)


def _federated(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    from federation.run import run_federated

    return run_federated(cfg, run_dir)


def _crowd(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    from qualbench.analysis.crowd import run_crowd

    return run_crowd(cfg, run_dir)


def _contamination(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    from qualbench.analysis.contamination import run_contamination

    return run_contamination(cfg, run_dir)


def _retrieval_eval(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    from qualbench.retrieval_eval import run_retrieval_eval

    return run_retrieval_eval(cfg, run_dir)


TASKS: dict[str, Task] = {"eval": _eval, "federated": _federated, "crowd": _crowd,
                          "contamination": _contamination, "retrieval_eval": _retrieval_eval}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name]
