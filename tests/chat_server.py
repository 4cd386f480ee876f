"""A real OpenAI-compatible chat server on loopback for backend tests, with scripted failures.

The last user message picks the behaviour by a tag: ``#429`` (first call 429 + Retry-After), ``#500`` (first
call 500), ``#slow`` (first call sleeps past the client timeout), ``#fail`` (always 500), ``#long`` (400
context-length error), ``#sleep`` (every call takes 0.1 s, to observe concurrency). Anything else answers.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ChatServer:
    def __init__(self, retry_after: str = "0.3", slow_s: float = 0.6):
        self.retry_after = retry_after
        self.slow_s = slow_s
        self.calls: Counter[str] = Counter()
        self.headers: list[dict[str, str]] = []
        self.bodies: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # keep test output quiet
                pass

            def do_POST(self):
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": "not found"}})
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                text = body["messages"][-1]["content"]
                with server.lock:
                    server.calls[text] += 1
                    n = server.calls[text]
                    server.headers.append(dict(self.headers))
                    server.bodies.append(body)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    self._answer(body, text, n)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with server.lock:
                        server.in_flight -= 1

            def _answer(self, body, text, n):
                if "#fail" in text:
                    return self._send(500, {"error": {"message": "internal error"}})
                if "#429" in text and n == 1:
                    return self._send(429, {"error": {"message": "rate limited"}}, {"Retry-After": server.retry_after})
                if "#500" in text and n == 1:
                    return self._send(502, {"error": {"message": "bad gateway"}})
                if "#slow" in text and n == 1:
                    time.sleep(server.slow_s)
                if "#long" in text:
                    return self._send(400, {"error": {"message": "This model's maximum context length is 8 tokens"}})
                if "#sleep" in text:
                    time.sleep(0.1)
                reply = {
                    "id": "x", "object": "chat.completion", "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": f"回答{n}\n答案：A"}}],
                    "usage": {"prompt_tokens": len(text), "completion_tokens": 7, "total_tokens": len(text) + 7},
                }
                self._send(200, reply)

            def _send(self, code, obj, headers=None):
                data = json.dumps(obj, ensure_ascii=False).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def __enter__(self) -> "ChatServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
