"""The routing table is the one both engines follow: the compiled graph's edges are its
edges, and the names of the tools are the specs' names everywhere."""

from typing import get_args

from convir.agents.routing import DECIDE, ENTRY, FINISH, PAUSE, ROUTES, next_node
from convir.state import Action, ToolName
from convir.tools.specs import TOOL_NAMES, TOOL_SPECS


def test_tool_names_are_the_specs_names():
    assert TOOL_NAMES == tuple(spec.name for spec in TOOL_SPECS)
    assert set(get_args(ToolName)) == set(TOOL_NAMES)
    assert set(get_args(Action)) == {*TOOL_NAMES, FINISH}


def test_the_table_routes_a_turn():
    assert next_node(ENTRY, {}) == DECIDE
    assert next_node(DECIDE, {"next_action": "retrieve"}) == "retrieve"
    assert next_node(DECIDE, {}) == FINISH
    assert next_node("retrieve", {"question": "is it red?"}) == DECIDE  # only asking pauses
    assert next_node("ask_clarification", {"question": "is it red?"}) == PAUSE
    assert next_node("ask_clarification", {"question": None}) == DECIDE
    assert next_node(PAUSE, {}) == DECIDE
    for node, (_router, targets) in ROUTES.items():  # what a router may say is declared
        assert targets, node


def test_the_graph_has_exactly_the_tables_edges(testbed):
    from convir.agents.graph import build_graph

    drawn = build_graph(testbed).get_graph()
    edges = {(e.source, e.target) for e in drawn.edges}
    expected = {("__start__", ENTRY)} | {
        (node, "__end__" if t == FINISH else t)
        for node, (_, targets) in ROUTES.items()
        for t in targets
    }
    assert edges == expected
