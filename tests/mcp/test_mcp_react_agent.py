"""A chatbot builder's LangGraph agent uses convir through MCP: LangGraph's prebuilt ReAct
agent gets the MCP server's tools (listed and called by the MCP SDK's own client), and a
scripted chat model stands in for the LLM: it searches, relays the agent's question to the
person, passes their reply on with answer, and names the top result.

The tools are turned into LangChain tools by the few lines of ``mcp_tools`` below, not by
``langchain-mcp-adapters``: its newest release (0.3.2) pins ``mcp<2`` and the one before
imports ``mcp.server.fastmcp``, which the SDK 2 removed, so it cannot share an environment
with ``convir[mcp]`` (a host that uses it still talks to ``convir mcp`` in its own process).
"""

import asyncio
import json

import pytest
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult

pytest.importorskip("mcp.server.mcpserver")


def mcp_tools(client, listed) -> list:
    """LangChain tools that call the MCP server's tools through ``client``; a tool error
    reaches the model as the tool's message, as an MCP host shows it."""
    from langchain_core.tools import StructuredTool, ToolException

    def one(tool):
        async def call(**arguments):
            result = await client.call_tool(tool.name, arguments)
            text = result.content[0].text
            if result.is_error:
                raise ToolException(text)
            return text, result.structured_content

        return StructuredTool(
            name=tool.name,
            description=tool.description,
            args_schema=tool.input_schema,
            coroutine=call,
            response_format="content_and_artifact",
            handle_tool_error=True,
        )

    return [one(t) for t in listed]


class ScriptedHost(BaseChatModel):
    """Reads the conversation as an LLM would: search with the person's words; relay a
    question; send the person's reply with answer; then report the top result."""

    @property
    def _llm_type(self) -> str:
        return "scripted-mcp-host"

    def bind_tools(self, tools, **kwargs):
        self.__dict__["bound"] = sorted(t.name for t in tools)
        return self

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        last = messages[-1]
        turns = [json.loads(m.content) for m in messages if isinstance(m, ToolMessage)]
        if isinstance(last, HumanMessage) and not turns:
            return call("search_images", {"description": last.content, "k": 5})
        if isinstance(last, HumanMessage):  # the person answered the relayed question
            return call("answer", {"session_id": turns[-1]["session_id"], "text": last.content})
        turn = turns[-1]
        if turn["turn"] == 0 and turn["question"]:
            return say(f"{turn['question']} ({' / '.join(turn['options'])})")
        return say(f"top: {turn['results'][0]['id']}")


def call(name: str, args: dict) -> ChatResult:
    message = AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": name}])
    return ChatResult(generations=[ChatGeneration(message=message)])


def say(text: str) -> ChatResult:
    return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])


async def chat(server) -> tuple[list, list, list]:
    from langgraph.prebuilt import create_react_agent
    from mcp import Client

    async with Client(server) as client:
        tools = mcp_tools(client, (await client.list_tools()).tools)
        model = ScriptedHost()
        agent = create_react_agent(model, tools)
        first = await agent.ainvoke({"messages": [HumanMessage("a red circle")]})
        opened = json.loads(first["messages"][2].content)
        reply = (opened["options"] or ["yes"])[0]  # the person picks an option
        second = await agent.ainvoke({"messages": [*first["messages"], HumanMessage(reply)]})
    return model.bound, first["messages"], second["messages"]


@pytest.mark.filterwarnings("ignore:create_react_agent has been moved")
def test_a_prebuilt_react_agent_searches_relays_the_question_and_answers(loaded_agent):
    from convir.mcp.server import build_server

    bound, first, second = asyncio.run(chat(build_server(loaded_agent)))
    assert bound == ["answer", "edit_image", "search_images", "why"]
    opened = json.loads(first[2].content)
    assert first[1].tool_calls[0]["name"] == "search_images"
    assert len(opened["results"]) == 5 and opened["question"]
    assert first[-1].content.startswith(opened["question"])  # relayed, not answered
    answered = json.loads(second[-2].content)
    assert second[-3].tool_calls[0]["name"] == "answer"
    assert answered["session_id"] == opened["session_id"] and answered["turn"] == 1
    state = loaded_agent.state(opened["session_id"])
    assert state["dialogue"][1].endswith(second[-4].content)  # the person's words went in
    assert second[-1].content == f"top: {answered['results'][0]['id']}"
