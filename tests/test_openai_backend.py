"""model=openai against a real loopback HTTP server: replies, retries, timeouts, failure, concurrency."""

from __future__ import annotations

import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chat_server import ChatServer  # noqa: E402

from qualbench.models.base import ModelError  # noqa: E402
from qualbench.models.openai_compat import (  # noqa: E402
    BackendBatchError,
    OpenAIChatModel,
    backoff_delay,
    parse_retry_after,
)
from qualbench.records import SINGLE, Question, Request  # noqa: E402


def req(text: str, idx: str = "q") -> Request:
    item = Question(idx=idx, question_type=SINGLE, domain="消防", stem="题干", options={"A": "甲", "B": "乙"}, answer="A")
    return Request(item=item, messages=[{"role": "system", "content": "sys"}, {"role": "user", "content": text}])


def model(server: ChatServer, **kw) -> OpenAIChatModel:
    opts = dict(name="tiny-chat", base_url=server.base_url, max_concurrency=4, max_retries=3, backoff_s=0.01,
                backoff_max_s=1.0, timeout_s=1.0, show_progress=False)
    opts.update(kw)
    return OpenAIChatModel(**opts)


@pytest.fixture()
def server():
    with ChatServer() as s:
        yield s


def test_normal_replies_in_order_with_usage(server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    m = model(server, extra_body={"top_p": 1.0}, max_tokens=33)
    reqs = [req(f"问题{i}", idx=str(i)) for i in range(6)]
    out = m.generate(reqs)
    assert len(out) == 6 and all(r.text.endswith("答案：A") for r in out)
    assert [r.prompt_tokens for r in out] == [len(f"问题{i}") for i in range(6)]
    assert all(r.completion_tokens == 7 and r.latency_s > 0 and r.skipped is None for r in out)
    body = server.bodies[0]
    assert body["model"] == "tiny-chat" and body["temperature"] == 0 and body["max_tokens"] == 33
    assert body["top_p"] == 1.0 and body["messages"][0]["role"] == "system"
    assert all("authorization" not in {k.lower() for k in h} for h in server.headers)  # no key, no header


def test_api_key_only_from_env(server, monkeypatch):
    monkeypatch.setenv("QB_TEST_KEY", "sk-unit-7f3a")
    m = model(server, api_key_env="QB_TEST_KEY")
    m.generate([req("你好")])
    assert server.headers[-1]["Authorization"] == "Bearer sk-unit-7f3a"
    assert "sk-unit" not in repr(m)


def test_429_honours_retry_after_then_succeeds(server):
    m = model(server, backoff_s=0.0)  # jitter would be 0 s: only Retry-After (0.3 s) can explain the wait
    t0 = time.perf_counter()
    (r,) = m.generate([req("限流 #429")])
    assert time.perf_counter() - t0 >= 0.3
    assert r.text.startswith("回答2") and r.meta["attempts"] == 2 and server.calls["限流 #429"] == 2


def test_5xx_then_success(server):
    (r,) = model(server).generate([req("网关 #500")])
    assert r.text.startswith("回答2") and r.meta["attempts"] == 2


def test_timeout_then_success(server):
    (r,) = model(server, timeout_s=0.3).generate([req("慢 #slow")])  # the server sleeps 0.6 s on the first call
    assert r.text.startswith("回答2") and r.meta["attempts"] == 2
    assert r.latency_s < 0.3 and r.meta["wall_s"] >= 0.3


def test_server_that_stays_down_raises_clear_error_and_keeps_finished(server):
    m = model(server, max_retries=2, max_concurrency=1)
    reqs = [req("好的", "a"), req("坏的 #fail", "b"), req("之后", "c")]
    with pytest.raises(BackendBatchError) as ei:
        m.generate(reqs)
    msg = str(ei.value)
    assert server.base_url in msg and "HTTP 500" in msg and "3 attempts" in msg and "item b" in msg
    assert ei.value.responses[0] is not None and ei.value.responses[0].text.endswith("答案：A")
    assert ei.value.responses[1] is None
    assert server.calls["坏的 #fail"] == 3
    assert server.calls["之后"] == 0 and ei.value.responses[2] is None  # nothing new starts after a fatal error


def test_connection_refused_is_model_error():
    with ChatServer() as s:
        url = s.base_url
    m = OpenAIChatModel(name="x", base_url=url, max_retries=1, backoff_s=0.01, timeout_s=0.2, show_progress=False)
    with pytest.raises(ModelError) as ei:
        m.generate([req("hi")])
    assert url in str(ei.value) and "2 attempts" in str(ei.value) and "connection error" in str(ei.value)


def test_context_overflow_skips_or_errors(server):
    (r,) = model(server).generate([req("太长 #long")])
    assert r.skipped and "prompt_too_long" in r.skipped and r.text == ""
    with pytest.raises(ModelError, match="maximum context length"):
        model(server, on_overflow="error").generate([req("太长 #long")])


def test_requests_overlap(server):
    out = model(server, max_concurrency=4).generate([req(f"并发{i} #sleep", str(i)) for i in range(8)])
    assert len(out) == 8 and server.max_in_flight > 1
    assert server.max_in_flight <= 4


def test_retry_after_and_backoff_helpers():
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    when = datetime(1994, 11, 6, 8, 49, 47, tzinfo=timezone.utc).timestamp()
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now=when - 10) == pytest.approx(10.0)
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now=when + 10) == 0.0
    assert backoff_delay(3, 1.0, 60.0, retry_after=5.0) == 5.0
    assert backoff_delay(3, 1.0, 2.0, retry_after=50.0) == 2.0
    delays = [backoff_delay(4, 1.0, 60.0) for _ in range(200)]
    assert all(0 <= d <= 8.0 for d in delays) and max(delays) > 4.0  # full jitter over [0, 8]
