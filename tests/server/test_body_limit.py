"""No request body past its cap, whatever its headers say: framing read two ways is refused,
and the bytes are counted as they arrive (a raw socket against a real uvicorn server, and
the middleware alone with a body longer than it declared)."""

import asyncio
import json
import socket
import threading
import time

import pytest

pytest.importorskip("fastapi")

from convir.server.body_limit import MAX_JSON_BYTES, BodyLimit  # noqa: E402


@pytest.fixture
def live_url(make_client):
    """The app of a fresh agent served by uvicorn (as ``convir serve`` runs it) on a free
    loopback port, in a thread."""
    import uvicorn

    app = make_client().app
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield "127.0.0.1", port
    server.should_exit = True
    thread.join(10)
    sock.close()


def raw(address, head: str, body: bytes = b"", read_timeout=10.0) -> tuple[int, dict, float]:
    """Send ``head`` (request line + headers, CRLF-separated, no blank line) and ``body``
    on a raw socket; (status, JSON reply, seconds until the reply)."""
    with socket.create_connection(address, timeout=read_timeout) as conn:
        start = time.monotonic()
        conn.sendall(head.encode("latin-1") + b"\r\n\r\n")
        try:
            conn.sendall(body)
        except OSError:  # the server answered and closed before the whole body went out
            pass
        reply = b""
        while b"\r\n\r\n" not in reply or not _complete(reply):
            part = conn.recv(65536)
            if not part:
                break
            reply += part
        took = time.monotonic() - start
    header, _, payload = reply.partition(b"\r\n\r\n")
    status = int(header.split(b" ", 2)[1])
    try:
        return status, json.loads(payload or b"{}"), took
    except ValueError:  # h11 itself answers framing it cannot parse, in plain text
        return status, {"detail": payload.decode("latin-1")}, took


def _complete(reply: bytes) -> bool:
    header, _, payload = reply.partition(b"\r\n\r\n")
    for line in header.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(payload) >= int(line.split(b":")[1])
    return False


def chunked(data: bytes, size: int = 64 * 1024) -> bytes:
    parts = [data[i : i + size] for i in range(0, len(data), size)]
    return b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in parts) + b"0\r\n\r\n"


def test_content_length_with_chunked_framing_is_refused_before_the_body_is_read(live_url):
    host, port = live_url
    big = json.dumps({"message": "x" * (5 * 1024 * 1024)}).encode()
    status, reply, took = raw(
        live_url,
        f"POST /sessions HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        "Content-Length: 10\r\nTransfer-Encoding: chunked",
        chunked(big),
    )
    assert status == 400 and "not both" in reply["detail"]
    assert took < 2.0  # refused from the headers (today's main read all 5 MB: 422 after 3 s)
    status, reply, _ = raw(
        live_url,
        f"POST /uploads HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: 10\r\n"
        "Transfer-Encoding: chunked\r\nContent-Type: multipart/form-data; boundary=x",
        chunked(b"z" * (2 * 1024 * 1024)),
    )
    assert status == 400


def test_a_chunked_json_body_needs_a_length_and_a_lying_length_is_cut(live_url):
    host, port = live_url
    status, reply, _ = raw(
        live_url,
        f"POST /sessions HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked",
        chunked(b'{"message": "a red circle"}'),
    )
    assert status == 411 and "Content-Length" in reply["detail"]
    status, reply, _ = raw(
        live_url,
        f"POST /sessions HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {MAX_JSON_BYTES + 1}",
        b"{" * (MAX_JSON_BYTES + 1),
    )
    assert status == 413 and "limit 65,536" in reply["detail"]
    for head in ("Content-Length: 5\r\nContent-Length: 7", "Content-Length: abc"):
        # h11 refuses these first; the middleware would too
        status, _, _ = raw(live_url, f"POST /sessions HTTP/1.1\r\nHost: h\r\n{head}", b"{}")
        assert status == 400
    status, reply, _ = raw(  # a good body still goes through the same path
        live_url,
        f"POST /sessions HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        "Content-Length: 27\r\nConnection: close",
        b'{"message": "a red circle"}',
    )
    assert status == 201 and len(reply["results"]) == 12


def test_bytes_past_the_limit_are_refused_as_they_arrive_whatever_was_declared():
    """The middleware alone: a body that says 10 bytes and sends 1 MB in 16 kB pieces. It
    answers 413 after the piece that passes the limit and never calls the app."""
    calls, sent, pieces = [], [], 0

    async def app(scope, receive, send):
        calls.append(scope["path"])

    async def receive():
        nonlocal pieces
        pieces += 1
        return {"type": "http.request", "body": b"x" * 16384, "more_body": pieces < 64}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/sessions",
        "headers": [(b"content-length", b"10"), (b"content-type", b"application/json")],
    }
    asyncio.run(BodyLimit(app)(scope, receive, send))
    assert calls == [] and sent[0]["status"] == 413
    assert pieces == MAX_JSON_BYTES // 16384 + 1  # stopped reading at the first piece past it
    assert b"passed 81,920 bytes" in sent[1]["body"]

    async def small():  # within the limit: the app sees the exact body
        return {"type": "http.request", "body": b'{"message": "hi"}', "more_body": False}

    seen = []

    async def echo(scope, receive, send):
        seen.append(await receive())

    asyncio.run(BodyLimit(echo)(scope, small, send))
    assert seen[0]["body"] == b'{"message": "hi"}' and seen[0]["more_body"] is False
