"""``convir serve --workers N``: N processes answer on one port over one session store.

One Python process runs one turn's Python at a time (the GIL), so a single server uses about
one core however many threads it has. Here the parent binds the port and starts N worker
processes (``spawn``: each a fresh interpreter, nothing inherited but its listening socket);
each worker opens the gallery itself (the index is **loaded per worker**, not shared:
memory grows by one gallery and its models per worker) and its own connections to the
session store, then serves its socket with uvicorn; the sockets share the port
(``SO_REUSEPORT``) and the kernel spreads new connections over them. Everything a conversation needs is in the store, so any worker continues any
session: the checkpoint (state), the Idempotency-Key (saved with the turn), the session-id
secret (``convir_secret``) and the busy rule's leases (``convir.server.leases``).

Each worker gets ``cores // N`` threads for torch and FAISS unless ``OMP_NUM_THREADS`` is
set. The parent restarts a worker that dies (a turn it was running is finished by the next
message or keyed retry, as after any crash) and stops them all on SIGINT or SIGTERM.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import sys
import time
from typing import Any

RESTART_PAUSE_S = 1.0  # between restarts of a worker that keeps dying


def bind(host: str, port: int, workers: int) -> list[socket.socket]:
    """One listening socket per worker on the same port, with ``SO_REUSEPORT`` (the kernel
    spreads new connections over them by a hash of the client's address); where that is
    missing, one socket shared by all. A shared socket goes to whichever worker wakes
    first: measured with 20 keep-alive clients and 2 workers, one worker held 18 of the
    connections for the whole run."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    reuse_port = getattr(socket, "SO_REUSEPORT", None)
    sockets: list[socket.socket] = []
    for _ in range(workers if reuse_port is not None else 1):
        # IPPROTO_TCP said outright: asyncio turns Nagle off (TCP_NODELAY) only on accepted
        # sockets whose proto is TCP, and a socket made with proto 0 passes 0 on; with Nagle
        # on, each small reply waited for the client's delayed ACK: 40 ms a request
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port is not None:
            sock.setsockopt(socket.SOL_SOCKET, reuse_port, 1)
        sock.bind((host, port))
        port = sock.getsockname()[1]  # port 0: the others join the port the first got
        sock.listen(2048)
        sock.set_inheritable(True)
        sockets.append(sock)
    return sockets


def prepare_store(checkpoint: str) -> None:
    """Open the store once before the workers start: a bad spec fails here, before any model
    loads, and its tables and secret exist before workers race to make them."""
    from convir.server.leases import leases_for
    from convir.server.session_ids import session_secret
    from convir.server.store import open_store

    saver = open_store(checkpoint)
    try:
        session_secret(saver)
        leases = leases_for(saver)
        if leases is not None and hasattr(leases, "close"):
            leases.close()
    finally:
        close_store(saver)


def close_store(saver: Any) -> None:
    """Close a checkpointer's connection or pool (memory savers have none)."""
    conn = getattr(saver, "conn", None)
    with contextlib.suppress(Exception):
        if conn is not None:
            conn.close()


def serve_workers(
    options: dict[str, Any],
    host: str,
    port: int,
    workers: int,
    api_key: str | None,
    threads: int,
) -> None:
    """Run ``workers`` processes on ``host:port`` until SIGINT/SIGTERM (module docstring).
    ``options`` are ``convir.cli_options.agent_from_options``'s keyword arguments."""
    import multiprocessing

    import typer

    sockets = bind(host, port, workers)
    context = multiprocessing.get_context("spawn")
    stopping = False

    def start(slot: int) -> Any:
        process = context.Process(
            target=worker_main,
            args=(options, sockets[slot % len(sockets)], api_key, threads, workers, slot),
            name=f"convir-worker-{slot}",
            daemon=False,
        )
        process.start()
        return process

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    processes = [start(slot) for slot in range(workers)]
    typer.echo(
        f"convir serving on http://{host}:{port}/ with {workers} worker processes "
        "(API docs at /docs)",
        err=True,
    )
    try:
        from multiprocessing.connection import wait

        while not stopping:
            wait([p.sentinel for p in processes], timeout=0.5)
            for slot, process in enumerate(processes):
                if stopping or process.is_alive():
                    continue
                typer.echo(
                    f"worker {slot} (pid {process.pid}) exited with {process.exitcode}; "
                    "starting another",
                    err=True,
                )
                time.sleep(RESTART_PAUSE_S)
                processes[slot] = start(slot)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn finishes the requests in flight
        deadline = time.monotonic() + 30
        for process in processes:
            process.join(max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
        for sock in sockets:
            sock.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def worker_main(
    options: dict[str, Any],
    sock: socket.socket,
    api_key: str | None,
    threads: int,
    workers: int,
    slot: int,
) -> None:
    """One worker: its own gallery, agent and store connections, serving ``sock``."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        # uvicorn re-raises the signal that stopped it; exiting through SystemExit (not the
        # default handlers' abrupt end) lets multiprocessing clean up, quietly
        signal.signal(signum, _exit_quietly)
    if "OMP_NUM_THREADS" not in os.environ:  # before torch or FAISS load
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
    from convir.cli_options import agent_from_options

    # one worker reports what loading says (notes about the gallery); the others only
    # when it fails, so the terminal shows each message once
    captured = io.StringIO()
    quiet = contextlib.redirect_stderr(captured) if slot else contextlib.nullcontext()
    try:
        with quiet:
            agent = agent_from_options(**options)
    except BaseException:
        sys.stderr.write(captured.getvalue())
        raise
    serve_socket(agent, sock, api_key, threads)


def _exit_quietly(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def serve_socket(agent: Any, sock: socket.socket, api_key: str | None, threads: int) -> None:
    """Serve the app of ``agent`` on an already listening socket until SIGINT/SIGTERM."""
    import asyncio

    import anyio.to_thread
    import uvicorn

    from convir.server.app import create_app

    app = create_app(agent, agent.resources, api_key=api_key)
    config = uvicorn.Config(app, log_level="warning", access_log=False)

    async def serve() -> None:
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        await uvicorn.Server(config).serve(sockets=[sock])

    asyncio.run(serve())
