"""``model=openai``: any OpenAI-compatible ``/v1/chat/completions`` endpoint, over httpx (asyncio, bounded).

Retries 429/5xx/timeouts/connection errors with exponential backoff and full jitter, honouring ``Retry-After``.
``timeout_s`` is a total deadline per attempt (connect, send, headers and the whole body), so a server that
drips its reply or goes silent costs at most ``timeout_s`` per attempt. The API key comes only from the
environment variable named by ``api_key_env``; it and every other secret of the config are redacted from
error messages, logs and the returned text (:mod:`qualbench.secrets`).
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Coroutine, Iterable, Iterator, TypeVar

import httpx
from tqdm.auto import tqdm

from qualbench.errors import ConfigError
from qualbench.models.base import Model, ModelError
from qualbench.records import Request, Response
from qualbench.secrets import REDACTED, collect_secrets, redact_text, register_env, scrub

T = TypeVar("T")

log = logging.getLogger(__name__)

OVERFLOW_HINTS = ("context length", "context_length", "maximum context", "too long", "too many tokens")
CONNECT_TIMEOUT_S = 10.0  # a host that drops SYNs is down; the total deadline (timeout_s) bounds the rest
EMPTY_FLAG = "empty_completion"  # Response.meta key: the server answered 200 with content null or ""


class BackendBatchError(ModelError):
    """A batch could not be finished; ``responses`` holds what did finish (None where not), in request order."""

    def __init__(self, message: str, responses: list[Response | None]):
        super().__init__(message)
        self.responses = responses


class _Aborted(Exception):
    """Another request of the batch failed for good; this one was not started."""


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date); None when absent/invalid."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff_delay(attempt: int, base: float, cap: float, retry_after: float | None = None) -> float:
    """Delay before retry number ``attempt`` (1-based): the server's Retry-After, else full jitter."""
    if retry_after is not None:
        return min(retry_after, cap)
    return random.uniform(0.0, min(cap, base * 2 ** (attempt - 1)))


class OpenAIChatModel(Model):
    """Chat completions from an OpenAI-compatible server (vLLM, llama.cpp, Ollama, hosted APIs).

    Streams (``generate_stream``: one pool of ``max_concurrency`` requests for the whole run) and sets
    ``max_empty_share`` (see :mod:`qualbench.models.base`)."""

    def __init__(
        self,
        name: str,
        base_url: str = "http://127.0.0.1:8000/v1",
        api_key_env: str = "OPENAI_API_KEY",
        max_concurrency: int = 8,
        max_retries: int = 5,
        backoff_s: float = 1.0,
        backoff_max_s: float = 60.0,
        timeout_s: float = 120.0,
        temperature: float = 0.0,
        max_tokens: int = 256,
        extra_body: dict[str, Any] | None = None,
        on_overflow: str = "skip",
        max_empty_share: float = 0.05,
        show_progress: bool = True,
    ) -> None:
        if max_concurrency < 1 or max_retries < 0:
            raise ConfigError("model.max_concurrency must be >= 1 and model.max_retries >= 0")
        if on_overflow not in ("skip", "error"):
            raise ConfigError(f"model.on_overflow must be skip or error, got {on_overflow!r}")
        if not timeout_s or timeout_s <= 0:
            raise ConfigError(f"model.timeout_s must be > 0 (a total deadline per request), got {timeout_s!r}")
        if not 0.0 <= max_empty_share <= 1.0:
            raise ConfigError(f"model.max_empty_share must be in [0, 1], got {max_empty_share!r}")
        self.name = name
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.api_key_env = api_key_env
        self.max_concurrency = int(max_concurrency)
        self.max_retries = int(max_retries)
        self.backoff_s = float(backoff_s)
        self.backoff_max_s = float(backoff_max_s)
        self.timeout_s = float(timeout_s)
        self.temperature = temperature
        self.max_tokens = int(max_tokens)
        self.extra_body = dict(extra_body or {})
        self.on_overflow = on_overflow
        self.max_empty_share = float(max_empty_share)
        self.show_progress = show_progress
        register_env(api_key_env)  # the key, URL userinfo and secret-named body fields: redacted by value
        collect_secrets({"base_url": base_url, "extra_body": self.extra_body})
        self.display_url = scrub(self.url)  # the URL for messages: userinfo removed
        self._headers = {"Content-Type": "application/json"}
        key = os.environ.get(api_key_env) if api_key_env else None
        if key:
            self._headers["Authorization"] = f"Bearer {key}"

    def __repr__(self) -> str:  # never shows headers (the key) or URL userinfo
        return f"OpenAIChatModel(name={self.name!r}, url={self.display_url!r})"

    def close(self) -> None:
        """Nothing to release: each ``generate`` call opens and closes its own connection pool."""

    def body(self, request: Request) -> dict[str, Any]:
        """The JSON body sent for one request."""
        return {
            "model": self.name,
            "messages": request.messages,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            **self.extra_body,
        }

    def generate(self, requests: list[Request]) -> list[Response]:
        return _run_sync(self._generate(requests)) if requests else []

    async def _generate(self, requests: list[Request]) -> list[Response]:
        out: list[Response | None] = [None] * len(requests)
        abort = asyncio.Event()
        errors: list[tuple[int, ModelError]] = []
        slots = asyncio.Semaphore(self.max_concurrency)
        limits = httpx.Limits(max_connections=self.max_concurrency, max_keepalive_connections=self.max_concurrency)
        bar = tqdm(total=len(requests), desc=self.name, disable=not self.show_progress, leave=False)

        async def one(i: int, request: Request, client: httpx.AsyncClient) -> None:
            async with slots:
                try:
                    if abort.is_set():
                        return  # another request failed for good: start nothing more, the run is ending
                    out[i] = await self._attempts(client, request, abort)
                except _Aborted:
                    pass
                except ModelError as e:
                    abort.set()
                    errors.append((i, e))
                finally:
                    bar.update(1)

        try:
            timeout = httpx.Timeout(self.timeout_s, connect=min(CONNECT_TIMEOUT_S, self.timeout_s))  # each step
            async with httpx.AsyncClient(headers=self._headers, timeout=timeout, limits=limits) as client:
                await asyncio.gather(*(one(i, r, client) for i, r in enumerate(requests)))
        finally:
            bar.close()
        if errors:
            done = sum(r is not None for r in out)
            first = min(errors, key=lambda e: e[0])[1]
            raise BackendBatchError(f"{first} ({done} of {len(requests)} items of this batch finished)", out)
        return out  # type: ignore[return-value]

    def generate_stream(self, requests: Iterable[Request], on_result: Callable[[Request, Response], None]) -> int:
        """Keep ``max_concurrency`` requests in flight for the whole of ``requests`` (pulled lazily); call
        ``on_result`` as each one completes, in completion order. Returns how many completed.

        Retries and Retry-After waits hold only their own slot. A request that fails for good stops the pull
        (in-flight ones are abandoned) and raises ModelError after every completed one was handed over."""
        return _run_sync(self._stream(iter(requests), on_result))

    async def _stream(self, pending: Iterator[Request], on_result: Callable[[Request, Response], None]) -> int:
        abort = asyncio.Event()
        errors: list[ModelError] = []
        done = 0
        limits = httpx.Limits(max_connections=self.max_concurrency, max_keepalive_connections=self.max_concurrency)

        async def worker(client: httpx.AsyncClient) -> None:
            nonlocal done
            while not abort.is_set():
                request = next(pending, None)  # one event-loop thread: pulls never interleave
                if request is None:
                    return
                try:
                    response = await self._attempts(client, request, abort)
                except _Aborted:
                    return
                except ModelError as e:
                    abort.set()
                    errors.append(e)
                    return
                on_result(request, response)
                done += 1

        timeout = httpx.Timeout(self.timeout_s, connect=min(CONNECT_TIMEOUT_S, self.timeout_s))
        async with httpx.AsyncClient(headers=self._headers, timeout=timeout, limits=limits) as client:
            await asyncio.gather(*(worker(client) for _ in range(self.max_concurrency)))
        if errors:
            raise ModelError(f"{errors[0]} ({done} items finished and were kept)")
        return done

    async def _post(self, client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
        """One attempt: connect, send, and read the whole reply within ``timeout_s`` in total."""
        return await asyncio.wait_for(client.post(self.url, json=body), self.timeout_s)

    async def _attempts(self, client: httpx.AsyncClient, request: Request, abort: asyncio.Event) -> Response:
        body = self.body(request)
        idx = request.item.idx
        attempt = 0
        t_start = time.perf_counter()
        while True:
            if abort.is_set():
                raise _Aborted
            attempt += 1
            retry_after = None
            t0 = time.perf_counter()
            try:
                r = await self._post(client, body)
            except asyncio.TimeoutError:  # (the builtin TimeoutError from Python 3.11)
                last = f"no complete reply within timeout_s={self.timeout_s:g} s (total deadline)"
            except httpx.TimeoutException as e:
                last = f"timeout ({type(e).__name__})"
            except httpx.TransportError as e:
                last = f"connection error ({type(e).__name__}: {redact_text(str(e))})"
            else:
                if r.status_code == 200:
                    return self._parse(r, idx, time.perf_counter() - t0, attempt, time.perf_counter() - t_start)
                snippet = _snippet(r.text)
                if r.status_code == 429 or r.status_code >= 500:
                    last = f"HTTP {r.status_code}: {snippet}"
                    retry_after = parse_retry_after(r.headers.get("Retry-After"))
                elif r.status_code in (400, 413) and any(h in snippet.lower() for h in OVERFLOW_HINTS):
                    reason = f"prompt_too_long: server answered HTTP {r.status_code}: {snippet}"
                    if self.on_overflow == "skip":
                        return Response(text="", skipped=reason, meta={"attempts": attempt})
                    raise ModelError(f"{self.display_url}: item {idx}: {reason}")
                else:
                    raise ModelError(
                        f"{self.display_url} answered HTTP {r.status_code} for item {idx} (not retried): {snippet}"
                    )
            if attempt > self.max_retries:
                raise ModelError(
                    f"{self.display_url} failed for item {idx} after {attempt} attempts; last error: {last}"
                )
            delay = backoff_delay(attempt, self.backoff_s, self.backoff_max_s, retry_after)
            log.warning("%s item %s attempt %d: %s; retrying in %.2fs", self.display_url, idx, attempt, last, delay)
            try:
                await asyncio.wait_for(abort.wait(), delay)
            except asyncio.TimeoutError:
                continue
            raise _Aborted

    def _parse(self, r: httpx.Response, idx: str, latency: float, attempts: int, total: float) -> Response:
        try:
            data = r.json()
            choice = data["choices"][0]
            message = choice.get("message") or {}
            if not isinstance(message, dict):
                raise TypeError("message is not an object")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise ModelError(
                f"{self.display_url} sent a malformed completion for item {idx}: {_snippet(r.text)!r}"
            ) from None
        usage = data.get("usage") or {}
        if not isinstance(usage, dict):
            usage = {}
        meta: dict[str, Any] = {"finish_reason": choice.get("finish_reason"), "attempts": attempts}
        if total - latency > 1e-3:
            meta["wall_s"] = round(total, 4)  # including retries and backoff
        if message.get("reasoning_content"):
            meta["reasoning"] = scrub(str(message["reasoning_content"]))
        content = message.get("content")
        if content is None or (isinstance(content, str) and not content.strip()):
            meta[EMPTY_FLAG] = True
        return Response(
            text=scrub(content if isinstance(content, str) else "" if content is None else str(content)),
            latency_s=latency,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            meta=meta,
        )


def _snippet(text: str, n: int = 300) -> str:
    """The start of a server reply for a message, redacted before it is cut (no half secret survives)."""
    clean = redact_text(text[: n + 2000].replace("\n", " "))
    i = clean.find(REDACTED, max(0, n - len(REDACTED) + 1))
    return clean[: i + len(REDACTED)] if 0 <= i < n else clean[:n]  # never cut the marker in half


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from sync code, also when this thread already runs an event loop (Jupyter)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def count_empty_completions(preds: Iterable[dict[str, Any]]) -> tuple[int, int]:
    """(empty, answered): predictions whose completion came back empty, and all that got a completion."""
    empty = answered = 0
    for p in preds:
        if p.get("skipped"):
            continue
        answered += 1
        empty += bool((p.get("meta") or {}).get(EMPTY_FLAG))
    return empty, answered


def check_empty_completions(preds: list[dict[str, Any]], max_share: float = 0.05, backend: str = "backend") -> int:
    """Count empty completions; warn (a backend problem, not a model answer) when more than ``max_share``."""
    empty, answered = count_empty_completions(preds)
    if empty and empty > max_share * answered:
        log.warning(
            "%d of %d completions (%.1f%%) from %s came back empty (content null or \"\"): this is a backend "
            "problem, not a model that answered nothing: check the server log, its reasoning/tool-call parser, "
            "and max_tokens (a reasoning model can spend it all before answering); these items score as wrong",
            empty, answered, 100.0 * empty / answered, backend,
        )
    return empty
