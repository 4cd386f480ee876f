"""Shared fixtures: paths to the repo, the read-only ../shared data, and small question files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers.records import make_record

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# The tests' models are tiny: one BLAS/OpenMP thread per process (and per subprocess, which inherits it). With
# torch's default of one thread per core, two test processes on 2 cores spin against each other 5-10x slower.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SHARED_EXAMS = SHARED / "exams"
SHARED_CORPORA = SHARED / "corpora"
SAMPLE_CORPUS = REPO / "corpora" / "sample"


@pytest.fixture
def shared_exam_files() -> list[Path]:
    files = sorted(SHARED_EXAMS.glob("*.json")) if SHARED_EXAMS.is_dir() else []
    if not files:
        pytest.skip(f"real exam files not present at {SHARED_EXAMS}")
    return files


@pytest.fixture
def shared_corpora() -> Path:
    if not SHARED_CORPORA.is_dir():
        pytest.skip(f"real corpora not present at {SHARED_CORPORA}")
    return SHARED_CORPORA


@pytest.fixture
def small_json(tmp_path) -> Path:
    """A 24-item official-format file: every domain, every type."""
    recs = []
    domains = ["安全生产", "消防", "石油天然气", "建筑工程", "经济金融", "银行保险"]
    i = 0
    for d in domains:
        for qtype, ans in (("单选题", "C"), ("多选题", "ABD"), ("判断题", "正确"), ("判断题", "错误")):
            recs.append(make_record(i, qtype, d, ans))
            i += 1
    p = tmp_path / "small.json"
    p.write_text(json.dumps(recs, ensure_ascii=False, indent=1), encoding="utf-8")
    return p


@pytest.fixture(scope="module")
def sample_retriever(tmp_path_factory):
    """A BM25 retriever (oracle routing, top 5) over the bundled sample corpus."""
    if not SAMPLE_CORPUS.is_dir():
        pytest.skip("sample corpus not present")
    from retrievers.build import build_retriever

    return build_retriever({"kind": "bm25", "routing": "oracle", "top_k": 5}, SAMPLE_CORPUS,
                           tmp_path_factory.mktemp("idx"))


# The slowest modules first: pytest-xdist (``--dist loadscope --no-loadscope-reorder`` in pyproject) hands each
# worker one whole module at a time in collection order, so starting with the longest keeps the workers finishing
# together (xdist's own reorder puts modules with many quick tests first and these last).
SLOW_MODULES_FIRST = ("test_federation_deploy.py", "test_federation.py", "test_runner.py", "test_ray_launcher.py",
                      "test_resume_guards.py", "test_sweep_failures.py", "test_run_lock.py",
                      "test_federation_optuna.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(SLOW_MODULES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: order within a module kept
