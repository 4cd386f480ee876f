"""``model=openai``: any OpenAI-compatible ``/v1/chat/completions`` endpoint, over httpx with bounded threads.

Retries 429/5xx/timeouts/connection errors with exponential backoff and full jitter, honouring ``Retry-After``.
The API key comes only from the environment variable named by ``api_key_env``.
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

import httpx
from tqdm.auto import tqdm

from qualbench.errors import ConfigError
from qualbench.models.base import ModelError
from qualbench.records import Request, Response

log = logging.getLogger(__name__)

OVERFLOW_HINTS = ("context length", "context_length", "maximum context", "too long", "too many tokens")


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


class OpenAIChatModel:
    """Chat completions from an OpenAI-compatible server (vLLM, llama.cpp, Ollama, hosted APIs)."""

    needs_retriever = False

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
        show_progress: bool = True,
    ) -> None:
        if max_concurrency < 1 or max_retries < 0:
            raise ConfigError("model.max_concurrency must be >= 1 and model.max_retries >= 0")
        if on_overflow not in ("skip", "error"):
            raise ConfigError(f"model.on_overflow must be skip or error, got {on_overflow!r}")
        self.name = name
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.api_key_env = api_key_env
        self.max_concurrency = int(max_concurrency)
        self.max_retries = int(max_retries)
        self.backoff_s = float(backoff_s)
        self.backoff_max_s = float(backoff_max_s)
        self.temperature = temperature
        self.max_tokens = int(max_tokens)
        self.extra_body = dict(extra_body or {})
        self.on_overflow = on_overflow
        self.show_progress = show_progress
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(api_key_env) if api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=self.max_concurrency, max_keepalive_connections=self.max_concurrency),
        )

    def __repr__(self) -> str:  # never shows headers (the key)
        return f"OpenAIChatModel(name={self.name!r}, url={self.url!r})"

    def close(self) -> None:
        self._client.close()

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
        out: list[Response | None] = [None] * len(requests)
        abort = threading.Event()
        errors: list[tuple[int, ModelError]] = []
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, max(1, len(requests)))) as pool:
            futures = {pool.submit(self._one, r, abort): i for i, r in enumerate(requests)}
            bar = tqdm(total=len(requests), desc=self.name, disable=not self.show_progress, leave=False)
            for fut in as_completed(futures):
                i = futures[fut]
                try:
                    out[i] = fut.result()
                except _Aborted:
                    pass
                except ModelError as e:
                    abort.set()
                    errors.append((i, e))
                bar.update(1)
            bar.close()
        if errors:
            done = sum(r is not None for r in out)
            first = min(errors)[1]
            raise BackendBatchError(f"{first} ({done} of {len(requests)} items of this batch finished)", out)
        return out  # type: ignore[return-value]

    def _one(self, request: Request, abort: threading.Event) -> Response:
        try:
            return self._attempts(request, abort)
        except ModelError:
            abort.set()  # start nothing more in this batch: the run is ending
            raise

    def _attempts(self, request: Request, abort: threading.Event) -> Response:
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
                r = self._client.post(self.url, json=body)
            except httpx.TimeoutException as e:
                last = f"timeout ({type(e).__name__})"
            except httpx.TransportError as e:
                last = f"connection error ({type(e).__name__}: {e})"
            else:
                if r.status_code == 200:
                    return self._parse(r, idx, time.perf_counter() - t0, attempt, time.perf_counter() - t_start)
                snippet = r.text[:300].replace("\n", " ")
                if r.status_code == 429 or r.status_code >= 500:
                    last = f"HTTP {r.status_code}: {snippet}"
                    retry_after = parse_retry_after(r.headers.get("Retry-After"))
                elif r.status_code in (400, 413) and any(h in snippet.lower() for h in OVERFLOW_HINTS):
                    reason = f"prompt_too_long: server answered HTTP {r.status_code}: {snippet}"
                    if self.on_overflow == "skip":
                        return Response(text="", skipped=reason, meta={"attempts": attempt})
                    raise ModelError(f"{self.url}: item {idx}: {reason}")
                else:
                    raise ModelError(
                        f"{self.url} answered HTTP {r.status_code} for item {idx} (not retried): {snippet}"
                    )
            if attempt > self.max_retries:
                raise ModelError(f"{self.url} failed for item {idx} after {attempt} attempts; last error: {last}")
            delay = backoff_delay(attempt, self.backoff_s, self.backoff_max_s, retry_after)
            log.warning("%s item %s attempt %d: %s; retrying in %.2fs", self.url, idx, attempt, last, delay)
            if abort.wait(delay):
                raise _Aborted

    def _parse(self, r: httpx.Response, idx: str, latency: float, attempts: int, total: float) -> Response:
        try:
            data = r.json()
            choice = data["choices"][0]
            message = choice.get("message") or {}
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise ModelError(f"{self.url} sent a malformed completion for item {idx}: {r.text[:300]!r}") from e
        usage = data.get("usage") or {}
        meta: dict[str, Any] = {"finish_reason": choice.get("finish_reason"), "attempts": attempts}
        if total - latency > 1e-3:
            meta["wall_s"] = round(total, 4)  # including retries and backoff
        if message.get("reasoning_content"):
            meta["reasoning"] = message["reasoning_content"]
        return Response(
            text=message.get("content") or "",
            latency_s=latency,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            meta=meta,
        )
