"""The same ServerApp/ClientApp on Flower's deployment engine: a real SuperLink and two SuperNodes on
loopback with TLS (self-signed CA), started and stopped by federation.deploy; SIGTERM/SIGINT stop
everything it started; the documented multi-machine commands are the ones federation.deploy builds."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import psutil
import pytest
from cryptography import x509
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from federation.deploy import LocalDeployment, Settings
from federation.history import load_history
from federation.run import run_federated
from federation.tls import make_self_signed
from qualbench.config import register_configs

ROOT = Path(__file__).resolve().parents[1]

needs_flower = pytest.mark.skipif(
    not all(shutil.which(c) for c in ("flwr", "flower-superlink", "flower-supernode")),
    reason="Flower CLI not on PATH",
)


def _prepare(run_dir: Path, *extra: str) -> dict:
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        cfg = compose("config", overrides=[
            "experiment=federated", "task=federated", "federation.engine=prepare", "federation.partition=dirichlet",
            "federation.num_clients=2", "federation.alpha=100", "federation.num_rounds=1",
            "federation.local_steps=3", "federation.plots=false", *extra])
    return run_federated(cfg, run_dir)


@needs_flower
def test_two_supernodes_on_loopback_with_tls(tmp_path):
    run_dir = tmp_path / "run"
    prepared = _prepare(run_dir, "federation.dp.enabled=true", "federation.dp.noise_multiplier=0.01",
                        "federation.dp.clipping_norm=10")
    assert "flwr run" in prepared["command"] and load_history(run_dir) is None  # prepare trains nothing

    t0 = time.monotonic()
    with LocalDeployment(tmp_path / "deploy", num_nodes=2, settings=Settings(run_timeout=400)) as dep:
        assert dep.settings.tls and Path(dep.settings.ca_cert).is_file()
        dep.run(run_dir / "spec.json")
        started = [psutil.Process(pid) for pid in dep.pids()]
    print(f"deployment engine, TLS, 2 SuperNodes, 1 round: {time.monotonic() - t0:.1f} s")
    assert not [p for p in started if _alive(p)]  # SuperLink, SuperNodes, SuperExecs, apps: all gone

    link_log = (tmp_path / "deploy" / "superlink.log").read_text(errors="replace")
    assert f"Uvicorn running on https://127.0.0.1:{dep.settings.port}" in link_log  # TLS, not http://
    assert "--insecure" not in link_log.splitlines()[0]
    for i in range(2):
        first = (tmp_path / "deploy" / f"supernode_{i}.log").read_text().splitlines()[0]
        assert f"--root-certificates {dep.settings.ca_cert}" in first and "--insecure" not in first
    assert 'root-certificates = "' in (tmp_path / "deploy" / "flwr_home" / "config.toml").read_text()

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
    assert (tmp_path / "deploy" / "flwr_run.log").stat().st_size > 0


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _names(procs: list[psutil.Process]) -> list[str]:
    """Program names: `flower-superlink`, not the `python` that runs its script."""
    out = []
    for p in procs:
        try:
            cmd = [Path(c).name for c in p.cmdline()]
        except psutil.Error:
            continue
        if cmd:
            out.append(cmd[1] if cmd[0].startswith("python") and len(cmd) > 1 else cmd[0])
    return out


@pytest.fixture(scope="module")
def prepared_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("sig") / "run"
    _prepare(run_dir)
    return run_dir


@needs_flower
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_everything_and_keeps_the_log(prepared_run, tmp_path, sig):
    work = tmp_path / "deploy"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "federation.deploy", str(prepared_run), "--workdir", str(work),
                             "--grace", "10"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        me = psutil.Process(proc.pid)
        end, tree = time.monotonic() + 90, []
        while time.monotonic() < end:  # up: SuperLink, 2 SuperNodes, their 3 SuperExecs, flwr run, the ServerApp
            assert proc.poll() is None, proc.communicate()
            tree = me.children(recursive=True)
            names = _names(tree)
            if (names.count("flower-superexec") >= 3 and names.count("flower-supernode") == 2
                    and "flower-superlink" in names and "flwr" in names and "flwr-serverapp" in names):
                break
            time.sleep(0.3)
        else:
            pytest.fail(f"deployment did not come up in 90 s: {_names(tree)}")
        tree = me.children(recursive=True)
        groups = {os.getpgid(p.pid) for p in tree}
        t0 = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
        stop_s = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    print(f"{sig.name}: stopped {len(tree)} processes in {stop_s:.1f} s")
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err and f"stopped by {sig.name}" in err, err
    left = [p for p in tree if _alive(p)]
    assert not left, f"still running: {_names(left)}"
    in_groups = [p for p in psutil.process_iter() if _alive(p) and _pgid(p) in groups]
    assert not in_groups, f"still in their process groups: {_names(in_groups)}"
    log = (work / "flwr_run.log").read_text(errors="replace")
    assert log.startswith("$ flwr run") and f"[federation.deploy: stopped by {sig.name}]" in log


def _pgid(p: psutil.Process) -> int | None:
    try:
        return os.getpgid(p.pid)
    except OSError:
        return None


def test_cli_help_and_bad_input(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "federation.deploy", *a], cwd=ROOT,  # noqa: E731
                                    capture_output=True, text=True, timeout=60)
    h = run("--help")
    assert h.returncode == 0
    for flag in ("--run-timeout", "--insecure", "--ssl-ca-certfile", "--ssl-certfile", "--ssl-keyfile", "--host",
                 "--port", "--grace", "--print-commands"):
        assert flag in h.stdout
    bad = run(str(tmp_path))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "spec.json" in bad.stderr
    (tmp_path / "c.pem").write_text("x")
    both = run(str(tmp_path), "--print-commands", "--port", "9092", "--insecure", "--ssl-ca-certfile", "c.pem")
    assert both.returncode == 2 and "exclude each other" in both.stderr and "Traceback" not in both.stderr


def test_self_signed_certificate(tmp_path):
    files = make_self_signed(tmp_path, ["10.1.2.3", "link.example.org"])
    ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    cert = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    cert.verify_directly_issued_by(ca)  # raises if the CA did not sign it
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ips = {str(i) for i in san.get_values_for_type(x509.IPAddress)}
    assert ips == {"127.0.0.1", "::1", "10.1.2.3"}
    assert set(san.get_values_for_type(x509.DNSName)) == {"localhost", "link.example.org"}
    assert oct(files.server_key.stat().st_mode & 0o777) == "0o600"


DOC_ARGS = ["/shared/fl", "--print-commands", "--host", "0.0.0.0", "--port", "9092", "--address",
            "superlink.example.org:9092", "--ssl-ca-certfile", "/etc/flower/ca.crt", "--ssl-certfile",
            "/etc/flower/server.pem", "--ssl-keyfile", "/etc/flower/server.key"]


def test_documented_multi_machine_commands_are_the_ones_deploy_builds():
    """docs/federation.md and README show `python -m federation.deploy ... --print-commands` output; the
    loopback tests above run the same builders with host 127.0.0.1."""
    out = subprocess.run([sys.executable, "-m", "federation.deploy", *DOC_ARGS], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True).stdout
    docs = (ROOT / "docs" / "federation.md").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "python -m federation.deploy " + " ".join(DOC_ARGS) in docs.replace("\\\n    ", "")
    for line in out.splitlines():
        if line and not line.startswith("#"):
            assert line in docs, f"docs/federation.md lacks: {line}"
    commands = [line for line in out.splitlines() if re.match(r"flower-super(link|node) ", line)]
    assert commands and all(c in readme for c in commands[:2])
    assert ":9092" in commands[0] or "--port 9092" in commands[0]
