"""``convir serve``: the agent over HTTP (API + web page), sessions kept in SQLite.

Binds 127.0.0.1 unless told otherwise; on any other address without ``CONVIR_API_KEY``
it warns, because then anyone who can reach the port can use it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from convir.errors import InputError
from convir.state import STRATEGIES

if TYPE_CHECKING:
    from convir.agent import ConvirAgent

DEFAULT_CHECKPOINT = "sqlite:convir-sessions.db"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def serve_command(
    index_path: Path | None = typer.Option(
        None, "--index", help="Index file from `convir index` (default: the testbed gallery)."
    ),
    model: str | None = typer.Option(None, "--model", help="open_clip model for --index."),
    pretrained: str | None = typer.Option(None, "--pretrained", help="Weights for --model."),
    gallery_size: int | None = typer.Option(
        None, "--gallery-size", help="Testbed images to search, without --index [1000]."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Testbed gallery seed [0]."),
    strategy: str = typer.Option("auto", "--strategy", help=", ".join(STRATEGIES) + "."),
    stitch: str = typer.Option(
        "published",
        "--stitch",
        help="STiTch form: published (5 descriptions x views) or token-ot (ours; docs/stitch.md).",
    ),
    policy: str = typer.Option(
        "rules", "--policy", help="rules, llm (needs CONVIR_LLM_URL), or package.module:Class."
    ),
    questions: str | None = typer.Option(
        None, "--questions", help="package.module:Class: your own question bank."
    ),
    checkpoint: str = typer.Option(
        DEFAULT_CHECKPOINT,
        "--checkpoint",
        help="Where sessions live: sqlite:PATH, postgres://... or memory (lost on exit).",
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback only)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    generate: bool = typer.Option(
        True, "--generate/--no-generate", help="Let DAR generate images (slower turns)."
    ),
    workers_threads: int = typer.Option(
        64, "--threads", help="Turns that may run at once (request threads), per worker."
    ),
    workers: int = typer.Option(
        1,
        "--workers",
        help="Processes answering on the port over one shared store (sqlite: or postgres:).",
    ),
) -> None:
    """Serve the agent: JSON API (/docs), streamed turns (SSE) and a chat page at /."""
    from importlib.util import find_spec

    from convir.cli_options import agent_from_options, check_agent_options, check_gallery_options

    missing = [m for m in ("fastapi", "uvicorn") if find_spec(m) is None]
    if missing or not (find_spec("python_multipart") or find_spec("multipart")):
        raise InputError("convir serve needs the extra: pip install 'convir[server]'")
    check_agent_options(strategy, policy, questions)
    if not 0 <= port <= 65535:
        raise InputError(f"--port must be between 0 and 65535, got {port}")
    if not 1 <= workers_threads <= 1024:
        raise InputError(f"--threads must be between 1 and 1024, got {workers_threads}")
    if not 1 <= workers <= 64:
        raise InputError(f"--workers must be between 1 and 64, got {workers}")
    if workers > 1 and checkpoint in ("", "memory"):
        raise InputError(
            "--workers shares sessions through the store: use --checkpoint sqlite:PATH "
            "(one host) or postgres://... (any number of hosts)"
        )
    check_gallery_options(index_path, model, pretrained, gallery_size, seed)
    api_key = os.environ.get("CONVIR_API_KEY") or None
    if host not in LOOPBACK and api_key is None:
        typer.echo(
            f"warning: serving on {host} without CONVIR_API_KEY: anyone who reaches the port "
            "can use it",
            err=True,
        )
    options = dict(
        index_path=index_path,
        model=model,
        pretrained=pretrained,
        gallery_size=gallery_size,
        seed=seed,
        strategy=strategy,
        stitch=stitch,
        policy=policy,
        questions=questions,
        checkpoint=checkpoint,
        generate=generate,
    )
    if workers > 1:
        from convir.server.workers import prepare_store, serve_workers
        from convir.state import stitch_form

        stitch_form(stitch)  # a bad name fails before any worker starts
        prepare_store(checkpoint)
        serve_workers(options, host, port, workers, api_key, workers_threads)
        return
    run(agent_from_options(**options), host, port, api_key, workers_threads)


def run(agent: ConvirAgent, host: str, port: int, api_key: str | None, threads: int) -> None:
    """Serve until interrupted; the request thread pool is sized for ``threads`` turns."""
    import asyncio

    import anyio.to_thread
    import uvicorn

    from convir.server.app import create_app

    app = create_app(agent, agent.resources, api_key=api_key)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)

    async def serve() -> None:
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        await uvicorn.Server(config).serve()

    typer.echo(f"convir serving on http://{host}:{port}/ (API docs at /docs)", err=True)
    asyncio.run(serve())
