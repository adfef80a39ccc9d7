"""Two workers over one Postgres database (two apps, each with its own pool and lease
connection, as two ``convir serve`` processes have): any worker continues any session, an
Idempotency-Key retried on the other worker finds its turn, and the busy rule is an advisory
lock that a worker's death frees. Reuses the throwaway server of test_postgres_restart."""

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("psycopg_pool")
pytest.importorskip("langgraph.checkpoint.postgres")

import test_postgres_restart as pg  # noqa: E402  (its fixture: a throwaway server)

postgres = pg.postgres


def test_two_workers_over_postgres_share_sessions_keys_and_the_busy_rule(
    postgres, server_resources
):
    import psycopg
    from fastapi.testclient import TestClient

    from convir.agent import build_agent, checkpointer
    from convir.server.app import create_app
    from convir.server.leases import _lock_key

    url, _, _ = postgres
    a, b = (
        TestClient(
            create_app(
                build_agent(server_resources, "text", checkpoint=checkpointer(url)),
                server_resources,
            )
        )
        for _ in range(2)
    )
    opened = a.post("/sessions", json={"message": "a red circle"}).json()
    sid = opened["session_id"]
    assert b.post(f"/sessions/{sid}/messages", json={"message": "yes"}).json()["turn"] == 1
    assert len(a.get(f"/sessions/{sid}").json()["dialogue"]) == 2

    keyed = {"Idempotency-Key": "open-pg"}
    first = a.post("/sessions", json={"message": "a blue square"}, headers=keyed)
    again = b.post("/sessions", json={"message": "a blue square"}, headers=keyed)
    assert first.status_code == again.status_code == 201 and first.content == again.content

    # another worker's running turn = its advisory lock on the session: 409 on both
    holder = psycopg.connect(url, autocommit=True)
    assert holder.execute("SELECT pg_try_advisory_lock(%s)", (_lock_key(sid),)).fetchone()[0]
    for client in (a, b):
        busy = client.post(f"/sessions/{sid}/messages", json={"message": "blue"})
        assert busy.status_code == 409
    # that worker dies: its connection ends and the lock goes with it
    holder.close()
    assert a.post(f"/sessions/{sid}/messages", json={"message": "blue"}).status_code == 200
    assert len(b.get(f"/sessions/{sid}").json()["dialogue"]) == 3
    a.close()
    b.close()
