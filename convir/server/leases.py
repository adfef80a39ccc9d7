"""The busy (409) rule across worker processes: a turn holds a lease on its session in the
session store itself, so two workers (or two machines) over one store never run two turns
of one conversation at once.

- **SQLite** (one host): a row per running turn in ``convir_leases`` (session id, owner
  process id and start time), claimed in one ``BEGIN IMMEDIATE`` transaction. A row whose
  owner process is gone (killed mid-turn) is stale and taken over, so a retry after a crash
  is never refused; the liveness check reads this host's process table, which is why
  SQLite serves one host only.
- **Postgres** (any number of hosts): a session-level advisory lock
  (``pg_try_advisory_lock``) per running turn, held on one connection of the worker's own.
  The database frees it when that connection ends, so a worker that dies, or loses its
  connection, frees its sessions at once; nothing is written.

Both are claimed after the worker's in-process check (:class:`convir.server.busy.BusySessions`),
which stays the only guard for in-memory sessions.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from typing import Any, Protocol

_LEASES = (
    "CREATE TABLE IF NOT EXISTS convir_leases "
    "(session_id TEXT PRIMARY KEY, pid INTEGER NOT NULL, started TEXT NOT NULL, since REAL)"
)


class Leases(Protocol):
    def claim(self, session_id: str) -> bool: ...

    def release(self, session_id: str) -> None: ...


def _process_start(pid: int) -> str:
    """When process ``pid`` started (clock ticks since boot, from /proc): with the pid, an
    identity a recycled pid does not share. "" where /proc is missing."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return ""
    return stat.rsplit(b")", 1)[1].split()[19].decode("ascii")  # field 22: starttime


def _alive(pid: int, started: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: it exists
    return not started or _process_start(pid) == started


class SqliteLeases:
    """Leases as rows of the SQLite session file (module docstring)."""

    def __init__(self, path: str) -> None:
        self.pid = os.getpid()
        self.started = _process_start(self.pid)
        self._lock = threading.Lock()
        self._unreleased: set[str] = set()  # deletes that failed (a locked file): retried
        self._conn = sqlite3.connect(
            path, timeout=5.0, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA busy_timeout = 5000")
        self._conn.execute(_LEASES)

    def claim(self, session_id: str) -> bool:
        """Take the session's lease; False if a live process holds it."""
        with self._lock:
            self._retry_releases()
            db = self._conn
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute(
                    "SELECT pid, started FROM convir_leases WHERE session_id = ?", (session_id,)
                ).fetchone()
                if row is not None and _alive(int(row[0]), str(row[1])):
                    db.execute("ROLLBACK")
                    return False
                db.execute(
                    "INSERT OR REPLACE INTO convir_leases VALUES (?, ?, ?, ?)",
                    (session_id, self.pid, self.started, time.time()),
                )
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            return True

    def release(self, session_id: str) -> None:
        with self._lock:
            self._unreleased.add(session_id)
            self._retry_releases()

    def _retry_releases(self) -> None:
        for session_id in list(self._unreleased):
            try:
                self._conn.execute(
                    "DELETE FROM convir_leases WHERE session_id = ? AND pid = ?",
                    (session_id, self.pid),
                )
            except sqlite3.OperationalError:  # the file stayed locked past the busy timeout
                return
            self._unreleased.discard(session_id)


def _lock_key(session_id: str) -> int:
    """The advisory lock's 64-bit key: a hash of the session id (signed, as Postgres wants)."""
    return int.from_bytes(hashlib.sha256(session_id.encode()).digest()[:8], "big", signed=True)


class PostgresLeases:
    """Leases as advisory locks on one connection of this worker (module docstring)."""

    def __init__(self, conninfo: str, connect_timeout: float = 5.0) -> None:
        self.conninfo = conninfo
        self.connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._conn: Any = None

    def _connection(self) -> Any:
        import psycopg

        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = None
            timeout = max(2, int(self.connect_timeout))  # libpq's minimum is 2 s
            self._conn = psycopg.connect(
                self.conninfo, autocommit=True, connect_timeout=timeout, prepare_threshold=0
            )
        return self._conn

    def claim(self, session_id: str) -> bool:
        """Take the session's advisory lock; False if another connection holds it. A dead
        connection raises (the server answers 503) and is replaced on the next claim."""
        with self._lock:
            try:
                row = (
                    self._connection()
                    .execute("SELECT pg_try_advisory_lock(%s)", (_lock_key(session_id),))
                    .fetchone()
                )
            except Exception:
                self._drop()
                raise
            return bool(row[0])

    def release(self, session_id: str) -> None:
        with self._lock:
            if self._conn is None:
                return  # the connection (and with it every lock it held) is gone
            try:
                self._conn.execute("SELECT pg_advisory_unlock(%s)", (_lock_key(session_id),))
            except Exception:
                self._drop()  # a dead connection holds no locks: nothing left to free

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    def close(self) -> None:
        with self._lock:
            self._drop()


def leases_for(saver: Any) -> Leases | None:
    """The leases of the store a checkpointer writes to; None for in-memory sessions (one
    process: the in-process check is the whole rule)."""
    from convir.server.session_ids import is_psycopg

    conn = getattr(saver, "conn", None)  # LangGraph's SQLite and Postgres savers hold one
    if isinstance(conn, sqlite3.Connection):
        lock = getattr(saver, "lock", None)
        with lock if lock is not None else threading.Lock():
            rows = conn.execute("PRAGMA database_list").fetchall()
        path = next((str(r[2]) for r in rows if r[1] == "main"), "")
        return SqliteLeases(path) if path else None
    if is_psycopg(conn):
        conninfo = getattr(conn, "conninfo", None) or conn.info.dsn
        return PostgresLeases(conninfo)
    return None
