"""model=openai against a real loopback HTTP server: replies, retries, timeouts, failure, concurrency."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from helpers.chat_server import ChatServer  # noqa: E402

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


# --- total deadline per request, faults, empty completions ---------------------------------------------


def test_dripping_reply_times_out_at_the_total_deadline(server):
    m = model(server, timeout_s=1.0, max_retries=0)  # the reply drips 1 byte / 0.2 s: ~90 s to finish
    t0 = time.perf_counter()
    with pytest.raises(ModelError) as ei:
        m.generate([req("滴 #dripall")])
    elapsed = time.perf_counter() - t0
    assert 1.0 <= elapsed < 2.0, elapsed  # per-read timeouts never fire here (each read gets a byte): ~90 s
    assert "timeout_s=1" in str(ei.value) and "1 attempts" in str(ei.value)


def test_drip_then_retry_succeeds_within_deadline_plus_retry(server):
    (r,) = model(server, timeout_s=0.5).generate([req("滴一次 #drip")])
    assert r.text.startswith("回答2") and r.meta["attempts"] == 2
    assert 0.5 <= r.meta["wall_s"] < 1.5


def test_silent_socket_costs_timeout_s_not_the_default(server):
    m = model(server, timeout_s=0.5, max_retries=0)
    t0 = time.perf_counter()
    with pytest.raises(ModelError, match="total deadline"):
        m.generate([req("沉默 #silent")])
    assert 0.5 <= time.perf_counter() - t0 < 1.5
    (r,) = model(server, timeout_s=0.5).generate([req("沉默 #silent")])  # the server answers the second call
    assert r.text.startswith("回答2")


def test_dripping_server_with_retries_is_bounded_by_attempts_times_deadline(server):
    m = model(server, timeout_s=0.4, max_retries=2, backoff_s=0.0)
    t0 = time.perf_counter()
    with pytest.raises(ModelError, match="3 attempts"):
        m.generate([req("一直滴 #dripall")])
    assert 1.2 <= time.perf_counter() - t0 < 2.5


def test_connection_reset_is_retried(server):
    (r,) = model(server).generate([req("重置 #reset")])
    assert r.text.startswith("回答2") and r.meta["attempts"] == 2


@pytest.mark.parametrize("tag", ["#garbage", "#nochoices"])
def test_malformed_body_is_a_clear_error_not_retried(server, tag):
    with pytest.raises(ModelError, match="malformed completion") as ei:
        model(server).generate([req(f"坏 {tag}")])
    assert server.calls[f"坏 {tag}"] == 1 and "Traceback" not in str(ei.value)


def test_empty_completions_are_flagged_and_counted(server, caplog):
    from qualbench.models.openai_compat import EMPTY_FLAG, check_empty_completions

    out = model(server).generate([req("空 #null", "a"), req("空白 #empty", "b"), req("好", "c")])
    assert [r.text for r in out[:2]] == ["", ""] and out[0].meta["reasoning"] == "想了很久……"
    assert out[0].meta[EMPTY_FLAG] and out[1].meta[EMPTY_FLAG] and EMPTY_FLAG not in out[2].meta
    rows = [{"meta": r.meta, "skipped": r.skipped} for r in out] + [{"meta": {}, "skipped": "prompt_too_long"}]
    with caplog.at_level("WARNING"):
        assert check_empty_completions(rows, 0.05, "srv") == 2  # the skipped row is not a completion
    assert "2 of 3 completions" in caplog.text and "backend problem" in caplog.text
    caplog.clear()
    many = rows[2:3] * 60 + rows[:1]  # 1 empty of 61: under 5 %, counted but no warning
    with caplog.at_level("WARNING"):
        assert check_empty_completions(many, 0.05, "srv") == 1
    assert "backend problem" not in caplog.text


def test_generate_works_inside_a_running_event_loop(server):
    import asyncio

    async def inside():
        return model(server).generate([req("循环里")])

    (r,) = asyncio.run(inside())
    assert r.text.endswith("答案：A")


def test_bad_timeout_and_share_are_config_errors(server):
    from qualbench.errors import ConfigError

    with pytest.raises(ConfigError, match="timeout_s"):
        model(server, timeout_s=0)
    with pytest.raises(ConfigError, match="max_empty_share"):
        model(server, max_empty_share=1.5)


def _items(n: int, fail_at: int | None = None) -> list[Question]:
    return [Question(idx=f"s{i:03d}", question_type=SINGLE, domain="消防", options={"A": "甲", "B": "乙"}, answer="A",
                     stem=f"题干{i}" + (" #fail" if i == fail_at else "")) for i in range(n)]


def test_streaming_keeps_max_concurrency_in_flight_beyond_the_batch_size(tmp_path):
    """run.batch_size no longer caps the requests in flight: the pool is refilled as each one completes."""
    from qualbench.predictions import read_predictions
    from qualbench.prompts.render import PromptConfig
    from qualbench.evaluation import evaluate

    with ChatServer(tags="#sleep") as s:
        m = model(s, max_concurrency=8)
        preds = evaluate(_items(40), m, PromptConfig(), tmp_path, batch_size=4)
        assert 4 < s.max_in_flight <= 8  # batch-at-a-time would never exceed batch_size=4
    assert [p["idx"] for p in preds] == [f"s{i:03d}" for i in range(40)]
    lines = list(read_predictions(tmp_path / "predictions.jsonl"))
    assert sorted(r["idx"] for r in lines) == [p["idx"] for p in preds]  # each once, in completion order
    assert all(p["prediction"] == "A" for p in preds)


def test_streaming_failure_keeps_every_finished_item_and_resumes(tmp_path):
    from qualbench.predictions import read_predictions
    from qualbench.prompts.render import PromptConfig
    from qualbench.evaluation import evaluate

    items = _items(30, fail_at=20)
    with ChatServer() as s:
        with pytest.raises(ModelError, match="items finished and were kept"):
            evaluate(items, model(s, max_concurrency=4, max_retries=0), PromptConfig(), tmp_path, batch_size=8)
        kept = {r["idx"] for r in read_predictions(tmp_path / "predictions.jsonl")}
        assert 15 <= len(kept) < 30 and "s020" not in kept
        fixed = [Question(**{**q.__dict__, "stem": q.stem.replace(" #fail", "")}) for q in items]
        before = sum(s.calls.values())
        preds = evaluate(fixed, model(s, max_concurrency=4), PromptConfig(), tmp_path, batch_size=8)
        assert len(preds) == 30 and sum(s.calls.values()) - before == 30 - len(kept)  # nothing recomputed
