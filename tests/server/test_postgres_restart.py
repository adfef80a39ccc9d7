"""A real PostgreSQL server, restarted under a running app: 503 with a JSON detail while it is
down, /health says so, and afterwards every session is readable and writable, nothing lost.

Needs Debian's ``postgresql`` package (``initdb``/``pg_ctl``; `.ci/run` installs it) and the
``[postgres]`` extra; skips only where either is missing.
"""

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("psycopg_pool")
pytest.importorskip("langgraph.checkpoint.postgres")


def _binary(name):
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


@pytest.fixture
def postgres():
    """(url, stop, start) of a throwaway server on a free port, run as 'postgres' if root."""
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("no PostgreSQL server binaries (Debian's postgresql package)")
    as_user = []
    root = tempfile.mkdtemp(prefix="convir-pg-")
    os.chmod(root, 0o755)
    if os.geteuid() == 0:  # initdb refuses to run as root
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
    data = os.path.join(root, "data")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def run(*args):
        return subprocess.run([*as_user, *args], check=True, capture_output=True, timeout=60)

    run(initdb, "-D", data, "-A", "trust", "-U", "convir")
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"

    def start():
        run(pg_ctl, "-D", data, "-o", options, "-l", os.path.join(root, "log"), "-w", "start")

    def stop():
        run(pg_ctl, "-D", data, "-m", "fast", "-w", "stop")

    start()
    try:
        yield f"postgresql://convir@127.0.0.1:{port}/postgres", stop, start
    finally:
        subprocess.run(
            [*as_user, pg_ctl, "-D", data, "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(root, ignore_errors=True)


def test_sessions_survive_a_database_restart(postgres, server_resources):
    from fastapi.testclient import TestClient

    from convir.agent import build_agent, checkpointer
    from convir.server.app import create_app

    url, stop, start = postgres
    agent = build_agent(server_resources, "text", checkpoint=checkpointer(url))
    client = TestClient(create_app(agent, server_resources))
    opened = client.post("/sessions", json={"message": "a red circle"}).json()
    sid = opened["session_id"]
    assert client.get("/health").json()["checkpoint"] == "postgres"

    stop()
    took = time.monotonic()
    down = client.get(f"/sessions/{sid}")
    assert down.status_code == 503 and "unavailable" in down.json()["detail"]
    took, now = time.monotonic() - took, time.monotonic()
    reply = client.post(f"/sessions/{sid}/messages", json={"message": "yes"})
    assert reply.status_code == 503 and reply.headers["retry-after"] == "5"
    took_reply, now = time.monotonic() - now, time.monotonic()
    health = client.get("/health").json()
    took_health = time.monotonic() - now
    assert health["status"] == "degraded" and health["checkpoint_ok"] is False
    # one wait budget per request (docs/server.md: a 503 within 5 s; /health within 1 s); a
    # message reads the store three times, and each read waited 5 s before the budget
    assert took < 6.5 and took_reply < 6.5, (took, took_reply)
    assert took_health < 1.5, took_health

    start()
    # the pool retries with a backoff of at most 10 s: a client honouring Retry-After polls
    deadline = time.monotonic() + 40
    while not client.get("/health").json()["checkpoint_ok"]:
        assert time.monotonic() < deadline, "the pool did not reconnect within 40 s"
        time.sleep(1)
    session = client.get(f"/sessions/{sid}")
    assert session.status_code == 200 and session.json()["dialogue"] == ["a red circle"]
    turn = client.post(f"/sessions/{sid}/messages", json={"message": "yes"})
    assert turn.status_code == 200 and turn.json()["turn"] == 1
    assert client.get("/health").json()["checkpoint_ok"] is True
    assert len(client.get(f"/sessions/{sid}").json()["dialogue"]) == 2
