"""The agent as a :class:`~convir.turn.ConversationalSystem`: start a conversation, reply to it.

:class:`ConvirAgent` wraps the compiled graph: one ``thread_id`` per conversation, state in
a LangGraph checkpointer (in memory by default, SQLite or Postgres by
:func:`convir.agents.checkpointers.checkpointer`),
one :class:`~convir.turn.TurnResult` per user message. Safe to call from many threads at
once for different conversations (the server and the evaluation loop's thread pool do).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from convir.agents.checkpointers import checkpointer
from convir.agents.results import last_result, turn_result
from convir.errors import InputError
from convir.gallery.opening import check_opening
from convir.state import AgentConfig, ConvState
from convir.turn import TurnResult

if TYPE_CHECKING:
    from convir.agents.explain import RankExplanation
    from convir.agents.policy import Policy
    from convir.gallery.resources import Resources


class ConvirAgent:
    """Conversations over one gallery with one policy and configuration."""

    def __init__(
        self,
        resources: Resources,
        policy: Policy | None = None,
        config: AgentConfig | None = None,
        checkpoint: Any = None,
        durability: str = "exit",
    ) -> None:
        """``durability="exit"`` saves a conversation once per turn (when the turn pauses or
        ends), not after every node: a crash mid-turn loses only that unanswered turn, and a
        turn costs one checkpoint write instead of seven. Use "sync" to save every step."""
        from convir.agents.graph import build_graph

        self.resources = resources
        self.config = config or AgentConfig()
        self.checkpointer = checkpoint if checkpoint is not None else checkpointer(None)
        self.durability = durability
        self.graph = build_graph(resources, policy, self.config, checkpointer=self.checkpointer)

    def _cfg(self, thread_id: str) -> dict:
        if not thread_id or not isinstance(thread_id, str):
            raise InputError("thread_id must be a non-empty string")
        return {"configurable": {"thread_id": thread_id}, "recursion_limit": 100}

    def state(self, thread_id: str) -> ConvState:
        """The conversation's checkpointed state ({} if it never started)."""
        return dict(self.graph.get_state(self._cfg(thread_id)).values)  # type: ignore[return-value]

    def explain(self, thread_id: str, image_id: str) -> RankExplanation:
        """Why ``image_id`` ranks where it does in the conversation's current turn: its
        first-stage similarity, each answer's term and the rerank's share
        (``convir.agents.explain``). ``KeyError`` for an image not in the gallery,
        ``InputError`` for a conversation that never started."""
        from convir.agents.explain import explain_rank

        state = self.state(thread_id)
        if not state:
            raise InputError(f"no conversation {thread_id!r}")
        return explain_rank(self.resources, self.config, state, image_id)

    def pending_question(self, thread_id: str) -> str | None:
        return _pending(self.graph.get_state(self._cfg(thread_id)))

    def start(
        self,
        thread_id: str,
        message: str,
        reference_id: str | None = None,
        reference_vector: Sequence[float] | None = None,
    ) -> TurnResult:
        """Open a conversation (an error if ``thread_id`` already has one).

        A composed query names its reference image by gallery id, or passes the embedding of
        an image from elsewhere (an upload) as ``reference_vector``.
        """
        return self._run(self.start_stream(thread_id, message, reference_id, reference_vector))

    def reply(self, thread_id: str, message: str) -> TurnResult:
        """The user's next message: the answer to the pending question, or a new remark."""
        return self._run(self.reply_stream(thread_id, message))

    def start_stream(
        self,
        thread_id: str,
        message: str,
        reference_id: str | None = None,
        reference_vector: Sequence[float] | None = None,
        *,
        key: str | None = None,
        durability: str | None = None,
    ) -> Iterator[tuple[str, dict] | TurnResult]:
        """Like :meth:`start`, yielding ``(node, update)`` as each node finishes, then the result."""
        cfg = self._cfg(thread_id)
        if self.state(thread_id):
            raise InputError(f"conversation {thread_id!r} already exists; use reply()")
        check_opening(self.resources, self.config, reference_id, reference_vector is not None)
        vector = None
        if reference_vector is not None:
            vector = [float(x) for x in reference_vector]
            if reference_id is not None or len(vector) != self.resources.index.dim:
                raise InputError(
                    f"reference_vector must be one {self.resources.index.dim}-d embedding, "
                    "given instead of reference_id"
                )
        payload = {
            "message": str(message),
            "message_key": key,
            "reference_id": reference_id,
            "reference_vector": vector,
        }
        return self._stream(payload, cfg, 0, durability)

    def reply_stream(
        self, thread_id: str, message: str, *, key: str | None = None
    ) -> Iterator[tuple[str, dict] | TurnResult]:
        """Like :meth:`reply`, yielding each node's update, then the result. ``key`` (a
        client's idempotency key) is stored with the turn, in the same checkpoint."""
        from langgraph.types import Command

        cfg = self._cfg(thread_id)
        snap = self.graph.get_state(cfg)  # existence, transcript length, pending: one read
        if not snap.values:
            raise InputError(f"no conversation {thread_id!r}; start() it first")
        if _stopped_midway(snap):  # the process died during the last turn: finish it first,
            last_result(self._stream(None, cfg, 0))  # so the new message does not drop it
            snap = self.graph.get_state(cfg)
        seen = len(snap.values.get("transcript", []))
        if _pending(snap) is not None:
            # the key travels with the answer, so it is saved by the step that folds the
            # answer in (never before it: a retry must not take an unrun turn for done)
            command = Command(resume={"answer": str(message), "message_key": key})
            return self._stream(command, cfg, seen)
        return self._stream({"message": str(message), "message_key": key}, cfg, seen)

    def unfinished(self, thread_id: str) -> bool:
        """Whether the last turn stopped midway (the process died during it): see
        :func:`_stopped_midway`."""
        return _stopped_midway(self.graph.get_state(self._cfg(thread_id)))

    def resume_stream(self, thread_id: str) -> Iterator[tuple[str, dict] | TurnResult]:
        """Finish a turn that stopped midway, from its last durable point: the last
        checkpoint plus the writes of the steps that finished after it."""
        return self._stream(None, self._cfg(thread_id), _turn_from(self.state(thread_id)))

    def current(self, thread_id: str) -> TurnResult:
        """The conversation's latest turn result, as it stands (no new turn): the same
        result the turn returned when it ran, its transcript lines included."""
        return self._result(thread_id, _turn_from(self.state(thread_id)))

    def _stream(
        self, payload: Any, cfg: dict, seen: int, durability: str | None = None
    ) -> Iterator[tuple[str, dict] | TurnResult]:
        chunks = self.graph.stream(
            payload, cfg, stream_mode="updates", durability=durability or self.durability
        )
        for chunk in chunks:
            for node, update in chunk.items():
                if node != "__interrupt__":
                    yield node, update or {}
        yield self._result(cfg["configurable"]["thread_id"], seen)

    @staticmethod
    def _run(events: Iterator[tuple[str, dict] | TurnResult]) -> TurnResult:
        return last_result(events)

    def _result(self, thread_id: str, seen: int) -> TurnResult:
        snap = self.graph.get_state(self._cfg(thread_id))  # one checkpoint read per turn
        return turn_result(dict(snap.values), _pending(snap), seen)


def _stopped_midway(snap: Any) -> bool:
    """A turn the process died in: a step is still due (``snap.tasks``) and the graph is not
    paused on a question. ``snap.next`` alone misses one window: a step's writes were saved
    but the checkpoint after it was not; then ``next`` is empty, the step is listed in
    ``tasks`` with its writes, and resuming applies them and goes on."""
    return bool(snap.values) and bool(snap.tasks) and not getattr(snap, "interrupts", ())


def _turn_from(state: ConvState | dict) -> int:
    """Where the current turn's transcript lines start (conversations saved before
    ``turn_from`` existed: the end, as before)."""
    transcript = state.get("transcript", [])
    return int(state.get("turn_from", len(transcript)))


def _pending(snap: Any) -> str | None:
    """The question a paused conversation waits on (its interrupt), if any."""
    for interrupt in getattr(snap, "interrupts", ()):
        if isinstance(interrupt.value, dict) and "question" in interrupt.value:
            return str(interrupt.value["question"])
    return None
