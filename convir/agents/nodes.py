"""The graph's nodes besides the tools: ``receive`` (folds the new message in and fixes the
turn's strategy) and ``policy`` (asks the policy for the next step); the tools' nodes come
from ``convir.tools.specs`` and record themselves in the turn's ``steps``. Both engines run
these very functions (``graph`` wires them, ``batched`` calls them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from convir.agents.policy import Options, Policy, RulePolicy
from convir.state import (
    MAX_MESSAGE_CHARS,
    AgentConfig,
    ConvState,
    has_reference,
    turn_strategy,
)

if TYPE_CHECKING:
    from convir.gallery.answers import AnswerModel
    from convir.gallery.resources import Resources
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
    from convir.gallery.answers import AnswerModel
    from convir.models.refiner import LLMRefiner, TemplateRefiner
    from convir.tools.specs import TOOL_SPECS, ToolDeps

    config = config or AgentConfig()
    policy = policy or RulePolicy()
    answers = answers or AnswerModel(resources.embedder, config.answer_temperature)
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
