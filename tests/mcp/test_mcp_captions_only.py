"""``convir mcp`` on a captions-only gallery (texts, no images): results carry their texts
and no thumbnails, and what needs an image is a tool error that says so."""

import asyncio

import pytest
from captions_items import write_items

pytest.importorskip("mcp.server.mcpserver")


async def converse(server) -> dict:
    from mcp import Client

    async with Client(server) as client:
        found = await client.call_tool("search_images", {"description": "a kitten on the couch"})
        first = found.structured_content["results"][0]["id"]
        edit = await client.call_tool("edit_image", {"image_id": first, "instruction": "a dog"})
        try:
            await client.read_resource(f"image://{first}")
            image = None
        except Exception as exc:  # the SDK raises the server's resource error
            image = str(exc)
    return {"found": found, "edit": edit, "image": image}


def test_captions_only_results_are_texts_and_images_are_refused(tmp_path):
    from convir import load_agent
    from convir.index.captions_only import build_captions_index, read_caption_file
    from convir.mcp.server import build_server

    items = read_caption_file(write_items(tmp_path / "items.jsonl"))
    index = build_captions_index(items, "all-MiniLM-L6-v2", tmp_path / "g.index")
    seen = asyncio.run(converse(build_server(load_agent(index))))
    found = seen["found"]
    assert not found.is_error and len(found.content) == 1  # the JSON, no thumbnails
    first = found.structured_content["results"][0]
    assert first["id"] == "cat-sofa" and "image_uri" not in first
    assert first["caption"] == "a cat sleeping on a sofa. a grey kitten curled up on a couch."
    assert seen["edit"].is_error and "captions only" in seen["edit"].content[0].text
    assert seen["image"] is not None and "captions only" in seen["image"]
