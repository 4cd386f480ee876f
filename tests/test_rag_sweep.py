"""A small RAG-ablation multirun through the real ``qualbench`` app with Hydra's joblib launcher."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from qualbench.config import register_configs

ROOT = Path(__file__).resolve().parents[1]


def _compose(overrides):
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=overrides, return_hydra_config=True)


def test_ablation_and_launcher_configs_compose():
    cfg = _compose(["experiment=rag_ablation"])
    params = cfg.hydra.sweeper.params
    assert params["retriever.top_k"] == "0,1,3,5,10"
    assert set(params["retriever"].split(",")) == {"bm25", "dense", "hybrid"}
    assert set(params["retriever.routing"].split(",")) == {"oracle", "all", "routed"}
    assert "joblib" in cfg.hydra.launcher._target_
    assert cfg.model._target_.endswith("RetrievalAnswerer") and cfg.prompt.rag


def test_slurm_launcher_config_composes():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher",
                        reason="hydra-submitit-launcher not installed (extra `sweepers`; the `test` extra includes it)")
    slurm = _compose(["experiment=rag_ablation", "hydra/launcher=slurm", "model=random"])
    assert slurm.hydra.launcher._target_.endswith("SlurmLauncher") and slurm.model._target_.endswith("RandomModel")
    assert slurm.hydra.launcher.cpus_per_task == 4 and slurm.hydra.launcher.submitit_folder.endswith(".submitit/%j")


def test_joblib_sweep_runs_and_shares_one_index(tmp_path):
    if not (ROOT / "corpora" / "sample").is_dir():
        pytest.skip("sample corpus not present")
    sweep_dir, cache = tmp_path / "sweep", tmp_path / "idx"
    cmd = [
        sys.executable, "-m", "qualbench", "-m", "experiment=rag_ablation", "task=eval",
        "retriever=bm25", "retriever.top_k=1,3", "retriever.routing=oracle,all",
        "corpus=sample", "data=sample", "limit=8", "model.calibration=none",
        f"retriever.cache_dir={cache}", f"hydra.sweep.dir={sweep_dir}", "hydra.launcher.n_jobs=2",
        "run.plots=false", "run.n_boot=20",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted(p.parent for p in sweep_dir.glob("*/metrics.json"))
    assert len(jobs) == 4, proc.stderr[-2000:]
    combos = set()
    for job in jobs:
        m = json.loads((job / "metrics.json").read_text(encoding="utf-8"))
        assert m["n"] == 8 and 0.0 <= m["accuracy"] <= 1.0
        combos.add((m["config"]["retriever"]["top_k"], m["config"]["retriever"]["routing"]))
    assert combos == {(1, "oracle"), (1, "all"), (3, "oracle"), (3, "all")}
    # the BM25 index was built by exactly one job; the others loaded it from the shared cache
    logs = "".join(p.read_text(encoding="utf-8") for p in sweep_dir.rglob("*.log"))
    assert logs.count("retriever bm25 (routing=") == 4, logs[-3000:]  # every job logged its retriever
    assert logs.count("built index") == 1, logs[-3000:]
    index_dirs = [p for p in cache.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(index_dirs) == 1, index_dirs


def test_two_job_sweep_runs_on_submitit_local(tmp_path):
    """`hydra/launcher=submitit_local` (the SLURM launcher's local twin) runs each job in its own process."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher",
                        reason="hydra-submitit-launcher not installed (extra `sweepers`; the `test` extra includes it)")
    root = Path(__file__).resolve().parents[1]
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "qualbench", "-m", "hydra/launcher=submitit_local", "task=eval", "model=random",
           "data=sample", "limit=8", "seed=0,1", "run.plots=false", "run.n_boot=20",
           "hydra.launcher.timeout_min=10", f"hydra.sweep.dir={sweep}"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seeds = {json.loads((sweep / str(n) / "metrics.json").read_text(encoding="utf-8"))["config"]["seed"]
             for n in range(2)}
    assert seeds == {0, 1}
    assert list((sweep / ".submitit").glob("*/*_log.out"))  # submitit's own per-job logs
