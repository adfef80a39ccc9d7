"""The agent as a LangGraph state machine: receive -> policy -> tool -> policy -> ... -> end.

::

    START -> receive -> policy --refine_query-----> refine_query ------> policy
                              --generate_images--> generate_images ---> policy
                              --retrieve---------> retrieve ----------> policy
                              --ot_rerank--------> ot_rerank ---------> policy
                              --ask_clarification> ask_clarification -> await_answer -> policy
                                                   (await_answer pauses: interrupt; no question -> policy)
                              --finish-----------> END

The file is wiring only: the tools' logic lives in ``convir.tools``, the decisions in
``convir.agents.policy``. A turn ends when ``await_answer`` pauses for the answer to the question just chosen
(resume with ``Command(resume=answer)``) or when the policy finishes; a new message on the
same thread starts the next turn at ``receive``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from convir.agents.policy import Options, Policy, RulePolicy
from convir.state import (
    MAX_MESSAGE_CHARS,
    TOOLS,
    AgentConfig,
    ConvState,
    has_reference,
    turn_strategy,
)

if TYPE_CHECKING:
    from convir.agents.answers import AnswerModel
    from convir.agents.resources import Resources
    from convir.models.refiner import Refiner


def clean_message(text: object) -> tuple[str, str | None]:
    """(message as stored, a note when it had to be changed)."""
    raw = " ".join(str(text).split())
    if len(raw) > MAX_MESSAGE_CHARS:
        return raw[:MAX_MESSAGE_CHARS], f"message cut from {len(raw)} to {MAX_MESSAGE_CHARS} chars"
    return raw, None if raw else "empty message"


def receive_node(config: AgentConfig) -> Callable[[ConvState], dict]:
    """Fold the new user message into the dialogue and fix the turn's strategy."""

    def receive(state: ConvState) -> dict:
        message, note = clean_message(state.get("message", ""))
        dialogue = state.get("dialogue", [])
        first = not dialogue
        strategy = turn_strategy(config.strategy, has_reference(state))
        lines = [f"user: {message!r}"] + ([f"note: {note}"] if note else [])
        return {
            "dialogue": [*dialogue, message],
            "turn": 0 if first else state.get("turn", 0) + 1,
            "strategy": strategy,
            "steps": [],
            "question": None,
            "asked": state.get("asked", []),
            "transcript": lines,
            "turn_from": len(state.get("transcript", [])),
        }

    return receive


def policy_node(
    policy: Policy, options: Options, config: AgentConfig
) -> Callable[[ConvState], dict]:
    """Ask the policy for the next action; a turn that ran ``max_steps`` tools must end.

    ``options`` holds what the agent can do; whether this conversation has a reference
    image is read from its state."""

    def decide(state: ConvState) -> dict:
        if len(state.get("steps", [])) >= config.max_steps:
            return {"next_action": "finish", "transcript": ["policy: step limit, finish"]}
        here = replace(options, has_reference=has_reference(state))
        d = policy.decide(state, here)
        strategy = turn_strategy(
            config.strategy, here.has_reference, d.strategy, state.get("strategy")
        )
        line = f"policy: {d.action} ({strategy}) - {d.reason}"  # the strategy that runs
        if strategy != d.strategy:
            line += f" [policy asked for {d.strategy}, kept {strategy}]"
        if d.note:
            line += f" [fallback: {d.note}]"
        return {"next_action": d.action, "strategy": strategy, "transcript": [line]}

    return decide


def route(state: ConvState) -> str:
    return state.get("next_action", "finish")


def has_question(state: ConvState) -> bool:
    return bool(state.get("question"))


def build_nodes(
    resources: Resources,
    policy: Policy | None = None,
    config: AgentConfig | None = None,
    *,
    refiner: Refiner | None = None,
    answers: AnswerModel | None = None,
) -> dict[str, Callable[[ConvState], dict]]:
    """Every node of the graph by name (``receive``, ``policy``, the tools); the graph wires
    them, and :class:`convir.agents.batched.BatchedAgent` runs them without the runtime."""
    from convir.agents.answers import AnswerModel
    from convir.models.refiner import LLMRefiner, TemplateRefiner
    from convir.tools.specs import TOOL_SPECS, ToolDeps

    config = config or AgentConfig()
    policy = policy or RulePolicy()
    answers = answers or AnswerModel(resources.embedder, config.temperature)
    refiner = refiner or (LLMRefiner(resources.llm) if resources.llm else TemplateRefiner())
    options = Options(
        can_generate=resources.generator_factory is not None and config.strategy != "text",
        has_reference=False,
    )
    deps = ToolDeps(resources, config, answers, refiner)
    return {
        "receive": receive_node(config),
        "policy": policy_node(policy, options, config),
        **{spec.name: records_step(spec.name, spec.node(deps)) for spec in TOOL_SPECS},
    }


def records_step(name: str, node: Callable[[ConvState], dict]) -> Callable[[ConvState], dict]:
    """The tool ``node`` whose update also appends ``name`` to the turn's ``steps`` (what
    the policy and the step limit read): tools say what they did, not which step they are."""

    def recorded(state: ConvState) -> dict:
        return with_step(name, state, node(state))

    recorded.__name__ = f"{name}_node"
    return recorded


def with_step(name: str, state: ConvState, update: dict) -> dict:
    """``update`` plus ``name`` appended to the turn's ``steps``."""
    return {**update, "steps": [*state.get("steps", []), name]}


def build_graph(
    resources: Resources,
    policy: Policy | None = None,
    config: AgentConfig | None = None,
    *,
    checkpointer: Any = None,
    refiner: Refiner | None = None,
) -> Any:
    """The compiled graph; pass a checkpointer to keep conversations across calls."""
    from langgraph.graph import END, START, StateGraph

    from convir.tools import ask_clarification

    graph = StateGraph(ConvState)
    for name, node in build_nodes(resources, policy, config, refiner=refiner).items():
        graph.add_node(name, node)
    graph.add_node("await_answer", ask_clarification.await_answer_node)

    graph.add_edge(START, "receive")
    graph.add_edge("receive", "policy")
    graph.add_conditional_edges("policy", route, {**{t: t for t in TOOLS}, "finish": END})
    for tool in TOOLS:
        if tool != "ask_clarification":
            graph.add_edge(tool, "policy")
    graph.add_conditional_edges(
        "ask_clarification", has_question, {True: "await_answer", False: "policy"}
    )
    graph.add_edge("await_answer", "policy")
    return graph.compile(checkpointer=checkpointer)
