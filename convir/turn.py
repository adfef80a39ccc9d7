"""What one turn of a conversational retrieval system returns, and the system interface.

Everything that runs dialogues (``convir demo``, ``convir eval run``, ``convir chat``, the
server) talks to a :class:`ConversationalSystem`: the agent graph is one, the ChatIR
text-only baseline is another, and a researcher's own system can be a third. One thread id
is one conversation; implementations must allow concurrent calls on different thread ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, Field


class TurnResult(BaseModel):
    """The system's answer to one user message: a ranking, maybe a question, and a log."""

    ranking: list[str] = Field(description="gallery ids, best first (the top K kept)")
    scores: list[float] = Field(description="the score of each ranked id, same order")
    question: str | None = Field(None, description="a clarifying question for the user")
    options: list[str] = Field(
        default_factory=list, description="the question's answer options (any answer is accepted)"
    )
    strategy: str = Field("text", description="dar, stitch or text: how this turn retrieved")
    query: str = Field("", description="the text query the turn searched with")
    transcript: list[str] = Field(
        default_factory=list, description="what the system did this turn, one line per step"
    )
    turn: int = Field(0, description="0 for the opening message, +1 per reply")
    reference_id: str | None = Field(None, description="the reference image a composed query edits")
    descriptions: list[str] = Field(
        default_factory=list, description="stitch: the target descriptions searched with"
    )
    imagined: int = Field(0, description="dar: images generated for the query searched with")


@runtime_checkable
class ConversationalSystem(Protocol):
    """A dialogue-driven retriever: ``start`` opens a conversation, ``reply`` continues it."""

    def start(
        self, thread_id: str, message: str, reference_id: str | None = None
    ) -> TurnResult: ...

    def reply(self, thread_id: str, message: str) -> TurnResult: ...


@runtime_checkable
class BatchedSystem(ConversationalSystem, Protocol):
    """A system that can take one turn of many conversations in one call.

    The evaluation loop then runs dialogues round by round, each round's turns as one call,
    so model and index calls are batched across dialogues. Results must equal the per-thread
    calls up to float rounding (a batched forward pass is not bitwise a single one).
    """

    def start_batch(
        self, openings: Sequence[tuple[str, str, str | None]]
    ) -> list[TurnResult]: ...  # (thread_id, message, reference_id) each

    def reply_batch(self, replies: Sequence[tuple[str, str]]) -> list[TurnResult]: ...
