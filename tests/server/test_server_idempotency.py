"""Retries are safe: an Idempotency-Key replays a turn instead of running a new one, a turn
cut short is finished from its checkpoint, and a streamed session exists before its id is sent."""

import threading

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402

from convir.agent import ConvirAgent  # noqa: E402
from convir.agents.policy import RulePolicy  # noqa: E402
from convir.server.app import create_app  # noqa: E402
from convir.state import AgentConfig  # noqa: E402


def test_a_retried_message_returns_the_first_turn_and_runs_no_new_one(client):
    opened = client.post(
        "/sessions", json={"message": "a red circle"}, headers={"Idempotency-Key": "open-1"}
    )
    again = client.post(
        "/sessions", json={"message": "a red circle"}, headers={"Idempotency-Key": "open-1"}
    )
    assert opened.status_code == again.status_code == 201
    sid = opened.json()["session_id"]
    assert again.json()["session_id"] == sid and again.json()["results"] == opened.json()["results"]
    first = client.post(
        f"/sessions/{sid}/messages", json={"message": "yes"}, headers={"Idempotency-Key": "m-1"}
    )
    retry = client.post(
        f"/sessions/{sid}/messages", json={"message": "yes"}, headers={"Idempotency-Key": "m-1"}
    )
    assert first.status_code == retry.status_code == 200
    assert retry.json()["turn"] == first.json()["turn"] == 1
    assert retry.json()["results"] == first.json()["results"]
    assert retry.json()["question"] == first.json()["question"]
    session = client.get(f"/sessions/{sid}").json()
    assert len(session["dialogue"]) == 2  # the answer was folded in once
    other = client.post(
        f"/sessions/{sid}/messages", json={"message": "no"}, headers={"Idempotency-Key": "m-2"}
    )
    assert other.json()["turn"] == 2
    bad = client.post(
        f"/sessions/{sid}/messages", json={"message": "no"}, headers={"Idempotency-Key": "a b"}
    )
    assert bad.status_code == 422


def test_a_turn_cut_short_is_finished_by_the_retry(server_resources):
    agent = ConvirAgent(server_resources, RulePolicy(), AgentConfig(strategy="text"))
    app = create_app(agent, server_resources)
    client = TestClient(app)
    sid = app.state.service.keyed_session_id("crash-1")
    events = agent.start_stream(sid, "a blue square", key="crash-1", durability="sync")
    for _ in range(3):  # receive, policy, refine_query: then the process "dies"
        next(events)
    events.close()
    assert agent.state(sid)["dialogue"] == ["a blue square"] and agent.unfinished(sid)
    retry = client.post(
        "/sessions", json={"message": "a blue square"}, headers={"Idempotency-Key": "crash-1"}
    )
    assert retry.status_code == 201 and retry.json()["session_id"] == sid
    assert len(retry.json()["results"]) == 12 and retry.json()["question"]
    assert not agent.unfinished(sid) and agent.state(sid)["dialogue"] == ["a blue square"]


class GatedPolicy(RulePolicy):
    """The rule policy, held at its second decision until the test opens the gate."""

    def __init__(self):
        super().__init__()
        self.gate, self.calls = threading.Event(), 0

    def decide(self, state, options):
        self.calls += 1
        if self.calls == 2:
            assert self.gate.wait(10)
        return super().decide(state, options)


def test_a_streamed_session_is_checkpointed_before_its_id_is_sent(server_resources):
    from convir.server.streaming import run_turn

    policy = GatedPolicy()
    agent = ConvirAgent(server_resources, policy, AgentConfig(strategy="text"))
    sid = "s-gated"
    events = agent.start_stream(sid, "a green star", durability="sync")
    relay = run_turn(
        events, lambda r: {"ranking": r.ranking}, lambda: None, 5, {"session_id": sid}, 2
    )
    # the worker is stuck in the second policy decision: two node events are out
    first = next(relay)
    assert first.startswith("event: session")
    assert agent.state(sid)["dialogue"] == ["a green star"]  # it exists before the turn ends
    policy.gate.set()
    rest = list(relay)
    assert rest[-1].startswith("event: result")
