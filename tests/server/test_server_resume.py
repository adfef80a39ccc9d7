"""Sessions survive ``kill -9``: a real ``convir serve`` on SQLite, killed, restarted."""

import signal

import httpx
import pytest

FASTAPI = pytest.importorskip("fastapi", reason="needs the server extra: pip install '.[server]'")


def talk(url, path, message):
    response = httpx.post(f"{url}{path}", json={"message": message}, timeout=60)
    assert response.status_code in (200, 201), response.text
    return response.json()


def test_kill_9_mid_conversation_then_restart_loses_no_turn(serve_cli, tmp_path):
    spec = f"sqlite:{tmp_path / 'sessions.db'}"
    with serve_cli("--checkpoint", spec) as (url, proc):
        a = talk(url, "/sessions", "a red circle")["session_id"]
        b = talk(url, "/sessions", "a small blue square")["session_id"]
        talk(url, f"/sessions/{a}/messages", "gray")
        talk(url, f"/sessions/{b}/messages", "yellow")
        talk(url, f"/sessions/{a}/messages", "large")
        before = {s: httpx.get(f"{url}/sessions/{s}").json() for s in (a, b)}
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
    assert before[a]["turn"] == 2 and before[b]["turn"] == 1
    assert before[a]["question"] and before[b]["question"]

    with serve_cli("--checkpoint", spec) as (url, _):
        for sid, was in before.items():
            now = httpx.get(f"{url}/sessions/{sid}").json()
            assert now == was  # every turn, the transcript and the pending question
        answered = talk(url, f"/sessions/{b}/messages", "red")
        assert answered["turn"] == 2
        session = httpx.get(f"{url}/sessions/{b}").json()
        assert session["dialogue"][:2] == before[b]["dialogue"]
        assert session["dialogue"][2] == f"{before[b]['question']} red"
        assert talk(url, f"/sessions/{a}/messages", "green")["turn"] == 3
        assert httpx.get(f"{url}/sessions/nonexistent").status_code == 404
