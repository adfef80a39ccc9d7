"""One turn at a time per session: a second message while one runs gets HTTP 409.

The agent is safe across different conversations, but two turns of the same conversation
would race on its checkpoint; refusing is clearer than queueing behind a slow turn.
"""

from __future__ import annotations

import threading

from convir.errors import ConvirError


class SessionBusyError(ConvirError):
    """A turn of this session is still running (HTTP 409)."""


class BusySessions:
    """The ids of sessions whose turn is running."""

    def __init__(self) -> None:
        self._running: set[str] = set()
        self._lock = threading.Lock()

    def claim(self, session_id: str) -> None:
        """Mark the session busy, or raise :class:`SessionBusyError` if it already is."""
        with self._lock:
            if session_id in self._running:
                raise SessionBusyError(
                    f"session {session_id} is still answering the previous message; "
                    "wait for it (or stream it) and send again"
                )
            self._running.add(session_id)

    def release(self, session_id: str) -> None:
        with self._lock:
            self._running.discard(session_id)

    def __len__(self) -> int:
        with self._lock:
            return len(self._running)
