"""Fuzzing the API in process: over 1,000 generated requests across every endpoint.

Each request is checked for: no status >= 500; every rejection a 4xx whose JSON ``detail``
is a readable sentence; and a rejected request changes nothing (the watched session's full
checkpointed state and the set of conversations stay as they were).
"""

import json
import string
from collections import Counter
from urllib.parse import quote

import pytest

FASTAPI = pytest.importorskip("fastapi", reason="needs the server extra: pip install '.[server]'")
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

EXAMPLES = 1100
NASTY_BODIES = [
    b"",
    b"{",
    b"null",
    b"[]",
    b'"message"',
    b'{"message": "\\ud800"}',
    b'{"message": "\\u0000"}',
    b'{"message": "a", "message": 3}',
    b'{"message": 1e999}',
    b"\xff\xfe\x00",
    b'{"message": "' + b"a" * 3000 + b'"}',
    b'{"message": {"$gt": ""}}',
    b'{"message": "a", "reference_id": "../../etc/passwd"}',
    b'{"message": "a", "reference_id": 7}',
]
PATHY = st.one_of(
    st.sampled_from(
        ["..", "../..", "..%2F..%2Fetc%2Fpasswd", "%00", "%2e%2e", "/etc/passwd", "a/../../b"]
    ),
    st.text(string.ascii_letters + string.digits + "-_./%~", max_size=40),
    st.text(max_size=20).map(lambda t: quote(t, safe="")),  # any text, as a client sends it
)
JSONISH = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(),
    ),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
MESSAGE = st.one_of(
    st.text(max_size=30),
    st.text(min_size=2001, max_size=2100),
    st.text(alphabet=st.characters(max_codepoint=31), min_size=1, max_size=5),
    JSONISH,
)


@st.composite
def bodies(draw):
    """A JSON body: mostly message-shaped, sometimes anything at all."""
    if draw(st.integers(0, 4)) == 0:
        return draw(JSONISH)
    body = {"message": draw(MESSAGE)}
    if draw(st.booleans()):
        body["reference_id"] = draw(st.one_of(PATHY, JSONISH))
    if draw(st.integers(0, 3)) == 0:
        body[draw(st.text(max_size=8))] = draw(JSONISH)
    return body


@st.composite
def requests(draw, sid):
    """(method, path, keyword arguments for the TestClient) for one endpoint."""
    session = draw(st.one_of(st.just(sid), PATHY))
    top = draw(st.one_of(st.none(), st.integers(-5, 200), st.text(max_size=5)))
    params = {} if top is None else {"top": top}
    payload = draw(
        st.one_of(
            bodies().map(lambda b: {"json": b}),
            st.sampled_from(NASTY_BODIES).map(
                lambda raw: {"content": raw, "headers": {"content-type": "application/json"}}
            ),
        )
    )
    kind = draw(st.integers(0, 8))
    if kind == 0:
        return "POST", "/sessions", {**payload, "params": params}
    if kind == 1:
        return "POST", "/sessions/stream", {**payload, "params": params}
    if kind == 2:
        return "POST", f"/sessions/{session}/messages", {**payload, "params": params}
    if kind == 3:
        return "POST", f"/sessions/{session}/messages/stream", payload
    if kind == 4:
        return "GET", f"/sessions/{session}", {"params": params}
    if kind == 5:
        return "GET", f"/images/{draw(PATHY)}", {}
    if kind == 6:
        upload = draw(st.one_of(st.binary(max_size=200), st.sampled_from([b"\x89PNG\r\n\x1a\n"])))
        field = draw(st.sampled_from(["file", "image", "x"]))
        ctype = draw(st.sampled_from(["image/png", "text/plain", "", "application/octet-stream"]))
        return "POST", "/uploads", {"files": {field: ("f.png", upload, ctype)}}
    if kind == 7:
        return "GET", f"/uploads/{draw(PATHY)}", {}
    method = draw(st.sampled_from(["PUT", "DELETE", "PATCH", "GET", "POST"]))
    path = draw(st.sampled_from(["/health", "/sessions", "/uploads", "/static/x", f"/{session}"]))
    return method, path, payload if method in ("POST", "PUT", "PATCH") else {}


def conversations(agent):
    """Thread ids with checkpoints; reading an unknown thread must not add one."""
    return set(agent.checkpointer.storage)


@pytest.fixture(scope="module")
def fuzz_target(server_resources):
    from fastapi.testclient import TestClient

    from convir.agent import build_agent
    from convir.server.app import create_app

    agent = build_agent(server_resources, "text", pool=50, top_k=20, ot_top_n=10)
    with TestClient(create_app(agent, server_resources)) as client:
        sid = client.post("/sessions", json={"message": "a red circle"}).json()["session_id"]
        yield client, agent, sid


def test_fuzzed_requests_get_4xx_with_reasons_and_change_nothing(fuzz_target):
    client, agent, sid = fuzz_target
    counts = Counter()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.data())
    def one(data):
        method, path, kwargs = data.draw(requests(sid))
        before = agent.state(sid)
        threads = conversations(agent)
        response = client.request(method, path, **kwargs)
        counts[response.status_code // 100] += 1
        counts["total"] += 1
        assert response.status_code < 500, (method, path, kwargs, response.text)
        if response.status_code >= 400:
            detail = response.json()["detail"]
            assert isinstance(detail, str) and len(detail) > 8, detail
            assert agent.state(sid) == before, (method, path, kwargs)
            assert conversations(agent) == threads, (method, path, kwargs)
        elif "event-stream" in response.headers.get("content-type", ""):
            last = response.text.strip().split("\n\n")[-1]
            assert last.startswith("event: result"), last
            json.loads(last.split("data: ", 1)[1])

    one()
    print(f"fuzz: {counts['total']} requests, {dict(counts)}")
    assert counts["total"] >= 1000 and counts[5] == 0
    assert counts[4] > counts["total"] // 2  # most generated requests are bad ones
    assert counts[2] > 20  # and some good ones got through (the fuzzer reaches the agent)
