"""Session ids for Idempotency-Keys: a retried creation must find its session, and nobody
else may compute the id from the key.

The id is ``"k" + HMAC-SHA256(secret, key)`` (40 hex digits). The secret lives where the
sessions live, so every worker and every restart over the same store derives the same ids:
a one-row table ``convir_secret`` in the SQLite file or the Postgres database (made on first
use, ``INSERT``-if-absent, so concurrent first starts agree), or a random secret per process
for in-memory sessions, which die with the process anyway. ``CONVIR_SESSION_SECRET``
overrides it (e.g. to rotate it: sessions opened under the old secret stay readable by id,
only their keyed retries stop matching).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sqlite3
from contextlib import nullcontext
from typing import Any

SECRET_ENV = "CONVIR_SESSION_SECRET"
_TABLE = (
    "CREATE TABLE IF NOT EXISTS convir_secret "
    "(id INTEGER PRIMARY KEY CHECK (id = 1), secret TEXT NOT NULL)"
)


def keyed_session_id(key: str, secret: bytes) -> str:
    """The session id of an idempotency key under ``secret``."""
    return "k" + hmac.new(secret, key.encode("utf-8"), hashlib.sha256).hexdigest()[:40]


def session_secret(saver: Any) -> bytes:
    """The store's secret (module docstring): from the environment, else kept in the
    checkpointer's own database, else random for this process."""
    if os.environ.get(SECRET_ENV):
        return os.environ[SECRET_ENV].encode("utf-8")
    fresh = secrets.token_hex(32)
    conn = getattr(saver, "conn", None)  # what LangGraph's SQLite and Postgres savers hold
    if isinstance(conn, sqlite3.Connection):
        return _sqlite_secret(saver, fresh).encode("ascii")
    if is_psycopg(conn):
        return _postgres_secret(conn, fresh).encode("ascii")
    return fresh.encode("ascii")


def is_psycopg(conn: Any) -> bool:
    """A psycopg connection or pool, subclasses included (convir's pool is a subclass that
    lives in ``convir.wait_budget``: a check of the class's own module missed it, and every
    worker over Postgres drew a secret of its own)."""
    return any(c.__module__.startswith("psycopg") for c in type(conn).__mro__)


def _sqlite_secret(saver: Any, fresh: str) -> str:
    conn = saver.conn
    with getattr(saver, "lock", None) or nullcontext():
        conn.execute(_TABLE)
        conn.execute("INSERT OR IGNORE INTO convir_secret (id, secret) VALUES (1, ?)", (fresh,))
        conn.commit()
        return str(conn.execute("SELECT secret FROM convir_secret WHERE id = 1").fetchone()[0])


def _postgres_secret(conn: Any, fresh: str) -> str:
    pooled = hasattr(conn, "connection")  # a pool (convir's) or one connection (a user's)
    with conn.connection() if pooled else nullcontext(conn) as db:
        db.execute(_TABLE)
        db.execute(
            "INSERT INTO convir_secret (id, secret) VALUES (1, %s) ON CONFLICT (id) DO NOTHING",
            (fresh,),
        )
        row = db.execute("SELECT secret FROM convir_secret WHERE id = 1").fetchone()
        if not getattr(db, "autocommit", True):
            db.commit()
    value = row["secret"] if isinstance(row, dict) else row[0]
    return str(value)
