"""A keyed retry finishes its turn wherever the process died, and a replay is the original
answer, byte for byte.

The process is "killed" at every durable point of a turn in turn: a checkpointer that stops
accepting writes after its n-th (a checkpoint or a step's writes), as ``kill -9`` right after
that write would leave the store. A fresh agent on the same SQLite file then gets the
client's retry. Every retry must end the turn (results and maybe a question) with the same
body an uninterrupted run returns.
"""

import sqlite3
import threading

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402
from langgraph.checkpoint.sqlite import SqliteSaver  # noqa: E402

from convir.agent import ConvirAgent  # noqa: E402
from convir.agents.policy import RulePolicy  # noqa: E402
from convir.server.app import create_app  # noqa: E402
from convir.state import AgentConfig  # noqa: E402

OPENING, ANSWER = "a red circle", "yes"


class Died(BaseException):
    """The process ended here (not an Exception: nothing may catch and carry on)."""


class DyingSaver(SqliteSaver):
    """A SQLite checkpointer that dies right after its ``writes``-th write."""

    def __init__(self, path, writes: int | None = None):
        super().__init__(sqlite3.connect(str(path), check_same_thread=False))
        self.left, self.done = writes, 0
        self.order = threading.Lock()  # writes may come from LangGraph's background threads

    def _write(self, write, *args, **kwargs):
        with self.order:
            if self.left is not None and self.done >= self.left:
                raise Died
            saved = write(*args, **kwargs)
            self.done += 1
            if self.left is not None and self.done >= self.left:
                raise Died
            return saved

    def put(self, *args, **kwargs):
        return self._write(super().put, *args, **kwargs)

    def put_writes(self, *args, **kwargs):
        self._write(super().put_writes, *args, **kwargs)


def agent_on(resources, saver):
    return ConvirAgent(resources, RulePolicy(), AgentConfig(strategy="text"), saver)


def served(resources, path):
    """A freshly started server process on the store at ``path``."""
    app = create_app(agent_on(resources, DyingSaver(path)), resources)
    return app, TestClient(app)


def open_session(resources, path, key="open") -> tuple[str, bytes]:
    app, client = served(resources, path)
    reply = client.post("/sessions", json={"message": OPENING}, headers={"Idempotency-Key": key})
    assert reply.status_code == 201
    return reply.json()["session_id"], reply.content


def run_until_death(resources, path, sid, phase, writes, durability):
    """Run the turn as the server does, on an agent whose store dies after ``writes``."""
    saver = DyingSaver(path, writes)
    agent = agent_on(resources, saver)
    if phase == "open":
        events = agent.start_stream(sid, OPENING, key="turn", durability=durability)
    else:
        events = agent.reply_stream(sid, ANSWER, key="turn")
        if durability == "sync":
            agent.durability = "sync"
            events = agent.reply_stream(sid, ANSWER, key="turn")
    try:
        for _ in events:
            pass
    except Died:
        return saver.done, True
    return saver.done, False


def retry(client, phase, sid):
    headers = {"Idempotency-Key": "turn"}
    if phase == "open":
        return client.post("/sessions", json={"message": OPENING}, headers=headers)
    return client.post(f"/sessions/{sid}/messages", json={"message": ANSWER}, headers=headers)


@pytest.fixture(scope="module")
def clean(server_resources, tmp_path_factory):
    """Bodies of uninterrupted turns, and how many writes each made."""
    root = tmp_path_factory.mktemp("clean")
    out = {}
    for phase, durability in (("open", "sync"), ("reply", "exit"), ("reply", "sync")):
        path = root / f"{phase}-{durability}.db"
        app, _ = served(server_resources, path)
        sid = app.state.service.keyed_session_id("turn")
        if phase == "reply":
            sid, _ = open_session(server_resources, path)
        writes, died = run_until_death(server_resources, path, sid, phase, None, durability)
        assert not died
        _, client = served(server_resources, path)
        body = retry(client, phase, sid)  # a replay of the finished turn
        out[phase, durability] = writes, body.content.replace(sid.encode(), b"SID")
    return out


CASES = [("open", "sync", n) for n in range(1, 18)] + [
    ("reply", durability, n)
    for durability, top in (("exit", 2), ("sync", 11))
    for n in range(1, top)
]


@pytest.mark.parametrize("phase,durability,writes", CASES)
def test_a_keyed_retry_finishes_the_turn_wherever_the_process_died(
    server_resources, tmp_path, clean, phase, durability, writes
):
    total, expected = clean[phase, durability]
    assert writes < total, f"{phase}/{durability} makes only {total} writes"
    path = tmp_path / "sessions.db"
    app, _ = served(server_resources, path)
    sid = app.state.service.keyed_session_id("turn")
    if phase == "reply":
        sid, _ = open_session(server_resources, path)
    done, died = run_until_death(server_resources, path, sid, phase, writes, durability)
    assert died and done == writes

    _, client = served(server_resources, path)  # the restarted server
    first, second = retry(client, phase, sid), retry(client, phase, sid)
    assert first.status_code in (200, 201), first.text
    assert first.json()["session_id"] == sid and first.json()["results"]
    # as if the process had never died (the session id is the one thing a store changes)
    assert first.content.replace(sid.encode(), b"SID") == expected
    assert second.content == first.content  # and a second retry replays it
    dialogue = client.get(f"/sessions/{sid}").json()["dialogue"]
    assert len(dialogue) == (1 if phase == "open" else 2)


def test_a_plain_message_after_a_death_finishes_the_dead_turn_first(server_resources, tmp_path):
    path = tmp_path / "sessions.db"
    sid, _ = open_session(server_resources, path)
    _, died = run_until_death(server_resources, path, sid, "reply", 6, "sync")
    assert died
    _, client = served(server_resources, path)
    turn = client.post(f"/sessions/{sid}/messages", json={"message": "no"})
    assert turn.status_code == 200 and turn.json()["turn"] == 2
    dialogue = client.get(f"/sessions/{sid}").json()["dialogue"]
    assert len(dialogue) == 3 and dialogue[1].endswith(f" {ANSWER}")  # the dead turn kept


def test_a_replayed_turn_is_the_original_answer_byte_for_byte(client):
    headers = {"Idempotency-Key": "same-1"}
    opened = client.post("/sessions", json={"message": "a blue square"}, headers=headers)
    again = client.post("/sessions", json={"message": "a blue square"}, headers=headers)
    assert opened.json()["transcript"] and again.content == opened.content
    sid = opened.json()["session_id"]
    headers = {"Idempotency-Key": "same-2"}
    answered = client.post(f"/sessions/{sid}/messages", json={"message": "no"}, headers=headers)
    replayed = client.post(f"/sessions/{sid}/messages", json={"message": "no"}, headers=headers)
    assert answered.json()["transcript"][0].startswith("user answered")
    assert replayed.content == answered.content
