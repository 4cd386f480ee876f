"""Run a prepared spec on Flower's deployment engine on this machine: a SuperLink and N SuperNodes on
loopback (free ports, ``--insecure``), then ``flwr run``; every process group is killed on exit."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from qualbench.errors import QualBenchError

APP_PROJECT = Path(__file__).resolve().parent / "app_project"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout: float, proc: subprocess.Popen, log: Path) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise QualBenchError(f"flower-superlink exited with {proc.returncode}; see {log}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise QualBenchError(f"flower-superlink did not listen on 127.0.0.1:{port} within {timeout:.0f}s; see {log}")


class LocalDeployment(AbstractContextManager):
    """``with LocalDeployment(workdir, num_nodes) as dep: dep.run(spec_path)``."""

    def __init__(self, workdir: str | Path, num_nodes: int, startup_timeout: float = 60.0):
        self.workdir = Path(workdir)
        self.num_nodes = num_nodes
        self.startup_timeout = startup_timeout
        self.procs: list[subprocess.Popen] = []
        self.port = free_port()
        self.env = dict(os.environ)
        repo = str(Path(__file__).resolve().parents[1])
        self.env.update({
            "FLWR_HOME": str(self.workdir / "flwr_home"),
            "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",  # use this environment, install nothing
            "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": os.pathsep.join(p for p in (repo, self.env.get("PYTHONPATH", "")) if p),
        })

    def _start(self, args: list[str], log_name: str) -> subprocess.Popen:
        log = (self.workdir / log_name).open("wb")
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.workdir,
                                start_new_session=True)  # own process group: killed as a whole later
        self.procs.append(proc)
        return proc

    def __enter__(self) -> "LocalDeployment":
        self.workdir.mkdir(parents=True, exist_ok=True)
        home = Path(self.env["FLWR_HOME"])
        home.mkdir(parents=True, exist_ok=True)
        (home / "config.toml").write_text(
            f'[superlink]\ndefault = "local-test"\n\n[superlink.local-test]\n'
            f'address = "127.0.0.1:{self.port}"\ninsecure = true\n', encoding="utf-8")
        try:
            link = self._start(["flower-superlink", "--insecure", "--host", "127.0.0.1", "--port", str(self.port),
                                "--disable-runtime-dependency-installation"], "superlink.log")
            _wait_port(self.port, self.startup_timeout, link, self.workdir / "superlink.log")
            for i in range(self.num_nodes):
                self._start(["flower-supernode", "--insecure", "--superlink", f"127.0.0.1:{self.port}",
                             "--host", "127.0.0.1", "--port", str(free_port()),
                             "--node-config", f"partition-id={i} num-partitions={self.num_nodes}"],
                            f"supernode_{i}.log")
        except BaseException:
            self.close()
            raise
        return self

    def run(self, spec_path: str | Path, timeout: float = 600.0) -> subprocess.CompletedProcess:
        """``flwr run`` the app project with ``spec-path`` (blocks until the run ends, ``--stream``)."""
        cmd = ["flwr", "run", str(APP_PROJECT), "local-test", "--run-config", f"spec-path='{spec_path}'", "--stream"]
        try:
            out = subprocess.run(cmd, env=self.env, cwd=self.workdir, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise QualBenchError(f"flwr run did not finish within {timeout:.0f}s; logs in {self.workdir}") from e
        (self.workdir / "flwr_run.log").write_text(out.stdout + out.stderr, encoding="utf-8")
        if out.returncode != 0:
            raise QualBenchError(f"flwr run failed ({out.returncode}); see {self.workdir / 'flwr_run.log'}")
        return out

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=5)
        self.procs.clear()

    def __exit__(self, *exc: Any) -> None:
        self.close()


def main(argv: list[str] | None = None) -> None:
    """``python -m federation.deploy RUN_DIR [NUM_NODES]``: run a prepared spec on a local deployment."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        raise SystemExit("usage: python -m federation.deploy RUN_DIR [NUM_NODES]")
    run_dir = Path(args[0]).resolve()
    from federation.spec import load_spec

    spec = load_spec(run_dir / "spec.json")
    n = int(args[1]) if len(args) > 1 else spec.num_clients
    with LocalDeployment(run_dir / "deployment", n) as dep:
        dep.run(run_dir / "spec.json")
    print(f"done: {run_dir / 'history.json'}")


if __name__ == "__main__":
    main()
