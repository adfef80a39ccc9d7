"""One turn at a time per session: a second message while one runs gets HTTP 409.

The agent is safe across different conversations, but two turns of the same conversation
would race on its checkpoint; refusing is clearer than queueing behind a slow turn. The rule
is checked in this process first (a set), then, where sessions live in a shared store
(SQLite or Postgres), in the store (``convir.server.leases``), so it holds across every
worker and machine over that store.
"""

from __future__ import annotations

import threading

from convir.errors import ConvirError
from convir.server.leases import Leases


class SessionBusyError(ConvirError):
    """A turn of this session is still running (HTTP 409)."""


class BusySessions:
    """The ids of sessions whose turn is running (here, or, with ``leases``, anywhere)."""

    def __init__(self, leases: Leases | None = None) -> None:
        self._running: set[str] = set()
        self._lock = threading.Lock()
        self.leases = leases

    def claim(self, session_id: str) -> None:
        """Mark the session busy, or raise :class:`SessionBusyError` if it already is."""
        with self._lock:
            if session_id in self._running:
                raise self._busy(session_id)
            self._running.add(session_id)
        if self.leases is None:
            return
        try:
            taken = self.leases.claim(session_id)
        except BaseException:
            self._forget(session_id)
            raise
        if not taken:
            self._forget(session_id)
            raise self._busy(session_id)

    def release(self, session_id: str) -> None:
        """Free the session; a store that fails to free its lease is logged, not raised (the
        turn is done; SQLite retries the delete, a dead Postgres connection holds no locks)."""
        try:
            if self.leases is not None:
                self.leases.release(session_id)
        except Exception:
            import logging

            logging.getLogger(__name__).warning("could not free the lease of %s", session_id)
        finally:
            self._forget(session_id)

    def _forget(self, session_id: str) -> None:
        with self._lock:
            self._running.discard(session_id)

    @staticmethod
    def _busy(session_id: str) -> SessionBusyError:
        return SessionBusyError(
            f"session {session_id} is still answering the previous message; "
            "wait for it (or stream it) and send again"
        )

    def __len__(self) -> int:
        with self._lock:
            return len(self._running)
