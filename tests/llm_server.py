"""A scripted OpenAI-compatible server for tests: each request gets the next behaviour.

Stdlib only. It binds 127.0.0.1 on a free port, serves ``POST /v1/chat/completions`` from a
script of :class:`Reply` behaviours and ``GET /v1/models`` from a fixed list, records every
request, and stops itself: after ``max_requests`` requests it answers 418, after ``lifetime``
seconds it shuts down, and a sleeping handler wakes up as soon as the server stops.

    with ScriptedServer([Reply.json({"tool": "retrieve"}), Reply.error(500)]) as server:
        llm = OpenAICompatibleLLM(server.url, "test-model", timeout=0.3)
        ...
        assert server.requests[0].body["response_format"]["type"] == "json_schema"

A script that runs out answers 418 ("script exhausted"), which the client reports as a
non-retried ``LLMError``: a test that sends more requests than it scripted fails loudly.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Reply:
    """One scripted behaviour: wait ``delay`` seconds, then answer ``status`` with a body."""

    status: int = 200
    content: str | None = None  # the assistant message, for a 200 chat completion
    body: bytes | None = None  # a raw body instead (error JSON, garbage)
    delay: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()
    drip: float = 0.0  # seconds between body bytes (a server that trickles its reply)

    @classmethod
    def text(cls, content: str) -> Reply:
        """A chat completion whose message is ``content`` (valid, malformed, fenced...)."""
        return cls(content=content)

    @classmethod
    def json(cls, obj: Any) -> Reply:
        """A chat completion whose message is ``obj`` as JSON."""
        return cls(content=json.dumps(obj))

    @classmethod
    def error(cls, status: int, message: str = "scripted error", **headers: str) -> Reply:
        """An OpenAI-style error body, e.g. ``Reply.error(429, retry_after="0")``."""
        body = {"error": {"message": message, "type": "scripted", "code": status}}
        hdrs = tuple((k.replace("_", "-"), v) for k, v in headers.items())
        return cls(status=status, body=json.dumps(body).encode(), headers=hdrs)

    @classmethod
    def raw(cls, body: bytes, status: int = 200) -> Reply:
        """Any bytes, e.g. an HTML page from a misconfigured proxy."""
        return cls(status=status, body=body)

    @classmethod
    def slow(cls, seconds: float, then: Reply | None = None) -> Reply:
        """Wait ``seconds`` (longer than the client's timeout) before answering ``then``."""
        then = then or cls.text("too late")
        return cls(then.status, then.content, then.body, seconds, then.headers, then.drip)

    @classmethod
    def trickle(cls, interval: float, then: Reply | None = None) -> Reply:
        """Send headers at once, then the body one byte every ``interval`` seconds."""
        then = then or cls.text("too late")
        return cls(then.status, then.content, then.body, then.delay, then.headers, interval)


@dataclass
class Request:
    """What the server received."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any = None  # decoded JSON, or None
    at: float = field(default_factory=time.monotonic)


class ScriptedServer:
    """An OpenAI-compatible server on 127.0.0.1 that plays a script; use as a context manager."""

    def __init__(
        self,
        script: Iterable[Reply] = (),
        models: Iterable[str] = ("test-model",),
        max_requests: int = 50,
        lifetime: float = 30.0,
    ) -> None:
        self.script: deque[Reply] = deque(script)
        self.models = list(models)
        self.max_requests = max_requests
        self.lifetime = lifetime
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._serve, name="llm-test-server", daemon=True)

    @property
    def url(self) -> str:
        """Base URL without ``/v1`` (the client accepts both)."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def chat_requests(self) -> list[Request]:
        """The chat-completion requests only (not ``/v1/models``)."""
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def push(self, *replies: Reply) -> None:
        """Append behaviours to the script."""
        with self._lock:
            self.script.extend(replies)

    def start(self) -> ScriptedServer:
        """Serve in a daemon thread; the server shuts itself down after ``lifetime`` seconds."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake sleeping handlers, release the port. Safe to call twice."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._thread.is_alive():
            self._httpd.shutdown()
        self._httpd.server_close()

    def _serve(self) -> None:
        timer = threading.Timer(self.lifetime, self.stop)
        timer.daemon = True
        timer.start()
        try:
            self._httpd.serve_forever(poll_interval=0.05)
        finally:
            timer.cancel()

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _next(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
            if len(self.requests) > self.max_requests:
                return Reply.error(418, f"more than {self.max_requests} requests")
            if request.method == "GET" and request.path.rstrip("/") == "/v1/models":
                data = [{"id": m, "object": "model", "owned_by": "test"} for m in self.models]
                return Reply.raw(json.dumps({"object": "list", "data": data}).encode())
            if request.method != "POST" or request.path.rstrip("/") != "/v1/chat/completions":
                return Reply.error(404, f"no route {request.method} {request.path}")
            if not self.script:
                return Reply.error(418, "script exhausted")
            return self.script.popleft()


def _completion(content: str, model: str, n: int) -> bytes:
    return json.dumps(
        {
            "id": f"chatcmpl-{n}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    ).encode()


def _handler_for(server: ScriptedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
            pass

        def do_GET(self) -> None:
            self._answer(None)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw
            self._answer(body)

        def _answer(self, body: Any) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            request = Request(self.command, self.path, headers, body)
            reply = server._next(request)
            if reply.delay and server._stopped.wait(reply.delay):
                return  # server stopping: drop the connection
            if reply.body is not None:
                payload = reply.body
            else:
                model = body.get("model", "?") if isinstance(body, dict) else "?"
                payload = _completion(reply.content or "", model, len(server.requests))
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in reply.headers:
                    self.send_header(name, value)
                self.end_headers()
                if not reply.drip:
                    self.wfile.write(payload)
                for i in range(len(payload) if reply.drip else 0):
                    self.wfile.write(payload[i : i + 1])
                    self.wfile.flush()
                    if server._stopped.wait(reply.drip):
                        return
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout): expected in the slow-server tests

    return Handler
