"""The server on a captions-only gallery: results carry their texts, images are a clear 404."""

import pytest
from captions_items import write_items

FASTAPI = pytest.importorskip("fastapi", reason="needs the server extra: pip install '.[server]'")


@pytest.fixture(scope="module")
def text_client(tmp_path_factory):
    from fastapi.testclient import TestClient

    from convir.agent import build_agent
    from convir.gallery.resources import Resources
    from convir.index.captions_only import build_captions_index, read_caption_file
    from convir.server.app import create_app

    folder = tmp_path_factory.mktemp("captions-server")
    items = read_caption_file(write_items(folder / "items.jsonl"))
    resources = Resources.open(build_captions_index(items, "all-MiniLM-L6-v2", folder / "g.index"))
    agent = build_agent(resources, "auto", read_captions=True)
    with TestClient(create_app(agent, resources)) as client:
        yield client


def test_results_carry_captions_and_no_image_urls(text_client):
    turn = text_client.post(
        "/sessions", json={"message": "a kitten napping on the couch"}, params={"top": 3}
    )
    assert turn.status_code in (200, 201), turn.text
    body = turn.json()
    first = body["results"][0]
    assert first["id"] == "cat-sofa" and first["image_url"] is None
    assert first["caption"] == "a cat sleeping on a sofa. a grey kitten curled up on a couch."
    assert all(r["caption"] for r in body["results"]) and body["question"]
    reply = text_client.post(f"/sessions/{body['session_id']}/messages", json={"message": "yes"})
    assert reply.status_code == 200, reply.text
    assert reply.json()["results"][0]["caption"]


def test_images_and_uploads_are_refused_readably(text_client):
    image = text_client.get("/images/cat-sofa")
    assert image.status_code == 404
    assert "has no image" in image.json()["detail"] and "captions only" in image.json()["detail"]
    assert text_client.get("/images/nope").status_code == 404
    upload = text_client.post("/uploads", files={"file": ("a.png", b"\x89PNG", "image/png")})
    assert upload.status_code == 400 and "captions only" in upload.json()["detail"]
    edit = text_client.post(
        "/sessions", json={"message": "make it blue", "reference_id": "cat-sofa"}
    )
    assert edit.status_code == 400 and "captions only" in edit.json()["detail"]


def test_the_page_shows_texts_where_there_is_no_image(text_client):
    script = text_client.get("/static/app.js")
    assert script.status_code == 200
    assert "r.image_url" in script.text and "r.caption" in script.text
