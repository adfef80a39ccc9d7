"""Where a turn goes after each node, declared once: the LangGraph graph wires these edges
(``graph.build_graph``) and the batched engine follows them (``batched.BatchedAgent``).

::

    receive -> policy -> <the tool it picked> -> policy -> ... -> finish
                         ask_clarification -> await_answer (pauses for the answer) -> policy
                                           -> policy (no question this time)

Each node's entry is ``(router, where it may go)``: the router reads the conversation's
state and names the next node, or :data:`FINISH` when the turn is over.
"""

from __future__ import annotations

from collections.abc import Callable

from convir.state import ConvState
from convir.tools.specs import TOOL_NAMES

ENTRY = "receive"  # a new message starts here
DECIDE = "policy"  # picks the next tool, or finishes
PAUSE = "await_answer"  # waits for the answer to the question just asked (an interrupt)
FINISH = "finish"  # the turn is over
ASKS = "ask_clarification"  # the tool after which a question pauses the turn

Router = Callable[[ConvState], str]


def to_policy(state: ConvState) -> str:
    """Every step but the policy's own goes back to the policy."""
    return DECIDE


def chosen(state: ConvState) -> str:
    """The policy's choice: a tool, or finish."""
    return state.get("next_action", FINISH)


def pause_if_asked(state: ConvState) -> str:
    """A question was chosen: the turn pauses for its answer; none: back to the policy."""
    return PAUSE if state.get("question") else DECIDE


ROUTES: dict[str, tuple[Router, tuple[str, ...]]] = {
    ENTRY: (to_policy, (DECIDE,)),
    DECIDE: (chosen, (*TOOL_NAMES, FINISH)),
    **{
        tool: (pause_if_asked, (PAUSE, DECIDE)) if tool == ASKS else (to_policy, (DECIDE,))
        for tool in TOOL_NAMES
    },
    PAUSE: (to_policy, (DECIDE,)),
}


def next_node(node: str, state: ConvState) -> str:
    """Where the turn goes after ``node`` ran on ``state``."""
    return ROUTES[node][0](state)
