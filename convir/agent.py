"""The agent as a :class:`~convir.turn.ConversationalSystem`: start a conversation, reply to it.

:class:`ConvirAgent` wraps the compiled graph: one ``thread_id`` per conversation, state in
a LangGraph checkpointer (in memory by default, SQLite or Postgres by :func:`checkpointer`),
one :class:`~convir.turn.TurnResult` per user message. Safe to call from many threads at
once for different conversations (the server and the evaluation loop's thread pool do).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from convir.errors import InputError
from convir.state import AgentConfig, ConvState
from convir.turn import TurnResult

if TYPE_CHECKING:
    from convir.agents.batched import BatchedAgent
    from convir.agents.explain import RankExplanation
    from convir.agents.policy import Policy
    from convir.agents.resources import Resources


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


def check_reference(resources: Resources, reference_id: str | None) -> None:
    """A composed query's reference must be a gallery id: an InputError names one that is."""
    if reference_id is None:
        return
    try:
        resources.index.position_of(reference_id)
    except KeyError:
        shown = repr(reference_id) if len(reference_id) <= 80 else repr(reference_id[:80]) + "..."
        raise InputError(
            f"reference image {shown} is not in the gallery; pass the id of an image "
            f"a search returned (e.g. {resources.index.id_of(0)!r})"
        ) from None


def check_opening(
    resources: Resources, config: AgentConfig, reference_id: str | None, has_vector: bool = False
) -> None:
    """What every opening message is checked for, by either engine: a known reference, and
    one at all (an id or an embedding) when the configuration fixes the strategy to STiTch."""
    check_reference(resources, reference_id)
    if reference_id is None and not has_vector and config.strategy == "stitch":
        raise InputError("strategy stitch needs a reference image (reference_id)")


def last_result(events: Iterator[tuple[str, dict] | TurnResult]) -> TurnResult:
    """Run a turn's event stream to its end: its last event is the turn's result."""
    result = None
    for event in events:
        result = event
    if not isinstance(result, TurnResult):
        raise RuntimeError("the turn's event stream ended without a result")
    return result


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


def turn_result(state: ConvState | dict, question: str | None, seen: int = 0) -> TurnResult:
    """A conversation's latest turn as a :class:`TurnResult` (transcript lines from ``seen``)."""
    strategy = state.get("strategy", "dar")
    generated = state.get("generated") or []
    current = state.get("generated_for") == state.get("query")
    return TurnResult(
        ranking=list(state.get("candidates", [])),
        scores=list(state.get("scores", [])),
        question=question,
        options=list(state.get("question_options", []) or []) if question else [],
        strategy=strategy,
        query=state.get("query", ""),
        transcript=list(state.get("transcript", []))[seen:],
        turn=int(state.get("turn", 0)),
        reference_id=state.get("reference_id"),
        descriptions=list(state.get("descriptions") or []) if strategy == "stitch" else [],
        imagined=len(generated) if strategy == "dar" and current else 0,
    )


def build_agent(
    resources: Resources,
    strategy: str = "auto",
    policy: str = "rules",
    questions: str = "info_gain",
    checkpoint: Any = None,
    **config: Any,
) -> ConvirAgent:
    """An agent by names (strategy, policy, questions): the entry point of chat, the server
    and evaluations that run the LangGraph agent itself."""
    cfg = AgentConfig(strategy=strategy, questions=questions, **config)
    return ConvirAgent(resources, policy_named(resources, policy), cfg, checkpoint)


def build_batched_agent(
    resources: Resources,
    strategy: str = "auto",
    policy: str = "rules",
    questions: str = "info_gain",
    **config: Any,
) -> BatchedAgent:
    """:func:`build_agent`'s evaluation engine: the same nodes without the graph runtime,
    many conversations per call, in memory only (:class:`convir.agents.batched.BatchedAgent`)."""
    from convir.agents.batched import BatchedAgent

    cfg = AgentConfig(strategy=strategy, questions=questions, **config)
    return BatchedAgent(resources, policy_named(resources, policy), cfg)


def policy_named(resources: Resources, policy: str) -> Policy:
    """The policy ``rules`` or ``llm`` (which needs the gallery's LLM)."""
    from convir.agents.policy import LLMPolicy, RulePolicy

    if policy == "rules":
        return RulePolicy()
    if policy == "llm":
        if resources.llm is None:
            raise InputError(
                "--policy llm needs an LLM: set CONVIR_LLM_URL (docs/llm.md) or use --policy rules"
            )
        return LLMPolicy(resources.llm)
    raise InputError(f"--policy must be rules or llm, got {policy!r}")
