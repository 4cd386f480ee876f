"""Run a prepared spec on Flower's deployment engine on this machine: a SuperLink and N SuperNodes, then
``flwr run``; everything started is stopped on exit, on SIGTERM and on SIGINT.

The commands come from :class:`Settings` through :func:`superlink_command`, :func:`supernode_command`,
:func:`connection_toml` and :func:`flwr_run_command`; ``python -m federation.deploy RUN_DIR
--print-commands [--host 0.0.0.0 --port 9092 --address HOST:9092 ...]`` prints them for a multi-machine
deployment (docs/federation.md shows that output).

Flower 1.42 serves the Fleet API (SuperNodes), the Control API (``flwr run``/``ls``/``stop``) and the
Runtime API (its ServerAppIo successor, used by the SuperLink's own SuperExec) over **one** HTTP(S) port,
``--host``/``--port`` (default 127.0.0.1:8000). ``--fleet-api-address`` and ``--control-api-address`` are
deprecated and only log a warning. TLS is on by default: with no certificate paths a self-signed CA and a
server certificate for 127.0.0.1/localhost are written into the work dir (:mod:`federation.tls`).
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable

import psutil

from qualbench.errors import QualBenchError

APP_PROJECT = Path(__file__).resolve().parent / "app_project"
CONNECTION = "qualbench"  # name of the SuperLink connection written to $FLWR_HOME/config.toml


class Interrupted(BaseException):
    """Raised in the main thread by SIGTERM/SIGINT so that every ``with LocalDeployment`` cleans up."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


@dataclass(frozen=True)
class Settings:
    """Where the SuperLink listens, how parties reach it, TLS, and time limits."""

    host: str = "127.0.0.1"  # SuperLink bind host (--host); 0.0.0.0 to accept other machines
    port: int = 0  # SuperLink port (--port) for the Fleet, Control and Runtime APIs; 0: a free one
    address: str | None = None  # HOST:PORT that SuperNodes and flwr dial; None: host:port (0.0.0.0 -> 127.0.0.1)
    insecure: bool = False  # explicit opt-in: plain HTTP, no TLS
    ca_cert: str | None = None  # CA certificate (SuperLink --ssl-ca-certfile; clients' root certificate)
    server_cert: str | None = None  # SuperLink --ssl-certfile (SANs must cover `address`'s host)
    server_key: str | None = None  # SuperLink --ssl-keyfile
    node_host: str = "127.0.0.1"  # each SuperNode's local Runtime API host (--host)
    run_timeout: float = 600.0  # seconds `flwr run --stream` may take
    startup_timeout: float = 60.0  # seconds for the SuperLink to accept connections
    grace: float = 10.0  # seconds between SIGTERM and SIGKILL when stopping

    @property
    def dial(self) -> str:
        if self.address:
            return self.address
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    @property
    def tls(self) -> bool:
        return not self.insecure

    def check(self, files: bool = True) -> None:
        """Refuse contradictory settings; ``files``: the certificate paths must exist here."""
        certs = (self.ca_cert, self.server_cert, self.server_key)
        if self.insecure and any(certs):
            raise QualBenchError("--insecure and certificate paths exclude each other")
        if self.tls:
            if not all(certs):
                raise QualBenchError("TLS needs all of --ssl-ca-certfile, --ssl-certfile and --ssl-keyfile "
                                     "(or none, for a self-signed pair; or --insecure)")
            for flag, p in zip(("--ssl-ca-certfile", "--ssl-certfile", "--ssl-keyfile"), certs):
                if files and not Path(p).is_file():
                    raise QualBenchError(f"{flag} {p}: no such file")
        if not 0 <= self.port <= 65535:
            raise QualBenchError(f"--port {self.port}: not a port number")


def superlink_command(s: Settings) -> list[str]:
    tls = ["--insecure"] if s.insecure else ["--ssl-ca-certfile", str(s.ca_cert), "--ssl-certfile",
                                             str(s.server_cert), "--ssl-keyfile", str(s.server_key)]
    return ["flower-superlink", *tls, "--host", s.host, "--port", str(s.port),
            "--disable-runtime-dependency-installation"]


def supernode_command(s: Settings, partition_id: int, num_partitions: int, port: int) -> list[str]:
    tls = ["--insecure"] if s.insecure else ["--root-certificates", str(s.ca_cert)]
    return ["flower-supernode", *tls, "--superlink", s.dial, "--host", s.node_host, "--port", str(port),
            "--node-config", f"partition-id={partition_id} num-partitions={num_partitions}"]


def connection_toml(s: Settings, name: str = CONNECTION) -> str:
    """``$FLWR_HOME/config.toml`` with one SuperLink connection (what ``flwr run APP name`` dials)."""
    tls = "insecure = true\n" if s.insecure else f'root-certificates = "{Path(str(s.ca_cert)).expanduser().absolute()}"\n'
    return f'[superlink]\ndefault = "{name}"\n\n[superlink.{name}]\naddress = "{s.dial}"\n{tls}'


def flwr_run_command(spec_path: str | Path, name: str = CONNECTION, app: str | Path = APP_PROJECT) -> list[str]:
    return ["flwr", "run", str(app), name, "--run-config", f"spec-path='{spec_path}'", "--stream"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def _wait_port(address: str, timeout: float, proc: subprocess.Popen, log: Path) -> None:
    host, port = _split(address)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise QualBenchError(f"flower-superlink exited with {proc.returncode}; see {log}")
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise QualBenchError(f"flower-superlink did not listen on {address} within {timeout:.0f}s; see {log}")


def _tree(roots: Iterable[psutil.Process]) -> dict[int, psutil.Process]:
    """The roots and all their live descendants (by pid), whatever session or process group they are in."""
    found: dict[int, psutil.Process] = {}
    for r in roots:
        try:
            if r.is_running():
                found[r.pid] = r
                for c in r.children(recursive=True):
                    found[c.pid] = c
        except psutil.Error:
            pass
    return found


def _signal_groups(procs: Iterable[subprocess.Popen], sig: int) -> None:
    """Send ``sig`` to the process group of every started process that is still running."""
    for proc in procs:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass


def _signal_all(procs: Iterable[psutil.Process], sig: int) -> None:
    for p in procs:
        try:
            p.send_signal(sig)  # psutil checks the pid was not reused
        except psutil.Error:
            pass


class LocalDeployment(AbstractContextManager):
    """``with LocalDeployment(workdir, num_nodes) as dep: dep.run(spec_path)``.

    Every process it starts gets its own session; :meth:`close` sends SIGTERM to each of them and to every
    descendant (Flower's SuperExecs and app processes detach into sessions of their own), waits up to
    ``settings.grace`` seconds and SIGKILLs what is left."""

    def __init__(self, workdir: str | Path, num_nodes: int, startup_timeout: float | None = None,
                 settings: Settings | None = None):
        s = settings or Settings()
        if startup_timeout is not None:
            s = replace(s, startup_timeout=startup_timeout)
        self.workdir = Path(workdir).resolve()
        self.num_nodes = num_nodes
        self.settings = s
        self.procs: list[subprocess.Popen] = []
        self._known: dict[int, psutil.Process] = {}  # everything seen in the tree, for close()
        self.env = dict(os.environ)
        repo = str(Path(__file__).resolve().parents[1])
        self.env.update({
            "FLWR_HOME": str(self.workdir / "flwr_home"),
            "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",  # use this environment, install nothing
            "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": os.pathsep.join(p for p in (repo, self.env.get("PYTHONPATH", "")) if p),
        })

    @property
    def port(self) -> int:
        return self.settings.port

    def _resolve_settings(self) -> None:
        s = self.settings
        if s.port == 0:
            s = replace(s, port=free_port())
        if s.tls and not any((s.ca_cert, s.server_cert, s.server_key)):
            from federation.tls import make_self_signed

            host = _split(s.dial)[0]
            files = make_self_signed(self.workdir / "certs", [] if host in ("127.0.0.1", "localhost", "::1")
                                     else [host])
            s = replace(s, ca_cert=str(files.ca_cert), server_cert=str(files.server_cert),
                        server_key=str(files.server_key))
        s.check()
        self.settings = s

    def _start(self, args: list[str], log_name: str) -> subprocess.Popen:
        with (self.workdir / log_name).open("ab") as log:
            log.write(f"$ {_sh(args)}\n".encode())
            log.flush()
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=self.env, cwd=self.workdir, start_new_session=True)
        self.procs.append(proc)
        self._remember()
        return proc

    def _remember(self) -> None:
        roots = [p for p in (self._proc(x) for x in self.procs) if p is not None]
        self._known.update(_tree(roots))

    @staticmethod
    def _proc(popen: subprocess.Popen) -> psutil.Process | None:
        try:
            return psutil.Process(popen.pid) if popen.poll() is None else None
        except psutil.Error:
            return None

    def pids(self) -> set[int]:
        """Every live process this deployment started, directly or not."""
        self._remember()
        return {pid for pid, p in self._known.items() if p.is_running()}

    def __enter__(self) -> "LocalDeployment":
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._resolve_settings()
            s = self.settings
            home = Path(self.env["FLWR_HOME"])
            home.mkdir(parents=True, exist_ok=True)
            (home / "config.toml").write_text(connection_toml(s), encoding="utf-8")
            link = self._start(superlink_command(s), "superlink.log")
            _wait_port(s.dial, s.startup_timeout, link, self.workdir / "superlink.log")
            for i in range(self.num_nodes):
                self._start(supernode_command(s, i, self.num_nodes, free_port()), f"supernode_{i}.log")
        except BaseException:
            self.close()
            raise
        return self

    def run(self, spec_path: str | Path, timeout: float | None = None) -> int:
        """``flwr run`` the app project with ``spec-path`` (blocks until the run ends, ``--stream``); its
        output goes to ``flwr_run.log`` as it comes, so the log survives a timeout or a signal."""
        timeout = self.settings.run_timeout if timeout is None else timeout
        log_path = self.workdir / "flwr_run.log"
        proc = self._start(flwr_run_command(spec_path), "flwr_run.log")
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._note(log_path, f"federation.deploy: flwr run did not finish within {timeout:.0f}s")
            raise QualBenchError(f"flwr run did not finish within {timeout:.0f}s (--run-timeout); "
                                 f"logs in {self.workdir}") from None
        except Interrupted as e:
            self._note(log_path, f"federation.deploy: stopped by {e.name}")
            raise
        finally:
            self._remember()
        if rc != 0:
            raise QualBenchError(f"flwr run failed ({rc}); see {log_path}")
        return rc

    @staticmethod
    def _note(log: Path, line: str) -> None:
        with log.open("a", encoding="utf-8") as f:
            f.write(f"\n[{line}]\n")

    def close(self) -> None:
        """Stop every process started here and their descendants: SIGTERM, ``grace`` s, then SIGKILL."""
        self._remember()
        live = [p for p in self._known.values() if p.is_running()]
        # flwr run first, SuperNodes next, the SuperLink last (it tells its own SuperExec to stop)
        _signal_groups(reversed(self.procs), signal.SIGTERM)
        _signal_all(live, signal.SIGTERM)
        end = time.monotonic() + self.settings.grace
        while time.monotonic() < end:
            for proc in self.procs:
                proc.poll()  # reap our direct children
            self._known.update(_tree(live))  # children spawned during shutdown
            live = [p for p in self._known.values() if _alive(p)]
            if not live:
                break
            time.sleep(0.1)
        if live:
            _signal_groups(self.procs, signal.SIGKILL)
            _signal_all(live, signal.SIGKILL)
            psutil.wait_procs(live, timeout=5)
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.procs.clear()

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _parser() -> argparse.ArgumentParser:
    d = Settings()
    p = argparse.ArgumentParser(
        prog="python -m federation.deploy",
        description="Run a prepared federated spec (qualbench experiment=federated federation.engine=prepare) "
                    "on Flower's deployment engine: a SuperLink, NUM_NODES SuperNodes and `flwr run`, all on "
                    "this machine; everything is stopped on exit, SIGTERM or SIGINT. TLS is on by default "
                    "(self-signed for loopback unless certificate paths are given).")
    p.add_argument("run_dir", help="run directory holding spec.json")
    p.add_argument("num_nodes", nargs="?", type=int, help="SuperNodes to start (default: the spec's clients)")
    p.add_argument("--host", default=d.host, help=f"SuperLink bind host (default {d.host}; 0.0.0.0: all interfaces)")
    p.add_argument("--port", type=int, default=d.port,
                   help="SuperLink port for the Fleet, Control and Runtime APIs (default 0: a free port)")
    p.add_argument("--address", help="HOST:PORT that SuperNodes and flwr dial (default: --host:--port)")
    p.add_argument("--insecure", action="store_true", help="no TLS (plain HTTP); explicit opt-in")
    p.add_argument("--ssl-ca-certfile", dest="ca_cert", help="CA certificate; SuperNodes and flwr trust it")
    p.add_argument("--ssl-certfile", dest="server_cert", help="SuperLink server certificate (PEM)")
    p.add_argument("--ssl-keyfile", dest="server_key", help="SuperLink server private key (PEM)")
    p.add_argument("--run-timeout", type=float, default=d.run_timeout,
                   help=f"seconds `flwr run` may take (default {d.run_timeout:.0f})")
    p.add_argument("--startup-timeout", type=float, default=d.startup_timeout,
                   help=f"seconds for the SuperLink to come up (default {d.startup_timeout:.0f})")
    p.add_argument("--grace", type=float, default=d.grace,
                   help=f"seconds between SIGTERM and SIGKILL when stopping (default {d.grace:.0f})")
    p.add_argument("--workdir", help="logs, certificates and FLWR_HOME (default RUN_DIR/deployment)")
    p.add_argument("--print-commands", action="store_true",
                   help="print the SuperLink, SuperNode, config.toml and flwr run commands and exit")
    return p


def _sh(args: list[str]) -> str:
    """A shell line for ``args``, double-quoting arguments that hold spaces or single quotes (readable docs)."""
    out = []
    for a in args:
        if shlex.quote(a) == a:
            out.append(a)
        elif not any(c in a for c in '"$`\\!'):
            out.append(f'"{a}"')
        else:
            out.append(shlex.quote(a))
    return " ".join(out)


def _app_path() -> str:
    rel = os.path.relpath(APP_PROJECT)
    return str(APP_PROJECT) if rel.startswith("..") else rel


def print_commands(s: Settings, spec_path: Path, num_nodes: int, flwr_home: str = "~/.flwr") -> str:
    lines = ["# SuperLink host", _sh(superlink_command(s))]
    for i in range(num_nodes):
        lines += [f"# SuperNode host {i}", _sh(supernode_command(s, i, num_nodes, 9094 + i))]
    lines += [f"# {flwr_home}/config.toml on the machine that submits the run", *connection_toml(s).splitlines(),
              "# submit", _sh(flwr_run_command(spec_path, app=_app_path()))]
    return "\n".join(lines)


def _raise_interrupted(signum: int, _frame: Any) -> None:
    # the first signal unwinds into LocalDeployment.close(); later ones are ignored so cleanup finishes
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    raise Interrupted(signum)


def main(argv: list[str] | None = None) -> None:
    """``python -m federation.deploy RUN_DIR [NUM_NODES] [options]`` (see ``--help``)."""
    a = _parser().parse_args(argv)
    run_dir = Path(a.run_dir).resolve()
    s = Settings(host=a.host, port=a.port, address=a.address, insecure=a.insecure, ca_cert=a.ca_cert,
                 server_cert=a.server_cert, server_key=a.server_key, run_timeout=a.run_timeout,
                 startup_timeout=a.startup_timeout, grace=a.grace)
    try:
        if a.print_commands:
            if a.port == 0:
                raise QualBenchError("--print-commands needs a fixed --port")
            s.check(files=False)  # the paths are those on the hosts that will run the commands
            print(print_commands(s, run_dir / "spec.json", a.num_nodes or 2))
            return
        from federation.spec import load_spec

        spec = load_spec(run_dir / "spec.json")
        n = a.num_nodes or spec.num_clients
        workdir = Path(a.workdir) if a.workdir else run_dir / "deployment"
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, _raise_interrupted)
        with LocalDeployment(workdir, n, settings=s) as dep:
            print(f"federation.deploy: SuperLink on {dep.settings.dial} ({'TLS' if s.tls else 'insecure'}), "
                  f"{n} SuperNodes; logs in {workdir}", flush=True)
            dep.run(run_dir / "spec.json")
    except Interrupted as e:
        print(f"federation.deploy: stopped by {e.name}; every process it started is gone", file=sys.stderr)
        raise SystemExit(128 + e.signum) from None
    except QualBenchError as e:
        print(f"federation.deploy: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"done: {run_dir / 'history.json'}")


if __name__ == "__main__":
    main()
