"""The agent's front door, for code written against it before the engine was split up:
:class:`ConvirAgent` (``agents.conversation``), the builders (``agents.build``), the
checkpointers (``agents.checkpointers``), the turn-result helpers (``agents.results``), the
opening checks (``gallery.opening``) and the policy lookup (``agents.policy``). New code may
import from either place; ``import convir`` gives :func:`convir.load_agent`."""

from __future__ import annotations

from convir.agents.build import build_agent, build_batched_agent
from convir.agents.checkpointers import (
    HEALTH_WAIT_S,
    POOL_SIZE,
    POOL_TIMEOUT_S,
    checkpoint_alive,
    checkpointer,
    is_database_down,
)
from convir.agents.conversation import ConvirAgent
from convir.agents.policy import policy_named
from convir.agents.results import last_result, turn_result
from convir.gallery.opening import check_opening, check_reference

__all__ = [
    "HEALTH_WAIT_S",
    "POOL_SIZE",
    "POOL_TIMEOUT_S",
    "ConvirAgent",
    "build_agent",
    "build_batched_agent",
    "check_opening",
    "check_reference",
    "checkpoint_alive",
    "checkpointer",
    "is_database_down",
    "last_result",
    "policy_named",
    "turn_result",
]
