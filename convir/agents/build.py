"""An agent by names: strategy, policy (a name, or a policy object such as a plug-in's),
question picking, for either engine. Chat, the server, ``load_agent`` and the evaluations
build agents here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from convir.agents.policy import policy_named
from convir.state import AgentConfig

if TYPE_CHECKING:
    from convir.agents.batched import BatchedAgent
    from convir.agents.conversation import ConvirAgent
    from convir.agents.policy import Policy
    from convir.gallery.resources import Resources


def build_agent(
    resources: Resources,
    strategy: str = "auto",
    policy: str | Policy = "rules",
    questions: str = "info_gain",
    checkpoint: Any = None,
    **config: Any,
) -> ConvirAgent:
    """An agent by names (strategy, policy, questions): the entry point of chat, the server
    and evaluations that run the LangGraph agent itself. ``config``: AgentConfig fields."""
    from convir.agents.conversation import ConvirAgent

    cfg = AgentConfig(strategy=strategy, questions=questions, **config)
    return ConvirAgent(resources, _policy(resources, policy), cfg, checkpoint)


def build_batched_agent(
    resources: Resources,
    strategy: str = "auto",
    policy: str | Policy = "rules",
    questions: str = "info_gain",
    **config: Any,
) -> BatchedAgent:
    """:func:`build_agent`'s evaluation engine: the same nodes without the graph runtime,
    many conversations per call, in memory only (:class:`convir.agents.batched.BatchedAgent`)."""
    from convir.agents.batched import BatchedAgent

    cfg = AgentConfig(strategy=strategy, questions=questions, **config)
    return BatchedAgent(resources, _policy(resources, policy), cfg)


def _policy(resources: Resources, policy: str | Policy) -> Policy:
    return policy_named(resources, policy) if isinstance(policy, str) else policy
