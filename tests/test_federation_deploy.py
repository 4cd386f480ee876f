"""The same ServerApp/ClientApp on Flower's deployment engine: a real SuperLink and two SuperNodes on
loopback, started and killed by the test (bounded by timeouts)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from federation.deploy import LocalDeployment
from federation.history import load_history
from federation.run import run_federated
from qualbench.config import register_configs

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    not all(shutil.which(c) for c in ("flwr", "flower-superlink", "flower-supernode")),
    reason="Flower CLI not on PATH",
)


def test_two_supernodes_on_loopback(tmp_path):
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        cfg = compose("config", overrides=[
            "experiment=federated", "task=federated", "federation.engine=prepare", "federation.partition=dirichlet",
            "federation.num_clients=2", "federation.alpha=100", "federation.num_rounds=1",
            "federation.local_steps=3", "federation.dp.enabled=true", "federation.dp.noise_multiplier=0.01",
            "federation.dp.clipping_norm=10", "federation.plots=false"])
    run_dir = tmp_path / "run"
    prepared = run_federated(cfg, run_dir)
    assert "flwr run" in prepared["command"] and load_history(run_dir) is None  # prepare trains nothing

    with LocalDeployment(tmp_path / "deploy", num_nodes=2) as dep:
        dep.run(run_dir / "spec.json", timeout=400)
        procs = list(dep.procs)
    assert all(p.poll() is not None for p in procs)  # every SuperLink/SuperNode process group is gone

    hist = load_history(run_dir)
    assert "error" not in hist
    assert [r["round"] for r in hist["rounds"]] == [0, 1]
    r1 = hist["rounds"][1]
    assert sorted(r1["train"]) == ["0", "1"] and sorted(r1["by_client"]) == ["0", "1"]
    assert r1["failures"] == [] and r1["bytes_up"] > 0
    assert r1["test"]["loss"] < hist["rounds"][0]["test"]["loss"]  # the aggregated adapter learned
    assert hist["privacy"] == {"enabled": True, "mechanism": "DifferentialPrivacyServerSideFixedClipping",
                               "noise_multiplier": 0.01, "clipping_norm": 10.0}
    assert (run_dir / "global_adapter" / "adapter_model.safetensors").exists()
