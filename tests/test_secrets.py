"""No secret reaches a saved config or output: redact(), the backend's headers, and a real run end to end."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chat_server import ChatServer  # noqa: E402

from qualbench.models.openai_compat import OpenAIChatModel  # noqa: E402
from qualbench.records import SINGLE, Question, Request  # noqa: E402
from qualbench.secrets import REDACTED, redact  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def test_redact_keys_and_env_values(monkeypatch):
    key = f"sk-{uuid.uuid4().hex}"
    monkeypatch.setenv("MY_LLM_KEY", key)
    cfg = {
        "model": {"api_key_env": "MY_LLM_KEY", "max_tokens": 256, "api_key": "literal", "base_url": f"http://h/?k={key}"},
        "hub": {"hf_token": "hf_abc", "password": "pw", "pad_token": "<pad>", "token": None},
        "notes": [key, {"Secret": "x"}, 3],
        "prompt_tokens": 12,
    }
    out = redact(cfg)
    assert out["model"]["api_key"] == REDACTED and out["model"]["api_key_env"] == "MY_LLM_KEY"
    assert out["model"]["max_tokens"] == 256 and out["prompt_tokens"] == 12
    assert out["model"]["base_url"] == f"http://h/?k={REDACTED}"
    assert out["hub"] == {"hf_token": REDACTED, "password": REDACTED, "pad_token": "<pad>", "token": None}
    assert out["notes"] == [REDACTED, {"Secret": REDACTED}, 3]
    assert key not in repr(out) and cfg["model"]["api_key"] == "literal"  # input untouched
    assert redact(OmegaConf.create(cfg))["notes"][0] == REDACTED  # OmegaConf configs too
    monkeypatch.setenv("OPENAI_API_KEY", "sk-default-9f")
    assert redact({"x": "a sk-default-9f b"}) == {"x": f"a {REDACTED} b"}  # default variable always checked


def test_backend_sends_key_only_in_header(monkeypatch):
    key = f"sk-{uuid.uuid4().hex}"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    with ChatServer() as server:
        m = OpenAIChatModel(name="m", base_url=server.base_url, timeout_s=2, show_progress=False)
        item = Question("1", SINGLE, "消防", "题", {"A": "a", "B": "b"}, "A")
        m.generate([Request(item, [{"role": "user", "content": "hi"}])])
    assert server.headers[0]["Authorization"] == f"Bearer {key}"
    assert key not in repr(server.bodies) and key not in repr(m) and key not in repr(vars(m).get("api_key_env"))


def test_end_to_end_run_dir_holds_no_key(small_json, tmp_path):
    key = f"sk-e2e-{uuid.uuid4().hex}"
    run_dir = tmp_path / "run"
    env = {**os.environ, "OPENAI_API_KEY": key, "HF_HUB_OFFLINE": "1"}
    with ChatServer() as server:
        cmd = [
            sys.executable, "-m", "qualbench", "model=openai", "model.name=loopback-chat",
            f"model.base_url={server.base_url}", "model.timeout_s=5", "model.show_progress=false",
            "data=qualbench_json", f"data.path={small_json}", "run.plots=false", "run.n_boot=20",
            f"hydra.run.dir={run_dir}",
            # a user who interpolates the key into config (it is then sent in the body): must still not be saved
            "+model.extra_body.api_key=${oc.env:OPENAI_API_KEY}",
        ]
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert server.headers and all(h["Authorization"] == f"Bearer {key}" for h in server.headers)
    assert len(server.bodies) == 24 and server.bodies[0]["api_key"] == key
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"predictions.jsonl", "metrics.json", "config.yaml"} <= names
    for p in files:
        assert key.encode() not in p.read_bytes(), f"secret leaked into {p}"
    assert "OPENAI_API_KEY" in (run_dir / "config.yaml").read_text(encoding="utf-8")  # the variable name is kept
    assert key not in proc.stdout + proc.stderr
