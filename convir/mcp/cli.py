"""``convir mcp``: the agent as an MCP server, over stdio (a host starts it) or HTTP.

Over stdio, standard output carries the protocol and nothing else: while the models load,
anything a library prints there is sent to stderr instead, and the SDK keeps it that way
while it serves. Over HTTP the rules of ``convir serve`` hold: loopback by default, a
warning on any other address without ``CONVIR_API_KEY``, and with the key set every
request must carry it (``X-API-Key: KEY`` or ``Authorization: Bearer KEY``, else 401).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from convir.errors import InputError
from convir.server.cli import DEFAULT_CHECKPOINT, LOOPBACK

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

MCP_PATH = "/mcp"


def mcp_command(
    index_path: Path = typer.Option(..., "--index", help="Index file from `convir index`."),
    checkpoint: str = typer.Option(
        DEFAULT_CHECKPOINT,
        "--checkpoint",
        help="Where sessions live (shared with `convir serve`): sqlite:PATH, "
        "postgresql://... or memory.",
    ),
    transport: str = typer.Option("stdio", "--transport", help="stdio (a host starts it) or http."),
    host: str = typer.Option("127.0.0.1", "--host", help="http: address to bind."),
    port: int = typer.Option(8001, "--port", help="http: TCP port (the endpoint is /mcp)."),
    model: str | None = typer.Option(None, "--model", help="open_clip model for --index."),
    pretrained: str | None = typer.Option(None, "--pretrained", help="Weights for --model."),
    generate: bool = typer.Option(
        True, "--generate/--no-generate", help="Let DAR generate images (slower turns)."
    ),
) -> None:
    """Serve the agent to MCP hosts: search_images, answer, edit_image, why, image://{id}."""
    from importlib.util import find_spec

    if find_spec("mcp") is None or find_spec("mcp.server.mcpserver") is None:
        raise InputError("convir mcp needs the extra (MCP SDK 2): pip install 'convir[mcp]'")
    if transport not in ("stdio", "http"):
        raise InputError(f"--transport must be stdio or http, got {transport!r}")
    if not 0 <= port <= 65535:
        raise InputError(f"--port must be between 0 and 65535, got {port}")
    if not index_path.is_file():
        raise InputError(f"--index {index_path}: no such file; build one with `convir index`")
    api_key = os.environ.get("CONVIR_API_KEY") or None
    if transport == "http" and host not in LOOPBACK and api_key is None:
        typer.echo(
            f"warning: serving on {host} without CONVIR_API_KEY: anyone who reaches the port "
            "can use it",
            err=True,
        )
    from convir import load_agent
    from convir.mcp.server import build_server

    with _stdout_to_stderr():
        agent = load_agent(
            index_path,
            checkpoint=checkpoint,
            generate=generate,
            model=model,
            pretrained=pretrained,
        )
        server = build_server(agent)
    size = agent.resources.index.count
    if transport == "stdio":
        typer.echo(f"convir mcp: {size} items from {index_path}, over stdio", err=True)
        server.run("stdio")
    else:
        typer.echo(f"convir mcp: {size} items on http://{host}:{port}{MCP_PATH}", err=True)
        run_http(server, host, port, api_key)


def run_http(server: MCPServer, host: str, port: int, api_key: str | None) -> None:
    """Serve the streamable HTTP transport until interrupted (uvicorn, warnings only)."""
    import asyncio

    import uvicorn

    app = server.streamable_http_app(streamable_http_path=MCP_PATH, host=host)
    if api_key is not None:
        app = RequireKey(app, api_key)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    asyncio.run(uvicorn.Server(config).serve())


class RequireKey:
    """ASGI gate: every HTTP request carries the API key (the rule of ``convir serve``,
    same header forms, compared in constant time), else 401 with a JSON detail."""

    def __init__(self, app: Any, api_key: str) -> None:
        self.app = app
        self.api_key = api_key

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        from convir.server.auth import key_matches, presented_keys

        if scope["type"] == "http":
            headers = {
                k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]
            }
            if not key_matches(self.api_key, presented_keys(headers, {}, {}, MCP_PATH)):
                body = b'{"detail": "missing or wrong API key: send X-API-Key: KEY or Authorization: Bearer KEY"}'
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"www-authenticate", b"Bearer"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


@contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send whatever is written to standard output (by Python or by a C library) to stderr,
    so that an MCP host reading stdout sees the protocol only."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    real, sys.stdout = sys.stdout, sys.stderr
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stdout = real
        os.dup2(saved, 1)
        os.close(saved)
