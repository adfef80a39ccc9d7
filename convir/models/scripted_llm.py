"""An LLM that replies from a script, for tests, demos and offline runs: the same structured
replies, validation and repair round as a server (``llm_messages.StructuredReplies``), without one."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from pydantic import BaseModel

from convir.models.llm_messages import Message, StructuredReplies, short


class ScriptedCall(NamedTuple):
    """One round trip a :class:`ScriptedLLM` served (a repair request is a second call)."""

    messages: list[Message]
    schema: type[BaseModel] | None


class ScriptedLLM(StructuredReplies):
    """An LLM that replies from a script: for tests, demos and offline runs.

    ``replies`` is either an iterable consumed one reply per round trip, or a callable
    ``(messages, schema) -> reply``. A reply is a str (returned as is, or validated like a
    server's reply, with the same single repair round), a dict or pydantic model (sent as
    JSON), or an exception instance, which is raised (e.g. ``LLMUnavailableError(...)`` to
    exercise a fallback). Every round trip is recorded in :attr:`calls`. Running out of
    replies raises ``RuntimeError``: deliberately outside :class:`LLMError`, so a policy's
    fallback cannot hide a script that is too short.
    """

    def __init__(
        self,
        replies: Iterable[str | Mapping[str, Any] | BaseModel | BaseException]
        | Callable[[list[Message], type[BaseModel] | None], Any],
    ) -> None:
        self._fn = replies if callable(replies) else None
        self._queue = deque(()) if callable(replies) else deque(replies)
        self.calls: list[ScriptedCall] = []

    def push(self, *replies: str | Mapping[str, Any] | BaseModel | BaseException) -> None:
        """Queue more replies."""
        self._queue.extend(replies)

    @property
    def remaining(self) -> int:
        """Replies still queued (0 for a callable script)."""
        return len(self._queue)

    def _chat(self, messages: list[Message], schema: type[BaseModel] | None) -> str:
        self.calls.append(ScriptedCall([dict(m) for m in messages], schema))  # type: ignore[misc]
        if self._fn is not None:
            reply = self._fn(messages, schema)
        elif self._queue:
            reply = self._queue.popleft()
        else:
            raise RuntimeError(
                f"ScriptedLLM ran out of replies after {len(self.calls) - 1} calls; "
                f"last messages: {short(json.dumps(messages), 300)}"
            )
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, str):
            return reply
        if isinstance(reply, Mapping):
            return json.dumps(reply)
        if hasattr(reply, "model_dump_json"):
            return reply.model_dump_json()
        raise TypeError(
            f"ScriptedLLM replies must be str, dict, BaseModel or exception; got {reply!r}"
        )
