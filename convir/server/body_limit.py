"""The request-body cap, counted on the bytes as they arrive: headers can lie.

A plain ASGI middleware (FastAPI's ``@app.middleware`` cannot stop a body mid-stream). For
every request it

- refuses framing that a proxy or the server could read two ways: ``Content-Length``
  together with ``Transfer-Encoding``, or more than one ``Content-Length`` (400; RFC 9112
  6.3 calls the first an error a server must not forward);
- keeps the rule that a body of unknown size must be declared: a chunked JSON body or
  upload without ``Content-Length`` is 411;
- refuses a declared length over the route's limit before reading a byte (413);
- reads the body itself, counting, and answers 413 the moment the count passes the limit,
  so no route, parser or multipart reader ever holds more than the limit; a body within it
  is handed on unchanged.

Limits: :data:`~convir.server.uploads.MAX_UPLOAD_BYTES` plus multipart framing for
``POST /uploads``, :data:`MAX_JSON_BYTES` for everything else.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from convir.server.uploads import MAX_UPLOAD_BYTES
from convir.state import MAX_MESSAGE_CHARS

MAX_JSON_BYTES = 64 * 1024  # a message is <= 2,000 characters: 64 kB is ample
MAX_UPLOAD_REQUEST_BYTES = MAX_UPLOAD_BYTES + 64 * 1024  # the image plus multipart framing

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def body_limit(method: str, path: str) -> int:
    """The most bytes a request to ``path`` may carry."""
    return MAX_UPLOAD_REQUEST_BYTES if (method, path) == ("POST", "/uploads") else MAX_JSON_BYTES


def too_large(size: int, limit: int, declared: bool) -> str:
    what = "is" if declared else "passed"
    if limit == MAX_UPLOAD_REQUEST_BYTES:
        return f"upload {what} {size:,} bytes, limit {MAX_UPLOAD_BYTES:,}; send a smaller image"
    return (
        f"request body {what} {size:,} bytes, limit {MAX_JSON_BYTES:,}; messages are at most "
        f"{MAX_MESSAGE_CHARS:,} characters"
    )


class BodyLimit:
    """ASGI middleware enforcing the module docstring's rules."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        lengths = [v for k, v in scope["headers"] if k.lower() == b"content-length"]
        chunked = any(k.lower() == b"transfer-encoding" for k, _ in scope["headers"])
        method, path = scope["method"], scope["path"]
        limit = body_limit(method, path)
        if lengths and chunked:
            return await _refuse(
                send, 400, "send Content-Length or Transfer-Encoding, not both (RFC 9112 6.3)"
            )
        if len(lengths) > 1:
            return await _refuse(send, 400, "send one Content-Length header")
        if chunked and method in ("POST", "PUT", "PATCH"):
            what = "uploads" if limit == MAX_UPLOAD_REQUEST_BYTES else "JSON bodies"
            return await _refuse(send, 411, f"{what} need a Content-Length header")
        if lengths:
            declared = lengths[0].decode("latin-1").strip()
            if not declared.isdigit():
                return await _refuse(send, 400, "Content-Length must be a number of bytes")
            if int(declared) > limit:
                return await _refuse(send, 413, too_large(int(declared), limit, True))
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: nothing to answer
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return await _refuse(send, 413, too_large(size, limit, False))
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` for the app: the body read here once, then the connection's own events
    (a streamed response listens for the client's disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _refuse(send: Send, status: int, detail: str) -> None:
    """A JSON error that closes the connection (the rest of the body is never read)."""
    payload = json.dumps({"detail": detail}).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode("ascii")),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
