"""Several processes over one session store (``convir serve --workers N``, or servers behind
a load balancer): any process continues any session, and Idempotency-Keys and the busy
(409) rule hold across them (docs/server.md, "More than one process")."""

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import httpx
import pytest

pytest.importorskip("fastapi", reason="needs the server extra: pip install '.[server]'")


def post(url, path, message, key=None):
    headers = {"Idempotency-Key": key} if key else {}
    return httpx.post(f"{url}{path}", json={"message": message}, headers=headers, timeout=60)


def dialogue(url, session_id):
    return httpx.get(f"{url}/sessions/{session_id}", timeout=60).json()["dialogue"]


def dead_pid():
    """The pid of a process that has exited (a lease holder killed mid-turn)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def hammer(urls, session_id, sends):
    """``sends`` messages at once to one session, alternating between ``urls``: statuses."""
    statuses = []
    lock = threading.Lock()

    def send(url):
        status = post(url, f"/sessions/{session_id}/messages", "blue").status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=send, args=(urls[i % len(urls)],)) for i in range(sends)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def test_two_servers_over_one_sqlite_file_share_sessions_keys_and_the_busy_rule(
    serve_cli, tmp_path
):
    from convir.server.leases import _process_start

    path = tmp_path / "sessions.db"
    store = ("--checkpoint", f"sqlite:{path}")
    with serve_cli(*store) as (a, _), serve_cli(*store) as (b, _):
        # any process continues any session
        opened = post(a, "/sessions", "a red circle").json()
        sid = opened["session_id"]
        assert post(b, f"/sessions/{sid}/messages", "yes").json()["turn"] == 1
        assert post(a, f"/sessions/{sid}/messages", "no").json()["turn"] == 2
        lines = dialogue(b, sid)  # an answer is kept with its question: "...? yes"
        assert lines == dialogue(a, sid) and len(lines) == 3 and lines[0] == "a red circle"
        assert lines[1].endswith("yes") and lines[2].endswith("no")

        # a keyed creation retried on the other process finds its session: same body
        first = post(a, "/sessions", "a blue square", key="open-1")
        again = post(b, "/sessions", "a blue square", key="open-1")
        assert first.status_code == again.status_code == 201 and first.content == again.content
        kid = first.json()["session_id"]
        # a keyed answer retried on the other process is not folded in twice
        answer = post(b, f"/sessions/{kid}/messages", "yes", key="answer-1")
        retried = post(a, f"/sessions/{kid}/messages", "yes", key="answer-1")
        assert answer.status_code == retried.status_code == 200
        assert answer.content == retried.content
        assert len(dialogue(a, kid)) == 2

        # the busy rule lives in the store: a turn running in another live process (here:
        # this test's own lease row) makes both servers answer 409 and change nothing
        with sqlite3.connect(path) as db:
            db.execute(
                "INSERT INTO convir_leases VALUES (?, ?, ?, ?)",
                (sid, os.getpid(), _process_start(os.getpid()), time.time()),
            )
        for url in (a, b):
            busy = post(url, f"/sessions/{sid}/messages", "blue")
            assert busy.status_code == 409 and "still answering" in busy.json()["detail"]
        assert len(dialogue(a, sid)) == 3
        # its holder dies mid-turn: the lease is stale, the next message takes it over
        with sqlite3.connect(path) as db:
            db.execute("UPDATE convir_leases SET pid = ? WHERE session_id = ?", (dead_pid(), sid))
        assert post(b, f"/sessions/{sid}/messages", "blue").status_code == 200
        with sqlite3.connect(path) as db:  # freed when the turn ended
            assert db.execute("SELECT COUNT(*) FROM convir_leases").fetchone()[0] == 0

        # messages racing on one session through both processes: each runs or gets 409,
        # and the dialogue holds exactly the ones that ran
        before = len(dialogue(a, sid))
        statuses = hammer([a, b], sid, 8)
        assert set(statuses) <= {200, 409} and 200 in statuses
        assert len(dialogue(b, sid)) == before + statuses.count(200)


def test_workers_flag_answers_from_two_processes_and_stops_cleanly(serve_cli, tmp_path):
    with serve_cli("--workers", "2", "--checkpoint", f"sqlite:{tmp_path / 's.db'}") as (
        url,
        proc,
    ):
        seen = set()
        for _ in range(200):  # a new connection each time: the kernel spreads them
            seen.add(httpx.get(f"{url}/health", timeout=60).json()["worker"])
            if len(seen) == 2:
                break
        assert len(seen) == 2 and proc.pid not in seen
        sid = post(url, "/sessions", "a red circle").json()["session_id"]
        for answer in ("yes", "no", "blue"):  # new connections: any worker may answer
            assert post(url, f"/sessions/{sid}/messages", answer).status_code == 200
        assert len(dialogue(url, sid)) == 4
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        assert proc.stderr.read().splitlines() == [
            f"convir serving on {url}/ with 2 worker processes (API docs at /docs)",
            "building the testbed gallery (60 images)...",
        ]  # each loading message once, no traceback or multiprocessing warning


def test_workers_need_a_shared_store():
    from convir_cli import run_convir

    refused = run_convir("serve", "--workers", "2", "--checkpoint", "memory", timeout=60)
    assert refused.returncode == 2 and refused.stderr.strip() == (
        "error: --workers shares sessions through the store: use --checkpoint sqlite:PATH "
        "(one host) or postgres://... (any number of hosts)"
    )
