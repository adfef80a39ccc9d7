"""The agent as a LangGraph state machine: receive -> policy -> tool -> policy -> ... -> end.

::

    START -> receive -> policy --refine_query-----> refine_query ------> policy
                              --generate_images--> generate_images ---> policy
                              --retrieve---------> retrieve ----------> policy
                              --ot_rerank--------> ot_rerank ---------> policy
                              --ask_clarification> ask_clarification -> await_answer -> policy
                                                   (await_answer pauses: interrupt; no question -> policy)
                              --finish-----------> END

The file is wiring only: the edges are ``convir.agents.routing``'s table, the nodes
``convir.agents.nodes`` (receive, policy) and ``convir.tools`` (the tools), the decisions
``convir.agents.policy``. A turn ends when ``await_answer`` pauses for the answer to the
question just chosen (resume with ``Command(resume=answer)``) or when the policy finishes; a
new message on the same thread starts the next turn at ``receive``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from convir.agents.nodes import build_nodes
from convir.agents.routing import ENTRY, FINISH, PAUSE, ROUTES
from convir.state import ConvState

if TYPE_CHECKING:
    from convir.agents.policy import Policy
    from convir.gallery.resources import Resources
    from convir.models.refiner import Refiner
    from convir.state import AgentConfig


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
    graph.add_node(PAUSE, ask_clarification.await_answer_node)

    graph.add_edge(START, ENTRY)
    for name, (router, targets) in ROUTES.items():  # convir.agents.routing, declared once
        if len(targets) == 1:
            graph.add_edge(name, targets[0])
        else:
            graph.add_conditional_edges(
                name, router, {t: END if t == FINISH else t for t in targets}
            )
    return graph.compile(checkpointer=checkpointer)
