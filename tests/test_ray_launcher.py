"""`hydra/launcher=ray` composes and runs a real 3-job multirun on a local Ray instance."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir

from qualbench.config import register_configs

ROOT = Path(__file__).resolve().parents[1]
NEEDS = "hydra-ray-launcher not installed (extra `sweepers`; the `test` extra includes it)"


def test_ray_launcher_config_composes():
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["experiment=rag_ablation", "hydra/launcher=ray"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher"
    assert launcher.ray.init.address is None and launcher.ray.remote.num_gpus == 0
    # the plugin's launcher sets this key with setdefault(); on Hydra's struct config it must already exist
    assert "object_store_memory" in launcher.ray.init
    assert cfg.hydra.sweeper.params["retriever.top_k"] == "0,1,3,5,10"


def test_three_job_sweep_runs_on_local_ray(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason=NEEDS)
    sweep = tmp_path / "sweep"
    cmd = [
        sys.executable, "-m", "qualbench", "-m", "hydra/launcher=ray", "task=eval", "model=random",
        "data=sample", "limit=8", "seed=0,1,2", "run.plots=false", "run.n_boot=20",
        "hydra.launcher.ray.init.num_cpus=2", "hydra.launcher.ray.remote.num_cpus=1",
        f"hydra.sweep.dir={sweep}",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Ray Launcher is launching 3 jobs" in proc.stderr + proc.stdout, proc.stderr[-3000:]
    seeds = set()
    for num in range(3):
        job = sweep / str(num)
        m = json.loads((job / "metrics.json").read_text(encoding="utf-8"))
        assert m["n"] == 8 and 0.0 <= m["accuracy"] <= 1.0
        seeds.add(m["config"]["seed"])
        # the job id is the one the Ray launcher assigns (the basic launcher leaves it unset)
        hydra_cfg = yaml.safe_load((job / ".hydra" / "hydra.yaml").read_text(encoding="utf-8"))
        assert hydra_cfg["hydra"]["job"]["id"] == f"job_id_for_{num}"
    assert seeds == {0, 1, 2}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sweep(sweep: Path, *overrides: str, extra_env: dict | None = None) -> tuple[subprocess.CompletedProcess, float]:
    cmd = [sys.executable, "-m", "qualbench", "-m", "task=eval", "model=random", "data=sample", "limit=8",
           "seed=0,1,2", "run.plots=false", "run.n_boot=20", f"hydra.sweep.dir={sweep}", *overrides]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1", "RAY_USAGE_STATS_ENABLED": "0",
           **(extra_env or {})}
    if "RAY_ADDRESS" not in (extra_env or {}):
        env.pop("RAY_ADDRESS", None)
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    return proc, time.monotonic() - t0


def _check_jobs(sweep: Path) -> None:
    seeds = {json.loads((sweep / str(n) / "metrics.json").read_text(encoding="utf-8"))["config"]["seed"]
             for n in range(3)}
    assert seeds == {0, 1, 2}


@pytest.fixture
def ray_head():
    """A real Ray head (`ray start --head --block`) in its own session, with its own temp dir and ports;
    yields (address, temp_dir). Stopped by signalling its process group and every descendant, not
    `ray stop` (that would stop every Ray instance of this user on the machine)."""
    pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason=NEEDS)
    psutil = pytest.importorskip("psutil")
    ray_bin = Path(sys.executable).with_name("ray")
    if not ray_bin.exists():
        pytest.skip("the `ray` CLI is not next to this Python")
    tmp = Path(tempfile.mkdtemp(prefix="qbray", dir="/tmp"))  # short: Ray's unix socket paths are length-limited
    log = (tmp / "head.log").open("wb")
    cmd = [str(ray_bin), "start", "--head", "--block", "--num-cpus=2", f"--port={_free_port()}",
           f"--temp-dir={tmp}", "--include-dashboard=false", "--disable-usage-stats",
           f"--ray-client-server-port={_free_port()}", f"--dashboard-agent-listen-port={_free_port()}",
           f"--dashboard-agent-grpc-port={_free_port()}", f"--runtime-env-agent-port={_free_port()}",
           f"--metrics-export-port={_free_port()}"]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    head = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    procs: dict = {}
    try:
        end = time.monotonic() + 90
        address = None
        while time.monotonic() < end and address is None:
            assert head.poll() is None, (tmp / "head.log").read_text(errors="replace")[-3000:]
            m = re.search(r"ray start --address='([^']+)'", (tmp / "head.log").read_text(errors="replace"))
            address = m.group(1) if m else None
            time.sleep(0.3)
        assert address, "ray head did not start within 90 s"
        yield address, tmp
    finally:
        try:
            root = psutil.Process(head.pid)
            procs = {p.pid: p for p in [root, *root.children(recursive=True)]}
        except psutil.Error:
            pass
        try:
            os.killpg(head.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        _, alive = psutil.wait_procs(list(procs.values()), timeout=20)
        for p in alive:
            try:
                p.kill()
            except psutil.Error:
                pass
        head.wait(timeout=10)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def test_sweep_joins_running_ray_cluster(tmp_path, ray_head):
    """The documented join (`hydra.launcher.ray.init.address=...`, and `=auto` resolving RAY_ADDRESS) runs
    the jobs on the running cluster: the plugin must not send object_store_memory/num_cpus to ray.init."""
    address, ray_tmp = ray_head
    join = ["hydra/launcher=ray", "hydra.launcher.ray.remote.num_cpus=1"]
    proc, t_join = _sweep(tmp_path / "join", *join, f"hydra.launcher.ray.init.address={address}")
    out = proc.stderr + proc.stdout
    assert proc.returncode == 0, out[-3000:]
    assert f"Connecting to existing Ray cluster at address: {address}" in out, out[-3000:]
    _check_jobs(tmp_path / "join")
    # the jobs ran in the head's workers: their output is in the head's session logs
    worker_logs = "".join(p.read_text(errors="replace") for p in (ray_tmp / "session_latest" / "logs").glob("worker-*"))
    assert all(f"random(seed={s})" in worker_logs for s in range(3))

    proc, t_auto = _sweep(tmp_path / "auto", *join, "hydra.launcher.ray.init.address=auto",
                          extra_env={"RAY_ADDRESS": address})
    assert proc.returncode == 0, (proc.stderr + proc.stdout)[-3000:]
    assert "Connecting to existing Ray cluster" in proc.stderr + proc.stdout
    _check_jobs(tmp_path / "auto")

    # what the plugin used to send when the key was missing: Ray refuses it when joining
    proc, _ = _sweep(tmp_path / "osm", *join, f"hydra.launcher.ray.init.address={address}",
                     "hydra.launcher.ray.init.object_store_memory=78643200")
    assert proc.returncode != 0
    assert "object_store_memory must not be provided" in proc.stderr + proc.stdout

    proc, t_basic = _sweep(tmp_path / "basic")  # the same 3 jobs on Hydra's basic launcher
    assert proc.returncode == 0, proc.stderr[-3000:]
    _check_jobs(tmp_path / "basic")
    print(f"3-job sweep: join Ray at {address} {t_join:.1f} s, address=auto {t_auto:.1f} s, "
          f"basic launcher {t_basic:.1f} s")
