"""A scripted OpenAI-compatible chat server on 127.0.0.1 for tests and benchmarks.

Each chat request takes the next queued `Fault` (HTTP errors, 429 with Retry-After, malformed
bodies, slow answers) or, when none is queued, answers with `reply(body)`. It records every
request and can refuse chosen `response_format` types, like servers that lack them.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:  # only for the factory's type: the server itself needs no LLM client
    from kgenrich.pipeline.llm.openai_backend import OpenAICompatibleLLM

TEST_KEY = "sk-kgenrich-TOPSECRET-0123456789"
"""The API key the test clients use; the leak test scans for it."""

ClientFactory = Callable[..., "OpenAICompatibleLLM"]
"""Builds an `OpenAICompatibleLLM` for a running server; keyword arguments override defaults."""


@dataclass(frozen=True)
class Fault:
    """What to send for one request instead of a normal completion."""

    status: int = 200
    body: str | bytes | None = None  # raw body (bytes: sent as is, e.g. bad UTF-8); None = a
    # normal completion (after delay_s)
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    delay_s: float = 0.0


def http_error(status: int, message: str = "scripted error", **headers: str) -> Fault:
    body = json.dumps({"error": {"message": message, "type": "scripted", "code": status}})
    return Fault(status=status, body=body, headers=headers)


def rate_limited(retry_after: str) -> Fault:
    return http_error(429, "slow down", **{"Retry-After": retry_after})


def malformed_json() -> Fault:
    return Fault(body='{"id": "x", "choices": [')


def html_page() -> Fault:
    return Fault(body="<html>502 Bad Gateway</html>", content_type="text/html")


def slow(delay_s: float) -> Fault:
    return Fault(delay_s=delay_s)


@dataclass(frozen=True)
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


def default_reply(body: dict[str, Any]) -> str:
    return json.dumps({"name": "scripted"})


def completion(model: str, content: str, prompt_tokens: int = 11) -> dict[str, Any]:
    completion_tokens = max(1, len(content.split()))
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


class ScriptedServer:
    """Start with `with ScriptedServer() as server:`; `server.base_url` ends in `/v1`."""

    def __init__(self, reply: Callable[[dict[str, Any]], str] = default_reply) -> None:
        self.reply = reply
        self.requests: list[Recorded] = []
        self.faults: deque[Fault] = deque()
        # response_format type -> (status, message) to refuse it with
        self.reject_formats: dict[str, tuple[int, str]] = {}
        self.in_flight = 0
        self.peak_in_flight = 0
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- control

    def queue(self, *faults: Fault) -> None:
        with self._lock:
            self.faults.extend(faults)

    @property
    def chat_count(self) -> int:
        with self._lock:
            return sum(r.path.endswith("/chat/completions") for r in self.requests)

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def __enter__(self) -> Self:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._httpd is not None and self._thread is not None
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    # ---- serving

    def _next_fault(self, body: dict[str, Any]) -> Fault | None:
        with self._lock:
            if self.faults:
                return self.faults.popleft()
        fmt = body.get("response_format")
        if isinstance(fmt, dict) and fmt.get("type") in self.reject_formats:
            status, message = self.reject_formats[fmt["type"]]
            return http_error(status, message)
        return None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

            def _send(
                self, status: int, body: str | bytes, content_type: str, **headers: str
            ) -> None:
                data = body if isinstance(body, bytes) else body.encode("utf-8")
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, json.dumps({"object": "list", "data": []}), "application/json")
                else:
                    self._send(404, "{}", "application/json")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length).decode("utf-8")
                body = json.loads(raw) if raw else {}
                with server._lock:
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    server.requests.append(Recorded(self.path, headers, body))
                    server.in_flight += 1
                    server.peak_in_flight = max(server.peak_in_flight, server.in_flight)
                try:
                    self._answer(body)
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _answer(self, body: dict[str, Any]) -> None:
                if not self.path.endswith("/chat/completions"):
                    self._send(404, "{}", "application/json")
                    return
                fault = server._next_fault(body)
                if fault is not None and fault.delay_s:
                    time.sleep(fault.delay_s)
                if fault is not None and fault.body is not None:
                    self._send(fault.status, fault.body, fault.content_type, **fault.headers)
                    return
                content = server.reply(body)
                answer = completion(str(body.get("model", "")), content)
                self._send(200, json.dumps(answer), "application/json")

        return Handler
