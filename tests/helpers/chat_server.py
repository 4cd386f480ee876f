"""A real OpenAI-compatible chat server on loopback (127.0.0.1) for backend tests, with injected faults.

The last user message (plus the server's ``tags``, applied to every call) picks the behaviour by tag:

- ``#429`` first call 429 + Retry-After; ``#500`` first call 502; ``#fail`` always 500;
- ``#slow`` first call sleeps ``slow_s`` before answering; ``#sleep`` every call takes ``sleep_s`` (default 0.1 s; concurrency);
- ``#long`` 400 context-length error;
- ``#drip`` first call sends headers, then the body one byte per ``drip_s`` (far longer than any test timeout);
  ``#dripall`` every call drips;
- ``#silent`` first call reads the request and never answers (until the server stops);
- ``#reset`` first call: the connection is reset (TCP RST) without a reply;
- ``#garbage`` 200 with an HTML body; ``#nochoices`` 200 with ``choices: []``;
- ``#null`` 200 with ``content: null`` (and reasoning text); ``#empty`` 200 with ``content: ""``;
- ``#echo`` first call 500 whose message echoes the request headers and body, then 200 with a completion that
  echoes them again; ``#echolong`` a 400 context-length error that echoes them.

Anything else answers ``回答<n>\\n答案：A`` (n = how many times this text was asked).
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ChatServer:
    def __init__(self, retry_after: str = "0.3", slow_s: float = 0.6, drip_s: float = 0.2, tags: str = "",
                 sleep_s: float = 0.1):
        self.retry_after = retry_after
        self.sleep_s = sleep_s
        self.slow_s = slow_s
        self.drip_s = drip_s
        self.tags = tags
        self.calls: Counter[str] = Counter()
        self.headers: list[dict[str, str]] = []
        self.bodies: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real servers do

            def log_message(self, *a):  # keep test output quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": "not found"}})
                text = body["messages"][-1]["content"]
                with server.lock:
                    server.calls[text] += 1
                    n = server.calls[text]
                    server.headers.append(dict(self.headers))
                    server.bodies.append(body)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    self._answer(body, f"{text} {server.tags}", n, len(text))
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                finally:
                    with server.lock:
                        server.in_flight -= 1

            def _echo(self, body):
                return f"you sent headers={dict(self.headers)} body={json.dumps(body, ensure_ascii=False)}"

            def _answer(self, body, text, n, n_prompt):
                if "#fail" in text:
                    return self._send(500, {"error": {"message": "internal error"}})
                if "#429" in text and n == 1:
                    return self._send(429, {"error": {"message": "rate limited"}}, {"Retry-After": server.retry_after})
                if "#500" in text and n == 1:
                    return self._send(502, {"error": {"message": "bad gateway"}})
                if "#echolong" in text:
                    msg = f"This model's maximum context length is 8 tokens; {self._echo(body)}"
                    return self._send(400, {"error": {"message": msg}})
                if "#echo" in text and n == 1:
                    return self._send(500, {"error": {"message": f"upstream failed; {self._echo(body)}"}})
                if "#slow" in text and n == 1:
                    time.sleep(server.slow_s)
                if "#silent" in text and n == 1:
                    server.stop.wait(60)
                    self.close_connection = True
                    return None
                if "#reset" in text and n == 1:
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    return None
                if "#long" in text:
                    return self._send(400, {"error": {"message": "This model's maximum context length is 8 tokens"}})
                if "#garbage" in text:
                    return self._send_raw(200, b"<html><body>502 Bad Gateway</body></html>", "text/html")
                if "#nochoices" in text:
                    return self._send(200, {"id": "x", "object": "chat.completion", "choices": []})
                if "#sleep" in text:
                    time.sleep(server.sleep_s)
                content = f"回答{n}\n答案：A"
                message = {"role": "assistant", "content": content}
                if "#null" in text:
                    message = {"role": "assistant", "content": None, "reasoning_content": "想了很久……"}
                elif "#empty" in text:
                    message["content"] = ""
                elif "#echo" in text:
                    message["content"] = f"{content}\n{self._echo(body)}"
                reply = {
                    "id": "x", "object": "chat.completion", "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
                    "usage": {"prompt_tokens": n_prompt, "completion_tokens": 7, "total_tokens": n_prompt + 7},
                }
                if ("#drip" in text and n == 1) or "#dripall" in text:
                    return self._drip(json.dumps(reply, ensure_ascii=False).encode())
                self._send(200, reply)

            def _drip(self, data: bytes):
                data = b" " * 200 + data  # leading blanks keep the JSON valid, and the drip long
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.flush()
                for i in range(len(data)):
                    if server.stop.wait(server.drip_s):
                        break
                    self.wfile.write(data[i : i + 1])
                    self.wfile.flush()
                self.close_connection = True

            def _send(self, code, obj, headers=None):
                self._send_raw(code, json.dumps(obj, ensure_ascii=False).encode(), "application/json", headers)

            def _send_raw(self, code, data, ctype, headers=None):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # listen backlog: many concurrent clients connect at once, as at a real server

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def __enter__(self) -> "ChatServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()  # releases silent and dripping handlers
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
