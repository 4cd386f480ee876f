"""No secret reaches a saved config, log or output: redact(), the log filter, Hydra's files, and real runs
end to end against the loopback server (canaries in the env key, URL userinfo, a header field, echoed back)."""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from helpers.chat_server import ChatServer  # noqa: E402

from qualbench.models.openai_compat import OpenAIChatModel  # noqa: E402
from qualbench.records import SINGLE, Question, Request  # noqa: E402
from helpers.records import make_record  # noqa: E402

from qualbench.predictions import PredictionWriter, read_predictions  # noqa: E402
from qualbench.secrets import (  # noqa: E402
    LOG_FILTER,
    REDACTED,
    clear_registry,
    collect_secrets,
    redact,
    redact_text,
    redact_yaml_file,
    scrub,
)

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


def canary() -> str:
    """A random token no other text contains (unlike a prefix such as ``sk-``)."""
    return f"qb{uuid.uuid4().hex}"


@pytest.fixture(autouse=True)
def fresh_registry():
    clear_registry()
    yield
    clear_registry()


def test_redact_text_by_name_and_userinfo():
    k = canary()
    assert redact_text(f"GET http://alice:{k}@h:8/v1 failed") == f"GET http://{REDACTED}@h:8/v1 failed"
    assert k not in redact_text(f"https://{k}:@api.example/v1")  # the key as user name
    assert redact_text(f"{{'Authorization': 'Bearer {k}'}}") == f"{{'Authorization': '{REDACTED}'}}"
    assert redact_text(f"+model.extra_body.headers={{Authorization:Bearer {k}}}").endswith(f"{{Authorization:{REDACTED}}}")
    assert redact_text(f'"api_key": "{k}", x_token={k}&y=1') == f'"api_key": "{REDACTED}", x_token={REDACTED}&y=1'
    keep = "max_tokens=256 pad_token: <pad> api_key_env: MY_KEY token: null prompt_tokens=12 ${oc.env:K}"
    assert redact_text(keep) == keep
    assert redact_text("api_key=${oc.env:OPENAI_API_KEY}") == "api_key=${oc.env:OPENAI_API_KEY}"


def test_collected_secrets_are_redacted_by_value_everywhere():
    k_url, k_hdr, k_field = canary(), canary(), canary()
    cfg = OmegaConf.create({"model": {"base_url": f"http://u:{k_url}@127.0.0.1:9/v1",
                                      "extra_body": {"headers": {"Authorization": f"Bearer {k_hdr}"}},
                                      "hub": {"password": k_field}}, "prompt": {"system": "你是 user 助手"}})
    values = collect_secrets(cfg)
    basic = base64.b64encode(f"u:{k_url}".encode()).decode()
    assert {k_url, k_hdr, k_field, basic} <= set(values)
    assert "u" not in values and "Bearer" not in values  # user names / schemes are not secrets
    text = f"echo {k_hdr} and {k_url} and {k_field} and Basic {basic}; role user"
    assert scrub(text) == f"echo {REDACTED} and {REDACTED} and {REDACTED} and Basic {REDACTED}; role user"


def test_log_filter_redacts_message_args_and_traceback(monkeypatch):
    k = canary()
    monkeypatch.setenv("OPENAI_API_KEY", k)
    try:
        raise RuntimeError(f"server said {k}")
    except RuntimeError:
        rec = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed: %s", (f"key={k}",), sys.exc_info())
    assert LOG_FILTER.filter(rec) is True
    text = logging.Formatter().format(rec)
    assert k not in text and "failed: key=" in text and "RuntimeError: server said" in text


def test_prediction_rows_are_scrubbed_by_value(tmp_path, monkeypatch):
    k = canary()
    monkeypatch.setenv("OPENAI_API_KEY", k)
    with PredictionWriter(tmp_path / "p.jsonl") as w:
        w.write([{"idx": "1", "raw": f"答案：A {k}", "meta": {"reasoning": [k]}, "prompt_tokens": 3}])
    (row,) = read_predictions(tmp_path / "p.jsonl")
    assert row == {"idx": "1", "raw": f"答案：A {REDACTED}", "meta": {"reasoning": [REDACTED]}, "prompt_tokens": 3}


def test_redact_yaml_file_keeps_valid_yaml_and_interpolations(tmp_path):
    k = canary()
    p = tmp_path / "overrides.yaml"
    p.write_text(yaml.safe_dump([f"model.base_url=http://u:{k}@h/v1", "x=${oc.env:A}", "model.api_key=" + k]))
    assert redact_yaml_file(p) is True
    data = yaml.safe_load(p.read_text())
    assert data == [f"model.base_url=http://{REDACTED}@h/v1", "x=${oc.env:A}", f"model.api_key={REDACTED}"]
    before = p.read_text()
    assert redact_yaml_file(p) is False and p.read_text() == before  # nothing left: the file is not rewritten


def test_error_snippet_is_redacted_before_it_is_cut(monkeypatch):
    from qualbench.models.openai_compat import _snippet

    k = canary()
    monkeypatch.setenv("OPENAI_API_KEY", k)
    text = _snippet("x" * 290 + k + " rest of the echoed request")  # the key straddles the 300-character cut
    assert text == "x" * 290 + REDACTED and k[:6] not in text
    assert len(_snippet("y" * 500)) == 300


def _exam_file(path: Path) -> Path:
    """Six questions whose stems pick the loopback server's faults (see tests/helpers/chat_server.py)."""
    tags = ["#echo", "#echolong", "#null", "", "#500", "#echo #429"]
    recs = [make_record(i, "单选题", "消防", "A", stem=f"测试题目{i} {t}：下列哪一项符合规定（ ）。") for i, t in enumerate(tags)]
    path.write_text(json.dumps(recs, ensure_ascii=False), encoding="utf-8")
    return path


def _app(server: ChatServer, data: Path, canaries: dict[str, str], *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "qualbench", "model=openai", "model.name=loopback-chat",
        f"model.base_url=http://qbuser:{canaries['url']}@{server.base_url.split('://', 1)[1]}",
        "model.api_key_env=QB_CANARY_KEY", "model.timeout_s=5", "model.backoff_s=0.01", "model.show_progress=false",
        "data=qualbench_json", f"data.path={data}", "run.plots=false", "run.n_boot=20",
        # the key interpolated into the body, and a header field with its own secret: both echoed by the server
        "+model.extra_body.api_key=${oc.env:QB_CANARY_KEY}",
        f"+model.extra_body.headers={{Authorization:'Bearer {canaries['header']}'}}",
        *extra,
    ]


def _leaks(root: Path, canaries: dict[str, str]) -> list[str]:
    """'file: name' for every canary (and the Basic-auth form of the URL one) found in any file under root."""
    forms = dict(canaries, basic=base64.b64encode(f"qbuser:{canaries['url']}".encode()).decode())
    return [f"{p}: {name}" for p in root.rglob("*") if p.is_file()
            for name, v in forms.items() if v.encode() in p.read_bytes()]


def test_end_to_end_run_dir_holds_no_secret(tmp_path):
    canaries = {"env": canary(), "url": canary(), "header": canary()}
    run_dir = tmp_path / "run"
    env = {**os.environ, "QB_CANARY_KEY": canaries["env"], "HF_HUB_OFFLINE": "1"}
    with ChatServer() as server:
        cmd = _app(server, _exam_file(tmp_path / "exam.json"), canaries, f"hydra.run.dir={run_dir}")
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # the secrets did reach the server (so a leak was possible): Basic auth from the URL, the key in the body
    basic = base64.b64encode(f"qbuser:{canaries['url']}".encode()).decode()
    assert all(h["Authorization"] == f"Basic {basic}" for h in server.headers)
    assert server.bodies[0]["api_key"] == canaries["env"]
    assert server.bodies[0]["headers"] == {"Authorization": f"Bearer {canaries['header']}"}
    names = {p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file()}
    assert {"predictions.jsonl", "metrics.json", "config.yaml", "run_state.json", "app.log",
            ".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml"} <= names
    assert _leaks(run_dir, canaries) == []
    assert not any(v in proc.stdout + proc.stderr for v in canaries.values())
    # what was redacted is still there, marked, and the files still parse
    preds = {p["idx"]: p for p in read_predictions(run_dir / "predictions.jsonl")}
    assert REDACTED in preds["0"]["raw"] and preds["0"]["prediction"] == "A"  # echoed in the completion
    assert preds["1"]["skipped"].startswith("prompt_too_long") and REDACTED in preds["1"]["skipped"]
    log_text = (run_dir / "app.log").read_text(encoding="utf-8")
    assert "HTTP 500: " in log_text and REDACTED in log_text  # the echoed error body, redacted
    overrides = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text(encoding="utf-8"))
    assert f"model.base_url=http://{REDACTED}@{server.base_url.split('://', 1)[1]}" in overrides
    assert "+model.extra_body.api_key=${oc.env:QB_CANARY_KEY}" in overrides  # the name is kept
    assert OmegaConf.load(run_dir / ".hydra" / "config.yaml").model.extra_body.headers.Authorization == REDACTED
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["n_empty_completions"] == 1 and metrics["config"]["model"]["api_key_env"] == "QB_CANARY_KEY"
    assert "1 of 5 completions (20.0%)" in log_text and "backend problem" in log_text
    # quiet logs: no per-request httpx/httpcore INFO lines (one per completion before), warnings still shown
    assert "HTTP Request:" not in log_text + proc.stderr and "httpcore" not in log_text


def test_end_to_end_multirun_sweep_dir_holds_no_secret(tmp_path):
    canaries = {"env": canary(), "url": canary(), "header": canary()}
    sweep = tmp_path / "sweep"
    env = {**os.environ, "QB_CANARY_KEY": canaries["env"], "HF_HUB_OFFLINE": "1"}
    with ChatServer() as server:
        cmd = _app(server, _exam_file(tmp_path / "exam.json"), canaries, "seed=0,1", f"hydra.sweep.dir={sweep}")
        cmd[3:3] = ["-m"]  # right after `-m qualbench`: Hydra 1.3 takes --multirun only before the overrides
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    files = {p.relative_to(sweep).as_posix() for p in sweep.rglob("*") if p.is_file()}
    assert {"multirun.yaml", "0/metrics.json", "1/metrics.json", "0/.hydra/overrides.yaml", "1/app.log"} <= files
    assert _leaks(sweep, canaries) == []
    assert not any(v in proc.stdout + proc.stderr for v in canaries.values())
    assert REDACTED in (sweep / "multirun.yaml").read_text(encoding="utf-8")
