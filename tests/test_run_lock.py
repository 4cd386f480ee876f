"""Issue 11 item 5: one run per run directory (qualbench.runlock), tested with real concurrent processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qualbench.runlock import HOLDER_NAME, run_dir_lock  # noqa: E402
from helpers.chat_server import ChatServer  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", OMP_NUM_THREADS="2", LOOPBACK_KEY="x")


def _slow_run(server: ChatServer, run_dir: Path, limit: int = 40) -> list[str]:
    """A run that takes about limit × 0.1 s: one request at a time against the loopback server (#sleep)."""
    return [sys.executable, "-m", "qualbench", "model=openai", "model.name=loopback", f"model.base_url={server.base_url}",
            "model.api_key_env=LOOPBACK_KEY", "model.max_concurrency=1", "model.show_progress=false",
            f"limit={limit}", "run.batch_size=4", "run.plots=false", "run.n_boot=50", f"hydra.run.dir={run_dir}"]


def _lines(path: Path) -> int:
    return path.read_text(encoding="utf-8").count("\n") if path.exists() else 0


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    """Until ``path`` holds a finished line (the run holds its directory and is answering items)."""
    t0 = time.time()
    while _lines(path) < 1:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.time() - t0 < timeout, f"{path} never appeared"
        time.sleep(0.05)


def test_second_concurrent_run_is_refused_naming_the_holder(tmp_path):
    run = tmp_path / "run"
    with ChatServer(tags="#sleep") as server:
        first = subprocess.Popen(_slow_run(server, run), cwd=REPO, env=ENV, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        try:
            _wait_for(run / "predictions.jsonl", first)  # the first run is answering items now
            holder = json.loads((run / HOLDER_NAME).read_text(encoding="utf-8"))
            assert holder["pid"] == first.pid
            second = subprocess.run(_slow_run(server, run), cwd=REPO, env=ENV, capture_output=True, text=True,
                                    timeout=300)
            assert first.poll() is None, "the first run ended before the second tried: the test proves nothing"
        finally:
            out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-3000:]
    assert second.returncode == 2
    errors = [x for x in second.stderr.splitlines() if x.startswith("qualbench: error:")]
    assert len(errors) == 1, second.stderr[-3000:]
    assert f"{run} is in use by another qualbench run" in errors[0] and f"pid {first.pid}" in errors[0]
    assert "Traceback" not in second.stderr
    rows = [json.loads(x) for x in (run / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 40 and len({r["idx"] for r in rows}) == 40  # before the lock: 80 lines, each item twice
    assert json.loads((run / "metrics.json").read_text(encoding="utf-8"))["n"] == 40
    assert json.loads((run / "status.json").read_text(encoding="utf-8"))["status"] == "completed"
    assert not (run / "failure.json").exists()  # the refused run wrote nothing into the holder's directory
    assert not (run / HOLDER_NAME).exists()  # the holder removes its holder file when it ends


def test_kill_9_leaves_no_lock_that_blocks_a_resume(tmp_path):
    run = tmp_path / "run"
    with ChatServer(tags="#sleep") as server:
        first = subprocess.Popen(_slow_run(server, run), cwd=REPO, env=ENV, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        _wait_for(run / "predictions.jsonl", first)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
        assert (run / HOLDER_NAME).exists()  # the stale holder file of the killed run is still there
        done_before = _lines(run / "predictions.jsonl")
        assert 1 <= done_before < 40
        again = subprocess.run(_slow_run(server, run), cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resuming: {done_before} of 40 items already in" in again.stdout + again.stderr
    idx = [json.loads(x)["idx"] for x in (run / "predictions.jsonl").read_text(encoding="utf-8").splitlines() if x.strip()]
    assert len(idx) >= 40 and len(set(idx)) == 40
    assert json.loads((run / "metrics.json").read_text(encoding="utf-8"))["n"] == 40


def test_lock_in_process_nested_and_across_processes(tmp_path):
    run = tmp_path / "run"
    with run_dir_lock(run):
        with run_dir_lock(run):  # the app locks, then run_eval locks again: counted, not a deadlock
            pass
        holder = json.loads((run / HOLDER_NAME).read_text(encoding="utf-8"))
        assert holder["pid"] == os.getpid()
        code = ("import sys; from qualbench.runlock import run_dir_lock, RunDirLocked\n"
                "try:\n    run_dir_lock(sys.argv[1]).__enter__()\nexcept RunDirLocked as e:\n"
                "    print(e); sys.exit(3)\n")
        other = subprocess.run([sys.executable, "-c", code, str(run)], cwd=REPO, capture_output=True, text=True,
                               timeout=60)
        assert other.returncode == 3 and f"pid {os.getpid()}" in other.stdout
    with run_dir_lock(run):  # released: free again
        pass
    assert not (run / HOLDER_NAME).exists()
    with pytest.raises(ValueError):  # an error inside the block releases the lock too
        with run_dir_lock(run):
            raise ValueError("task failed")
    free = subprocess.run([sys.executable, "-c", code, str(run)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert free.returncode == 0, free.stdout + free.stderr
