"""The HTTP API in process: sessions, turns, streaming, transcripts, images, uploads, limits."""

import io
import json
import os
import threading

import numpy as np
import pytest
from PIL import Image

from convir.state import MAX_MESSAGE_CHARS

FASTAPI = pytest.importorskip("fastapi", reason="needs the server extra: pip install '.[server]'")


def sse_events(text):
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def png_bytes(image):
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_conversation_over_http_asks_questions_and_keeps_its_transcript(client):
    health = client.get("/health").json()
    assert health == {
        "status": "ok",
        "gallery_size": 200,
        "strategy": "text",
        "checkpoint": "memory",
        "checkpoint_ok": True,
        "turns_running": 0,
        "worker": os.getpid(),  # the process that answered (one of --workers N)
    }
    first = client.post("/sessions", json={"message": "a red circle"}, params={"top": 5})
    assert first.status_code == 201
    turn = first.json()
    assert turn["turn"] == 0 and turn["strategy"] == "text" and turn["question"]
    assert len(turn["results"]) == 5 and turn["transcript"][0] == "user: 'a red circle'"
    sid = turn["session_id"]
    second = client.post(f"/sessions/{sid}/messages", json={"message": "blue"}).json()
    assert second["turn"] == 1 and second["question"] != turn["question"]
    assert [r["id"] for r in second["results"]] != [r["id"] for r in turn["results"]]
    session = client.get(f"/sessions/{sid}").json()
    assert session["dialogue"] == ["a red circle", f"{turn['question']} blue"]
    assert session["question"] == second["question"]
    assert session["transcript"] == turn["transcript"] + second["transcript"]
    assert [r["id"] for r in session["results"]] == [r["id"] for r in second["results"]]


def test_a_streamed_turn_sends_each_node_then_the_result(client):
    opened = client.post("/sessions/stream", json={"message": "a small green square"})
    assert opened.status_code == 200
    assert opened.headers["content-type"].startswith("text/event-stream")
    events = sse_events(opened.text)
    assert events[0][0] == "session" and events[-1][0] == "result"
    nodes = [data["node"] for kind, data in events if kind == "node"]
    assert nodes[:2] == ["receive", "policy"] and "retrieve" in nodes
    sid = events[0][1]["session_id"]
    result = events[-1][1]
    assert result["session_id"] == sid and result["question"]
    again = sse_events(
        client.post(f"/sessions/{sid}/messages/stream", json={"message": "gray"}).text
    )
    assert again[-1][0] == "result" and again[-1][1]["turn"] == 1
    assert client.get("/health").json()["turns_running"] == 0


def test_images_are_served_by_id_only(client, server_resources):
    sid = client.post("/sessions", json={"message": "a blue triangle"}).json()
    url = sid["results"][0]["image_url"]
    image = client.get(url)
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    expected = server_resources.load_image(
        server_resources.index.position_of(sid["results"][0]["id"])
    )
    assert Image.open(io.BytesIO(image.content)).size == expected.size
    for attempt in (
        "/images/..%2F..%2F..%2Fetc%2Fpasswd",
        "/images/%2Fetc%2Fpasswd",
        "/images/../../pyproject.toml",
        "/images/....//....//etc/passwd",
        "/static/..%2Fapp.py",
        "/static/%2E%2E%2F%2E%2E%2Fcli.py",
        "/uploads/..%2F..%2Fetc%2Fpasswd",
    ):
        response = client.get(attempt)
        assert response.status_code == 404, attempt
        assert "root:" not in response.text and "[project]" not in response.text


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"message": "x" * (MAX_MESSAGE_CHARS + 1)}, 422, "at most 2000 characters"),
        ({"message": "   "}, 422, "message is empty"),
        ({"message": "a\x00b"}, 422, "control characters"),
        ({"message": "hi", "extra": 1}, 422, "extra"),
        ({}, 422, "message: Field required"),
        ({"message": "a red circle", "reference_id": "../etc"}, 400, "not in the gallery"),
    ],
)
def test_bad_messages_are_refused_with_a_readable_reason(client, body, status, words):
    response = client.post("/sessions", json=body)
    assert response.status_code == status
    assert words in response.json()["detail"]


def test_refused_replies_leave_the_session_as_it_was(client):
    sid = client.post("/sessions", json={"message": "a red circle"}).json()["session_id"]
    before = client.get(f"/sessions/{sid}").json()
    for body in ({"message": "y" * 5000}, {"message": ""}, {"text": "blue"}, []):
        assert client.post(f"/sessions/{sid}/messages", json=body).status_code == 422
    assert client.post(f"/sessions/{sid}/messages", content=b"{not json").status_code == 422
    assert client.get(f"/sessions/{sid}").json() == before
    missing = client.post("/sessions/0123abc/messages", json={"message": "blue"})
    assert missing.status_code == 404 and "POST /sessions" in missing.json()["detail"]


def test_a_composed_query_starts_from_a_picked_image(make_client, server_resources):
    client = make_client(strategy="auto")
    reference = server_resources.index.id_of(7)
    turn = client.post(
        "/sessions", json={"message": "make the circle blue", "reference_id": reference}
    ).json()
    assert turn["strategy"] == "stitch" and turn["reference_id"] == reference
    assert reference not in [r["id"] for r in turn["results"]]


def test_uploads_are_verified_capped_and_stored_under_a_server_id(client, server_resources):
    image = server_resources.load_image(3)
    ok = client.post("/uploads", files={"file": ("a.png", png_bytes(image), "image/png")})
    assert ok.status_code == 201
    body = ok.json()
    assert body["nearest"][0]["id"] == server_resources.index.id_of(3)
    stored = client.get(body["image_url"])
    assert stored.status_code == 200 and Image.open(io.BytesIO(stored.content)).size == image.size
    junk = client.post("/uploads", files={"file": ("a.png", b"GIF89a not really", "image/gif")})
    assert junk.status_code == 400 and "upload rejected" in junk.json()["detail"]
    empty = client.post("/uploads", files={"file": ("a.png", b"", "image/png")})
    assert empty.status_code == 400 and "empty" in empty.json()["detail"]
    huge = Image.new("1", (5000, 4000))  # 20 M pixels in a few KB: refused before decoding
    big = client.post("/uploads", files={"file": ("b.png", png_bytes(huge), "image/png")})
    assert big.status_code == 413 and "too large" in big.json()["detail"]
    fat = client.post("/uploads", files={"file": ("c.png", b"\x89PNG" + b"0" * 9_000_000)})
    assert fat.status_code == 413 and "limit" in fat.json()["detail"]
    chunked = client.post(
        "/uploads",
        content=iter([b"--x\r\n"] * 3),
        headers={"content-type": "multipart/form-data; boundary=x"},
    )
    assert chunked.status_code == 411 and "Content-Length" in chunked.json()["detail"]
    assert client.post("/uploads").status_code == 422


def test_an_api_key_guards_every_endpoint(make_client):
    client = make_client(api_key="s3cret")
    for method, path in [
        ("get", "/health"),
        ("get", "/"),
        ("get", "/openapi.json"),
        ("get", "/images/0000001"),
        ("get", "/static/app.js"),
        ("get", "/sessions/abc"),
        ("post", "/sessions"),
    ]:
        response = getattr(client, method)(path)
        assert response.status_code == 401, path
        assert "X-API-Key" in response.json()["detail"]
    assert client.get("/health", headers={"X-API-Key": "wrong"}).status_code == 401
    assert client.get("/health", headers={"X-API-Key": "s3cret"}).status_code == 200
    assert client.get("/health", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert client.get("/health", params={"api_key": "s3cret"}).status_code == 401  # page only
    bootstrap = client.get("/", params={"api_key": "s3cret"}, follow_redirects=False)
    assert bootstrap.status_code == 303 and bootstrap.headers["location"] == "/"
    assert "httponly" in bootstrap.headers["set-cookie"].lower()
    assert client.get("/images/0000001").status_code == 200  # the cookie now rides along


def test_concurrent_sessions_stay_separate(client):
    """Four sessions talk at once; each transcript holds exactly its own messages."""
    colours = ["red", "blue", "green", "yellow"]
    outcome = {}

    def talk(colour):
        sid = client.post("/sessions", json={"message": f"a {colour} circle"}).json()["session_id"]
        for answer in (f"{colour} one", f"{colour} two"):
            assert (
                client.post(f"/sessions/{sid}/messages", json={"message": answer}).status_code
                == 200
            )
        outcome[colour] = client.get(f"/sessions/{sid}").json()

    threads = [threading.Thread(target=talk, args=(c,)) for c in colours]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({s["session_id"] for s in outcome.values()}) == len(colours)
    for colour, session in outcome.items():
        dialogue = session["dialogue"]
        assert dialogue[0] == f"a {colour} circle" and session["turn"] == 2
        assert dialogue[1].endswith(f"{colour} one") and dialogue[2].endswith(f"{colour} two")
        others = [c for c in colours if c != colour]
        users = [line for line in session["transcript"] if line.startswith("user:")]
        assert not any(o in " ".join(users + dialogue) for o in others)


def test_a_second_message_while_a_turn_runs_is_refused(client):
    """The busy guard: same session twice at once -> one 409 that says to wait."""
    from convir.server.busy import BusySessions, SessionBusyError

    guard = BusySessions()
    guard.claim("s1")
    with pytest.raises(SessionBusyError, match="wait for it"):
        guard.claim("s1")
    guard.claim("s2")
    guard.release("s1")
    guard.claim("s1")
    assert len(guard) == 2


def test_the_openapi_schema_names_every_endpoint(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/health",
        "/sessions",
        "/sessions/stream",
        "/sessions/{session_id}",
        "/sessions/{session_id}/messages",
        "/sessions/{session_id}/messages/stream",
        "/images/{image_id}",
        "/uploads",
        "/uploads/{upload_id}",
    } <= set(paths)
    page = client.get("/")
    assert page.status_code == 200 and "app.js" in page.text


def test_serve_refuses_bad_options_in_one_line_and_binds_loopback_by_default():
    from convir_cli import run_convir

    bad = run_convir("serve", "--strategy", "fastest")
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "error: --strategy must be auto, dar, stitch or text, got 'fastest'"
    )
    checkpoint = run_convir("serve", "--checkpoint", "redis://x")
    assert checkpoint.returncode == 2 and "use memory, sqlite:PATH" in checkpoint.stderr
    help_text = run_convir("serve", "--help").stdout
    assert "127.0.0.1" in help_text and "sqlite:convir-sessions.db" in help_text


def test_an_uploaded_image_is_the_reference_of_a_composed_query(make_client, server_resources):
    from convir.testbed.edits import triplets
    from convir.testbed.world import World

    client = make_client(strategy="auto")
    triplet = triplets(World(seed=0, size=200))[0]
    reference = server_resources.load_image(server_resources.index.position_of(triplet.reference))
    upload = client.post("/uploads", files={"file": ("r.png", png_bytes(reference), "image/png")})
    upload_id = upload.json()["upload_id"]
    opened = client.post("/sessions", json={"message": triplet.text, "upload_id": upload_id})
    assert opened.status_code == 201, opened.text
    body = opened.json()
    assert body["strategy"] == "stitch" and body["reference_id"] is None
    assert any(line.startswith("ot_rerank") for line in body["transcript"])
    # no gallery caption for an upload: the target caption is the edit; the upload's
    # embedding moves the query onto images like it (itself included, as it is not excluded)
    assert body["query"] == triplet.text
    assert triplet.reference in [r["id"] for r in body["results"]]
    missing = client.post("/sessions", json={"message": "make it red", "upload_id": "nope"})
    assert missing.status_code == 404 and "POST /uploads" in missing.json()["detail"]
    both = client.post(
        "/sessions",
        json={"message": "x", "upload_id": upload_id, "reference_id": triplet.reference},
    )
    assert both.status_code == 400 and "not both" in both.json()["detail"]


def test_only_allow_listed_formats_are_kept_and_as_the_bytes_received(client, server_resources):
    image = server_resources.load_image(5)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=90)
    ok = client.post("/uploads", files={"file": ("a.jpg", buf.getvalue(), "image/jpeg")})
    assert ok.status_code == 201
    stored = client.get(ok.json()["image_url"])
    assert stored.content == buf.getvalue() and stored.headers["content-type"] == "image/jpeg"
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n" + b"%" * 100
    refused = client.post("/uploads", files={"file": ("a.eps", eps, "application/postscript")})
    assert refused.status_code == 415 and "EPS images are not accepted" in refused.json()["detail"]
    tiff = io.BytesIO()
    image.save(tiff, format="TIFF")
    refused = client.post("/uploads", files={"file": ("a.tif", tiff.getvalue(), "image/tiff")})
    assert refused.status_code == 415 and "TIFF" in refused.json()["detail"]


def test_the_upload_store_keeps_within_its_byte_budget(server_resources):
    from convir.server.uploads import UploadStore

    rng = np.random.default_rng(0)
    files = [
        png_bytes(Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)))
        for _ in range(6)
    ]
    budget = 3 * max(map(len, files))
    store = UploadStore(server_resources.embedder, capacity=100, max_bytes=budget)
    ids = []
    for data in files:
        ids.append(store.add(data).id)
        assert store.stored_bytes <= budget
    assert store.get(ids[-1]) is not None and store.get(ids[0]) is None
    assert 1 <= len(store) < 6


def test_json_bodies_are_capped_before_parsing_and_errors_do_not_echo_them(client):
    big = client.post("/sessions", json={"message": "a" * 100_000})
    assert big.status_code == 413 and "limit 65,536" in big.json()["detail"]
    extra = {"message": "a red circle", **{f"k{i:05d}": i for i in range(3000)}}
    reply = client.post("/sessions", json=extra)
    assert reply.status_code == 422 and len(reply.content) < 600
    assert "k00000" in reply.json()["detail"] and "more errors" in reply.json()["detail"]


def test_a_dar_turn_shows_what_it_imagined(server_resources):
    import functools
    from dataclasses import replace

    from fastapi.testclient import TestClient

    from convir.agent import build_agent
    from convir.models.generator import TestbedGenerator
    from convir.server.app import create_app

    resources = replace(
        server_resources,
        generator_factory=functools.partial(TestbedGenerator, embedder=server_resources.embedder),
        _generator=None,
    )
    client = TestClient(create_app(build_agent(resources, "dar", n_generated=2), resources))
    turn = client.post("/sessions", json={"message": "a red circle"}).json()
    assert turn["strategy"] == "dar" and len(turn["imagined"]) == 2
    first = client.get(turn["imagined"][0])
    assert first.status_code == 200 and first.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(first.content))
    assert image.size[0] > 0
    assert client.get(turn["imagined"][0]).content == first.content  # redrawn identically
    assert client.get(turn["imagined"][1]).content != first.content
    assert client.get(turn["imagined"][0].rsplit("/", 1)[0] + "/2").status_code == 404


def _terms_add_up(why):
    assert why["score"] == pytest.approx(sum(t["value"] for t in why["terms"]), abs=1e-3)


def test_each_result_says_why_it_ranks_and_the_terms_add_up(client):
    turn = client.post("/sessions", json={"message": "a red circle"}).json()
    sid, top = turn["session_id"], turn["results"][0]
    why = client.get(f"/sessions/{sid}/why/{top['id']}").json()
    assert why["rank"] == 1 and why["score"] == pytest.approx(top["score"], abs=1e-6)
    assert why["terms"][0]["label"].startswith("similarity") and 0 < why["similarity"] <= 1
    assert why["how"] == "text"
    _terms_add_up(why)

    answered = client.post(f"/sessions/{sid}/messages", json={"message": turn["options"][0]})
    after = answered.json()
    for result in after["results"][:5]:
        why = client.get(f"/sessions/{sid}/why/{result['id']}").json()
        _terms_add_up(why)
        assert why["score"] == pytest.approx(result["score"], abs=1e-6)
    # the answer moved candidates: some shown result carries an answer term of its own
    answer_terms = [
        t
        for r in after["results"]
        for t in client.get(f"/sessions/{sid}/why/{r['id']}").json()["terms"]
        if t["label"].startswith("answer: ")
    ]
    assert answer_terms and turn["question"] in answer_terms[0]["label"]
    assert client.get(f"/sessions/{sid}/why/not-an-image").status_code == 404
    assert client.get(f"/sessions/0123abc/why/{top['id']}").status_code == 404


def test_a_stitch_result_names_the_set_score_that_reranked_it(make_client, server_resources):
    client = make_client(strategy="auto")
    reference = server_resources.index.id_of(7)
    turn = client.post(
        "/sessions", json={"message": "make the circle blue", "reference_id": reference}
    ).json()
    sid = turn["session_id"]
    why = client.get(f"/sessions/{sid}/why/{turn['results'][0]['id']}").json()
    assert why["how"].startswith("stitch") and why["rank"] == 1
    _terms_add_up(why)
    assert why["terms"][-1]["label"].startswith("rerank: ct set score")
    ranked = {r["id"] for r in turn["results"]}
    far = next(
        server_resources.index.id_of(p)
        for p in range(199, 0, -1)
        if server_resources.index.id_of(p) not in ranked | {reference}
    )
    outside = client.get(f"/sessions/{sid}/why/{far}").json()
    assert outside["terms"][0]["label"].startswith("similarity")
    assert (outside["rank"] is None) == (outside["score"] is None)
