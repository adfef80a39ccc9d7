"""The session store as the server opens it: the agent's checkpointer, tuned for serving.

SQLite: the file is in WAL mode (LangGraph's saver sets it), so readers never wait for the
writer and several worker processes on one host can share it; the server also sets
``synchronous=NORMAL``, which in WAL mode syncs the log at checkpoints instead of at every
commit. A turn commits twice (its checkpoint and its pending writes); on this project's
disk a synced commit costs 4-8 ms and an unsynced one under 1 ms. A process killed at any
point (``kill -9``) loses nothing, since the log is in the OS's cache; a power cut or a
kernel crash can lose the last turns committed before it (the file stays consistent). Use
Postgres where that matters.
"""

from __future__ import annotations

import sqlite3
from contextlib import nullcontext
from typing import Any


def open_store(spec: str) -> Any:
    """The checkpointer for ``--checkpoint SPEC`` (``convir.agent.checkpointer``), with
    SQLite tuned as the module docstring says."""
    from convir.agent import checkpointer

    saver = checkpointer(spec)
    tune(saver)
    return saver


def tune(saver: Any) -> None:
    """WAL with ``synchronous=NORMAL`` and a 5 s busy wait on a SQLite saver's connection
    (other savers are left alone)."""
    conn = getattr(saver, "conn", None)
    if not isinstance(conn, sqlite3.Connection):
        return
    with getattr(saver, "lock", None) or nullcontext():
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
