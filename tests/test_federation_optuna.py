"""The Optuna sweeper config searches FL hyperparameters against the validation split, never the test split."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="hydra-optuna-sweeper not installed (extra `sweepers`; the `test` extra includes it)")

ROOT = Path(__file__).resolve().parents[1]


def test_optuna_sweep_maximises_validation_accuracy(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    cmd = [
        sys.executable, "-m", "qualbench", "-m", "experiment=federated", "hydra/sweeper=fl_optuna",
        "federation=centralized", "federation.num_rounds=1", "federation.plots=false",
        "data.limit=120",  # 20 items per domain client: enough for train/val/test splits, 7× faster than all
        "hydra.sweeper.n_trials=3", "hydra.sweeper.sampler.n_startup_trials=3",
        "hydra.sweeper.params={federation.lr: 'interval(0.001, 0.05)', federation.local_steps: 'choice(2, 4)'}",
        f"hydra.sweep.dir={sweep}",
    ]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summaries = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/summary.json"))]
    assert len(summaries) == 3
    results = [s["results"]["centralized"] for s in summaries]
    lrs = {yaml.safe_load((p.parent / ".hydra" / "overrides.yaml").read_text())[0] for p in sweep.glob("*/summary.json")}
    assert len(lrs) == 3  # three different trials were sampled
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(max(r["val_accuracy"] for r in results))
    assert set(best["best_params"]) >= {"federation.lr", "federation.local_steps"}
