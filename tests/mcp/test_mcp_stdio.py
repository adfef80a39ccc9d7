"""``convir mcp`` over stdio, driven by the MCP SDK's own client: the server is the real
command in a subprocess, the way a chatbot host starts it. One conversation runs once per
module (search, answer, edit, why, an image, mistakes); the tests read what it recorded.
Then the HTTP server, in this process, reads the same conversation from the shared SQLite
checkpoint."""

import asyncio
import base64
import io
import json
import os
import sys

import pytest
from PIL import Image

pytest.importorskip("mcp.server.mcpserver")

TOOLS = {"search_images", "answer", "edit_image", "why"}


async def converse(index, db) -> dict:
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    params = StdioServerParameters(
        command=sys.executable,
        args=[
            "-m",
            "convir.cli",
            "mcp",
            "--index",
            str(index),
            "--checkpoint",
            f"sqlite:{db}",
            "--no-generate",
        ],  # fmt: skip
        env={"OMP_NUM_THREADS": "1", "PATH": os.environ.get("PATH", "")},
    )
    stray = []  # anything on stdout that is not a protocol message arrives here

    async def on_message(message):
        if isinstance(message, Exception):
            stray.append(message)

    seen: dict = {"stray": stray}
    async with Client(params, message_handler=on_message, read_timeout_seconds=120) as client:
        seen["tools"] = (await client.list_tools()).tools
        seen["templates"] = (await client.list_resource_templates()).resource_templates
        seen["search"] = await client.call_tool("search_images", {"description": "a red circle"})
        sid = seen["search"].structured_content["session_id"]
        seen["bad_session"] = await client.call_tool("answer", {"session_id": "nope", "text": "x"})
        question = seen["search"].structured_content
        reply = question["options"][0] if question["options"] else "yes"
        seen["answer"] = await client.call_tool(
            "answer", {"session_id": sid, "text": reply, "k": 3}
        )
        top = seen["answer"].structured_content["results"][0]["id"]
        seen["why"] = await client.call_tool("why", {"session_id": sid, "image_id": top})
        seen["edit"] = await client.call_tool(
            "edit_image",
            {"image_id": top, "instruction": "make it blue", "session_id": sid, "k": 4},
        )
        edit_sid = seen["edit"].structured_content["session_id"]
        seen["edit_again"] = await client.call_tool(
            "edit_image",
            {"image_id": top, "instruction": "on a white background", "session_id": edit_sid},
        )
        seen["bad_image"] = await client.call_tool(
            "edit_image", {"image_id": "../../etc/passwd", "instruction": "make it blue"}
        )
        seen["image"] = await client.read_resource(f"image://{top}")
        seen["top"], seen["reply"] = top, reply
        seen["after_errors"] = await client.call_tool("why", {"session_id": sid, "image_id": top})
    return seen


@pytest.fixture(scope="module")
def talk(gallery_index, tmp_path_factory):
    db = tmp_path_factory.mktemp("mcp-sessions") / "sessions.db"
    return asyncio.run(converse(gallery_index, db)), db


def test_the_host_sees_four_tools_that_say_when_to_use_them(talk):
    seen, _ = talk
    tools = {t.name: t for t in seen["tools"]}
    assert set(tools) == TOOLS
    assert "relay" in tools["search_images"].description.lower()  # questions go to the person
    assert tools["search_images"].input_schema["required"] == ["description"]
    assert set(tools["edit_image"].input_schema["required"]) == {"image_id", "instruction"}
    assert [t.uri_template for t in seen["templates"]] == ["image://{+image_id}"]
    assert seen["stray"] == []  # stdout carried nothing but protocol


def test_a_search_opens_a_session_with_results_thumbnails_and_a_question(talk, gallery_index):
    seen, _ = talk
    result = seen["search"]
    assert not result.is_error
    turn = result.structured_content
    assert turn["turn"] == 0 and len(turn["session_id"]) == 32
    assert len(turn["results"]) == 8  # k defaults to 8
    assert all(r["caption"] and r["image_uri"] == f"image://{r['id']}" for r in turn["results"])
    scores = [r["score"] for r in turn["results"]]
    assert scores == sorted(scores, reverse=True)
    assert turn["question"].endswith("?") and turn["question"] in turn["next"]
    # the first content block is the turn as JSON, then one thumbnail per result, in order
    assert json.loads(result.content[0].text) == turn
    thumbs = result.content[1:]
    assert [b.type for b in thumbs] == ["image"] * 8
    for block in thumbs:
        with Image.open(io.BytesIO(base64.b64decode(block.data))) as im:
            assert im.format == "PNG" and max(im.size) <= 128


def test_an_answer_continues_the_session(talk):
    seen, _ = talk
    turn = seen["answer"].structured_content
    assert turn["session_id"] == seen["search"].structured_content["session_id"]
    assert turn["turn"] == 1 and len(turn["results"]) == 3
    assert len(seen["answer"].content) == 1 + 3


def test_why_gives_terms_that_add_up_to_the_score(talk):
    seen, _ = talk
    why = seen["why"].structured_content
    assert why["image_id"] == seen["top"] and why["rank"] == 1
    assert why["score"] == pytest.approx(sum(t["value"] for t in why["terms"]), abs=1e-6)
    assert any(seen["reply"] in t["label"] for t in why["terms"])  # the answer's own term
    assert seen["after_errors"].structured_content == why  # errors left the server running


def test_an_edit_opens_a_composed_session_and_a_second_edit_continues_it(talk):
    seen, _ = talk
    edit = seen["edit"].structured_content
    assert edit["strategy"] == "stitch" and edit["reference_id"] == seen["top"]
    assert edit["from_session"] == seen["search"].structured_content["session_id"]
    assert edit["session_id"] != edit["from_session"] and edit["turn"] == 0
    assert edit["descriptions"] and len(edit["results"]) == 4
    again = seen["edit_again"].structured_content
    assert again["session_id"] == edit["session_id"] and again["turn"] == 1


def test_mistakes_are_tool_errors_that_say_what_to_do(talk):
    seen, _ = talk
    bad = seen["bad_session"]
    assert bad.is_error and "no session nope; start one with search_images" in bad.content[0].text
    bad = seen["bad_image"]
    assert bad.is_error and "no gallery image '../../etc/passwd'" in bad.content[0].text


def test_the_image_resource_is_the_full_gallery_image(talk, gallery_index):
    seen, _ = talk
    (content,) = seen["image"].contents
    assert content.mime_type == "image/png"
    with Image.open(io.BytesIO(base64.b64decode(content.blob))) as im:
        served = im.convert("RGB")
    with Image.open(gallery_index.parent / seen["top"]) as im:
        original = im.convert("RGB")
    assert served.size == original.size == (64, 64)
    assert served.tobytes() == original.tobytes()


def test_the_http_server_reads_a_conversation_started_over_mcp(talk, gallery_index):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from convir import load_agent
    from convir.server.app import create_app

    seen, db = talk
    agent = load_agent(gallery_index, checkpoint=f"sqlite:{db}")
    sid = seen["search"].structured_content["session_id"]
    with TestClient(create_app(agent, agent.resources)) as http:
        got = http.get(f"/sessions/{sid}", params={"top": 3})
    assert got.status_code == 200, got.text
    session = got.json()
    assert session["turn"] == 1
    assert session["dialogue"][0] == "a red circle"
    assert session["dialogue"][1].endswith(seen["reply"])
    assert [r["id"] for r in session["results"]] == [
        r["id"] for r in seen["answer"].structured_content["results"]
    ]
