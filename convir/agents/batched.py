"""The agent for evaluations: many conversations' turns at once, without the graph runtime.

:class:`~convir.agents.conversation.ConvirAgent` runs each turn through LangGraph (checkpoints, channels,
interrupts), which a person chatting never notices and an evaluation of 1,000 dialogues x
10 rounds pays ~40% of its time for. :class:`BatchedAgent` runs the very same nodes
(:func:`convir.agents.nodes.build_nodes`: same policy, tools and configuration) in the
order the graph would (the edges of ``convir.agents.routing``), on plain dicts kept in memory, and takes one turn of many
conversations per call (:class:`~convir.turn.BatchedSystem`): the conversations advance in
lockstep, and whenever several of them are due to ``retrieve``, their query texts go
through the text encoder in one call and their first stages through FAISS in one search
(``retrieve.retrieve_many``). The other steps run per conversation (their work is per
conversation: a question menu, a refinement); fact embeddings are cached across all of them.

The rankings equal ConvirAgent's up to the float rounding of a batched forward pass
(``benchmarks/bench_eval.py`` counts the rounds that differ). Conversations live in memory
only: this is an evaluation engine, not a server (no checkpointer, no streaming, no uploads).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from convir.agents.routing import DECIDE, ENTRY, FINISH, PAUSE, next_node
from convir.errors import InputError
from convir.state import AgentConfig, ConvState
from convir.turn import TurnResult

if TYPE_CHECKING:
    from convir.agents.policy import Policy
    from convir.gallery.resources import Resources


class BatchedAgent:
    """ConvirAgent's conversations (same nodes, same order), many turns per call."""

    def __init__(
        self,
        resources: Resources,
        policy: Policy | None = None,
        config: AgentConfig | None = None,
    ) -> None:
        from convir.agents.nodes import build_nodes
        from convir.gallery.answers import AnswerModel

        self.resources = resources
        self.config = config or AgentConfig()
        self._answers = AnswerModel(resources.embedder, self.config.answer_temperature)
        self._nodes = build_nodes(resources, policy, self.config, answers=self._answers)
        self._states: dict[str, ConvState] = {}

    def state(self, thread_id: str) -> ConvState:
        """The conversation's state ({} if it never started)."""
        return dict(self._states.get(thread_id, {}))  # type: ignore[return-value]

    def start(self, thread_id: str, message: str, reference_id: str | None = None) -> TurnResult:
        return self.start_batch([(thread_id, message, reference_id)])[0]

    def reply(self, thread_id: str, message: str) -> TurnResult:
        return self.reply_batch([(thread_id, message)])[0]

    def start_batch(self, openings: Sequence[tuple[str, str, str | None]]) -> list[TurnResult]:
        """Open many conversations: (thread_id, message, reference_id) each."""
        from convir.gallery.opening import check_opening

        fresh: dict[str, ConvState] = {}
        for thread_id, message, reference_id in openings:
            if thread_id in self._states or thread_id in fresh:
                raise InputError(f"conversation {thread_id!r} already exists; use reply()")
            check_opening(self.resources, self.config, reference_id)
            fresh[thread_id] = {
                "message": str(message),
                "message_key": None,
                "reference_id": reference_id,
                "reference_vector": None,
                "transcript": [],
            }
        self._states.update(fresh)
        return self._turns(list(fresh), [True] * len(fresh))

    def reply_batch(self, replies: Sequence[tuple[str, str]]) -> list[TurnResult]:
        """The next message of many conversations: (thread_id, message) each."""
        ids, receive = [], []
        for thread_id, message in replies:
            state = self._states.get(thread_id)
            if state is None:
                raise InputError(f"no conversation {thread_id!r}; start() it first")
            if thread_id in ids:
                raise InputError(f"conversation {thread_id!r} appears twice in one batch")
            ids.append(thread_id)
            if state.get("question"):  # the paused question: the message answers it
                from convir.tools.ask_clarification import fold_answer

                _apply(state, fold_answer(state, message))
                receive.append(False)
            else:  # a new remark: the graph starts the turn at receive
                _apply(state, {"message": str(message), "message_key": None})
                receive.append(True)
        return self._turns(ids, receive)

    def _turns(self, ids: list[str], receive: list[bool]) -> list[TurnResult]:
        """Run each conversation's turn to its end (a pause for an answer, or finish), in
        waves: every running conversation's policy step, then each chosen tool for all the
        conversations that chose it; where each goes next is ``routing.ROUTES``'."""
        from convir.agents.nodes import with_step
        from convir.tools.retrieve import retrieve_many

        order = {t: i for i, t in enumerate(ids)}
        seen = {}
        for thread_id, fold in zip(ids, receive, strict=True):
            state = self._states[thread_id]
            seen[thread_id] = len(state.get("transcript", [])) - (0 if fold else 1)
            if fold:
                _apply(state, self._nodes[ENTRY](state))
            # the answer was folded in by reply_batch: the pause's work, done
            if next_node(ENTRY if fold else PAUSE, state) != DECIDE:
                raise RuntimeError("routing changed: the batched engine starts at the policy")
        running = list(ids)
        while running:
            due: dict[str, list[str]] = {}
            for thread_id in running:
                state = self._states[thread_id]
                _apply(state, self._nodes[DECIDE](state))
                due.setdefault(next_node(DECIDE, state), []).append(thread_id)
            running = []
            for action, group in due.items():
                if action == FINISH:
                    continue
                states = [self._states[t] for t in group]
                if action == "retrieve" and len(group) > 1:  # the node's work, batched
                    found = retrieve_many(self.resources, self.config, self._answers, states)
                    updates = [with_step(action, s, u) for s, u in zip(states, found, strict=True)]
                else:
                    updates = [self._nodes[action](s) for s in states]
                for thread_id, state, update in zip(group, states, updates, strict=True):
                    _apply(state, update)
                    if next_node(action, state) == DECIDE:  # else PAUSE: the turn waits
                        running.append(thread_id)
            running.sort(key=order.__getitem__)
        return [self._result(t, seen[t]) for t in ids]

    def _result(self, thread_id: str, seen: int) -> TurnResult:
        from convir.agents.results import turn_result

        state = self._states[thread_id]
        return turn_result(state, state.get("question") or None, seen)


def _apply(state: ConvState, update: dict) -> None:
    """A node's update applied as the graph's channels would: ``transcript`` appends, every
    other key is replaced."""
    for key, value in update.items():
        if key == "transcript":
            state["transcript"] = [*state.get("transcript", []), *value]
        else:
            state[key] = value  # type: ignore[literal-required]
