"""Where conversations live: LangGraph checkpointers by spec (memory, SQLite, a pooled
Postgres that survives a restart), whether one answers, and whether an error means its
database is down. FastAPI-free: the server, the MCP server and ``load_agent`` share it."""

from __future__ import annotations

from typing import Any

from convir.errors import InputError


def _memory_saver() -> Any:
    """LangGraph's InMemorySaver, minus a leak: its storage is a defaultdict, so reading a
    thread that does not exist (a server probed with made-up session ids) left an empty entry
    behind for good. Here such a read returns None without touching the storage."""
    from langgraph.checkpoint.memory import InMemorySaver

    class MemorySaver(InMemorySaver):
        def get_tuple(self, config: Any) -> Any:
            if config["configurable"]["thread_id"] not in self.storage:
                return None
            return super().get_tuple(config)

    return MemorySaver()


POOL_SIZE = 8  # connections: one per concurrent turn is plenty
POOL_TIMEOUT_S = 5.0  # how long a request waits for connections, in all, before failing (-> 503)
HEALTH_WAIT_S = 1.0  # /health: how long it waits before saying "degraded"


def _postgres_saver(spec: str, saver_class: Any) -> Any:
    """A Postgres checkpointer over a connection pool that survives a database restart.

    Every connection is checked when taken from the pool (a cheap round trip), so after
    the server restarts the dead ones are dropped and new ones opened, and a request made
    while it is down fails after ``POOL_TIMEOUT_S`` (``psycopg_pool.PoolTimeout``) instead of
    hanging; nothing written before the restart is lost (it is in the database). Inside
    a :func:`convir.wait_budget.wait_budget` (the server opens one per request) every wait
    for a connection is charged to that one budget.
    """
    try:
        from psycopg_pool import ConnectionPool

        from convir.wait_budget import budgeted_pool_class
    except ImportError as exc:
        raise InputError(
            "Postgres checkpoints need the extra: pip install 'convir[postgres]'"
        ) from exc
    pool = budgeted_pool_class()(
        spec,
        min_size=1,
        max_size=POOL_SIZE,
        kwargs={"autocommit": True, "prepare_threshold": 0},
        check=ConnectionPool.check_connection,
        timeout=POOL_TIMEOUT_S,
        open=False,
        name="convir-checkpoints",
    )
    try:
        pool.open(wait=True, timeout=POOL_TIMEOUT_S)
    except Exception as exc:
        pool.close()
        raise InputError(
            f"--checkpoint: cannot connect to the Postgres server ({type(exc).__name__}: "
            f"{str(exc)[:200]}); is it running, and is the URL right?"
        ) from exc
    saver = saver_class(pool)
    saver.setup()
    return saver


def checkpoint_alive(saver: Any) -> bool:
    """Whether the checkpointer answers now (a read of a thread that does not exist)."""
    try:
        saver.get_tuple({"configurable": {"thread_id": "__convir_health__", "checkpoint_ns": ""}})
    except Exception:
        return False
    return True


def checkpointer(spec: str | None = None) -> Any:
    """``None``/``memory``: in process; ``sqlite:PATH``: a file; ``postgres://...``: a server."""
    if spec in (None, "", "memory"):
        return _memory_saver()
    if spec.startswith("sqlite:"):
        import sqlite3
        from pathlib import Path

        from langgraph.checkpoint.sqlite import SqliteSaver

        path = Path(spec.removeprefix("sqlite:")).expanduser()
        if str(path) in ("", "."):
            raise InputError("--checkpoint sqlite:PATH needs a file path, e.g. sqlite:chats.db")
        path.parent.mkdir(parents=True, exist_ok=True)
        saver = SqliteSaver(sqlite3.connect(str(path), check_same_thread=False))
        saver.setup()
        return saver
    if spec.startswith(("postgres://", "postgresql://")):
        try:
            from langgraph.checkpoint.postgres import PostgresSaver
        except ImportError as exc:
            raise InputError(
                "Postgres checkpoints need the extra: pip install 'convir[postgres]'"
            ) from exc
        return _postgres_saver(spec, PostgresSaver)
    raise InputError(f"--checkpoint {spec!r}: use memory, sqlite:PATH or postgres://...")


def is_database_down(exc: BaseException) -> bool:
    """A connection-level failure of the checkpoint database (psycopg / psycopg_pool)."""
    names = {"OperationalError", "PoolTimeout", "InterfaceError", "PoolClosed"}
    for _ in range(10):  # the exception, then what caused it
        if exc is None:
            return False
        if type(exc).__module__.startswith("psycopg") and type(exc).__name__ in names:
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False
