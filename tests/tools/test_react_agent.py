"""A chatbot builder's own agent: LangGraph's prebuilt ReAct agent drives a search through
convir's tools (a scripted tool-calling chat model stands in for the LLM). The tools run
the graph's own nodes, so what the builder's agent gets is what convir's agent gets."""

import ast
import json

import pytest
from fake_embedder import fake_gallery
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult


def tool_output(message: ToolMessage) -> dict:
    try:
        return json.loads(message.content)
    except (TypeError, ValueError):
        return ast.literal_eval(message.content)


class ScriptedToolCaller(BaseChatModel):
    """Searches, asks what splits the results, reranks them, then answers with the top id:
    each step reads the previous tool's result from the conversation, as an LLM would."""

    @property
    def _llm_type(self) -> str:
        return "scripted-tool-caller"

    def bind_tools(self, tools, **kwargs):
        self.__dict__["bound"] = [t.name for t in tools]
        return self

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        results = [tool_output(m) for m in messages if isinstance(m, ToolMessage)]
        ask = messages[0].content
        if not results:
            call = ("retrieve", {"query": ask, "k": 20})
        elif len(results) == 1:
            found = results[0]["results"]
            call = (
                "ask_clarification",
                {
                    "dialogue": [ask],
                    "candidate_ids": [r["id"] for r in found],
                    "candidate_scores": [r["score"] for r in found],
                },
            )
        elif len(results) == 2:
            found = results[0]["results"]
            call = ("ot_rerank", {"query": ask, "candidate_ids": [r["id"] for r in found[:8]]})
        else:
            top = results[-1]["results"][0]["id"]
            return ChatResult(
                generations=[ChatGeneration(message=AIMessage(content=f"top: {top}"))]
            )
        name, args = call
        message = AIMessage(
            content="", tool_calls=[{"name": name, "args": args, "id": f"c{len(results)}"}]
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


CAPTIONS = [
    f"a {colour} {shape} at the {place} on a {bg} background"
    for colour in ("red", "blue", "green")
    for shape in ("circle", "square", "star")
    for place in ("top", "bottom", "center")
    for bg in ("white", "gray")
]


@pytest.mark.filterwarnings("ignore:create_react_agent has been moved")  # the issue asks for it
def test_a_prebuilt_react_agent_searches_asks_and_reranks_with_convir_tools():
    from langgraph.prebuilt import create_react_agent

    from convir.tools.langchain_tools import make_tools

    model = ScriptedToolCaller()
    agent = create_react_agent(model, make_tools(fake_gallery(CAPTIONS)))
    out = agent.invoke({"messages": [HumanMessage("a red circle on a gray background")]})
    messages = out["messages"]
    calls = [m.name for m in messages if isinstance(m, ToolMessage)]
    assert calls == ["retrieve", "ask_clarification", "ot_rerank"]
    assert model.__dict__["bound"][:3] == ["refine_query", "generate_images", "retrieve"]
    found, asked, reranked = (tool_output(m) for m in messages if isinstance(m, ToolMessage))
    assert len(found["results"]) == 20
    assert asked["question"].endswith("?") and asked["options"] and asked["information_gain"] > 0
    assert reranked["reranked"] == 8 and {r["id"] for r in reranked["results"]} == {
        r["id"] for r in found["results"][:8]
    }
    assert messages[-1].content == f"top: {reranked['results'][0]['id']}"
