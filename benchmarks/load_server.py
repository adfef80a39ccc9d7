"""Load on ``convir serve``: N concurrent sessions talking for T seconds; turn latency,
throughput and the server's CPU per turn, with the same turns run in process as the peer.

Each simulated user opens a session with a short description, then answers the agent's
questions with plausible testbed words, and starts over after ``--turns`` turns. Latency is
one HTTP turn (request sent -> JSON result read) seen by the client, so it includes queueing
behind the other sessions. Without ``--url`` the script starts the server itself (testbed
gallery, SQLite sessions in a temporary folder, or ``--checkpoint``), once per value of
``--workers`` (``--workers 1,2`` compares one process with two in the same run), warms it up
for ``--warmup`` seconds with the same load (a cold server's first turns embed the patch
features of every new candidate; each worker warms its own cache), then runs each value of
``--sessions``; ``--rounds R`` keeps every server up and alternates them R times (pooled
figures per setup), so a change in the machine's load falls on each. Server CPU per turn is the user+system time of the server's processes (its
workers included, read from /proc) over the turns it answered.

The peer (own server, unless ``--no-peer``): the same agent built in this process (same
gallery, strategy and store settings) runs the same users' turns one session at a time,
alternating with single-session HTTP turns against the first server, block by block, so
both see the same machine load; the ratio of their p50s is what the server adds to a turn.

    python benchmarks/load_server.py                             # 50 sessions x 60 s, own server
    python benchmarks/load_server.py --workers 1,2 --sessions 1,20 --duration 20 --rounds 3
    python benchmarks/load_server.py --url http://127.0.0.1:8000 --sessions 10 --duration 20 --json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

OPENINGS = [
    "a red circle",
    "a small blue square",
    "two shapes on a gray background",
    "a large green triangle on the left",
    "a yellow circle next to a purple square",
]
ANSWERS = [
    "red",
    "blue",
    "green",
    "yellow",
    "gray",
    "white",
    "large",
    "small",
    "left",
    "right",
    "yes",
    "no",
]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def messages(rng: random.Random, turns: int) -> list[str]:
    """One session's messages: an opening, then answers."""
    return [rng.choice(OPENINGS)] + [rng.choice(ANSWERS) for _ in range(turns - 1)]


def user(url: str, headers: dict, stop: float, turns: int, seed: int, out: dict) -> None:
    """One simulated user: sessions of ``turns`` turns until ``stop`` (a monotonic time)."""
    rng = random.Random(seed)
    with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
        while time.monotonic() < stop:
            session = None
            for message in messages(rng, turns):
                if time.monotonic() >= stop:
                    break
                ok, kind, elapsed, session = http_turn(client, session, message)
                with out["lock"]:
                    if ok:
                        out["latencies"].append(elapsed)
                    else:
                        out["errors"][kind] += 1
                if not ok:
                    break


def http_turn(
    client: httpx.Client, session: str | None, message: str
) -> tuple[bool, str, float, str | None]:
    """One turn over HTTP: (ok, status or error name, seconds, session id)."""
    if session is None:
        path = "/sessions"
    else:
        path = f"/sessions/{session}/messages"
    started = time.perf_counter()
    try:
        response = client.post(path, json={"message": message}, params={"top": 10})
        ok = response.status_code in (200, 201)
        kind = str(response.status_code)
        if ok and session is None:
            session = response.json()["session_id"]
    except httpx.HTTPError as exc:
        ok, kind = False, type(exc).__name__
    return ok, kind, time.perf_counter() - started, session


def tree_cpu_s(pid: int | None) -> float | None:
    """User+system CPU seconds of process ``pid`` and its descendants (Linux /proc); None
    without a pid or /proc. Children that exited are not counted."""
    if pid is None or not os.path.exists(f"/proc/{pid}/stat"):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in tree:
                tree.add(child)
                frontier.append(child)
    return sum(times.get(p, 0.0) for p in tree)


@contextmanager
def own_server(
    gallery: int, generate: bool, strategy: str, workers: int = 1, checkpoint: str | None = None
):
    """``convir serve`` on a free loopback port (SQLite sessions in a temporary folder unless
    ``checkpoint``); yields (URL, pid)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            sys.executable, "-m", "convir.cli", "serve", "--port", str(port),
            "--gallery-size", str(gallery), "--strategy", strategy,
            "--checkpoint", checkpoint or f"sqlite:{tmp}/sessions.db",
            "--generate" if generate else "--no-generate", "--workers", str(workers),
        ]  # fmt: skip
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 600
            seen: set[int] = set()
            while len(seen) < workers:  # every worker answered once: all are loaded
                if proc.poll() is not None:
                    raise SystemExit(f"convir serve exited with {proc.returncode}")
                try:
                    with httpx.Client(timeout=2) as fresh:  # a new connection each time
                        health = fresh.get(f"{url}/health")
                    if health.status_code == 200:
                        seen.add(health.json().get("worker", 0))
                        continue
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("convir serve did not come up in 10 minutes")
                time.sleep(0.3)
            yield url, proc.pid
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def run(
    url: str,
    sessions: int,
    duration: float,
    turns: int,
    headers: dict,
    server_pid: int | None = None,
) -> dict:
    """Drive the server; the figures as a dict (CPU per turn when ``server_pid`` is given)."""
    health = httpx.get(f"{url}/health", headers=headers, timeout=10).json()
    out: dict = {"latencies": [], "errors": Counter(), "lock": threading.Lock()}
    stop = time.monotonic() + duration
    threads = [
        threading.Thread(target=user, args=(url, headers, stop, turns, seed, out), daemon=True)
        for seed in range(sessions)
    ]
    cpu_before, client_before = tree_cpu_s(server_pid), time.process_time()
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    cpu_after, client_cpu = tree_cpu_s(server_pid), time.process_time() - client_before
    lat = out["latencies"]
    server_cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return {
        "sessions": sessions,
        "duration_s": duration,
        "wall_s": round(wall, 1),
        "gallery_size": health.get("gallery_size"),
        "strategy": health.get("strategy"),
        "turns": len(lat),
        "turns_per_s": round(len(lat) / wall, 2),
        "p50_ms": round(1000 * percentile(lat, 50), 1),
        "p90_ms": round(1000 * percentile(lat, 90), 1),
        "p99_ms": round(1000 * percentile(lat, 99), 1),
        "max_ms": round(1000 * max(lat), 1) if lat else float("nan"),
        "mean_ms": round(1000 * statistics.fmean(lat), 1) if lat else float("nan"),
        "server_cpu_ms_per_turn": (
            round(1000 * server_cpu / len(lat), 1) if server_cpu is not None and lat else None
        ),
        "client_cpu_ms_per_turn": round(1000 * client_cpu / len(lat), 1) if lat else None,
        "errors": sum(out["errors"].values()),
        "errors_by_kind": dict(out["errors"]),
        "cpus": os.cpu_count(),
        "_latencies": lat,
        "_server_cpu_s": server_cpu,
        "_client_cpu_s": client_cpu,
    }


def pooled(runs: list[dict]) -> dict:
    """Several runs of one setup as one: turns over total wall time, percentiles over every
    turn, CPU over every turn."""
    lat = [v for r in runs for v in r["_latencies"]]
    wall = sum(r["wall_s"] for r in runs)
    cpu = [r["_server_cpu_s"] for r in runs]
    errors: Counter = Counter()
    for r in runs:
        errors.update(r["errors_by_kind"])
    return {
        "sessions": runs[0]["sessions"],
        "duration_s": sum(r["duration_s"] for r in runs),
        "runs": len(runs),
        "wall_s": round(wall, 1),
        "gallery_size": runs[0]["gallery_size"],
        "strategy": runs[0]["strategy"],
        "turns": len(lat),
        "turns_per_s": round(len(lat) / wall, 2),
        "turns_per_s_each": [r["turns_per_s"] for r in runs],
        "p50_ms": round(1000 * percentile(lat, 50), 1),
        "p90_ms": round(1000 * percentile(lat, 90), 1),
        "p99_ms": round(1000 * percentile(lat, 99), 1),
        "max_ms": round(1000 * max(lat), 1) if lat else float("nan"),
        "mean_ms": round(1000 * statistics.fmean(lat), 1) if lat else float("nan"),
        "server_cpu_ms_per_turn": (
            round(1000 * sum(cpu) / len(lat), 1) if None not in cpu and lat else None
        ),
        "client_cpu_ms_per_turn": (
            round(1000 * sum(r["_client_cpu_s"] for r in runs) / len(lat), 1) if lat else None
        ),
        "errors": sum(errors.values()),
        "errors_by_kind": dict(errors),
        "cpus": runs[0]["cpus"],
    }


def peer_agent(gallery: int, generate: bool, strategy: str, store: str):
    """The server's agent, built in this process the way ``convir serve`` builds it, over a
    store opened with the server's settings."""
    from convir.cli_options import agent_from_options
    from convir.server.store import tune

    agent = agent_from_options(
        index_path=None,
        model=None,
        pretrained=None,
        gallery_size=gallery,
        seed=None,
        strategy=strategy,
        stitch="published",
        policy="rules",
        questions=None,
        checkpoint=store,
        generate=generate,
    )
    tune(agent.checkpointer)
    return agent


def paired(url: str, agent, headers: dict, blocks: int, turns: int, server_pid: int | None) -> dict:
    """One session at a time, alternating: a session over HTTP, then the same messages in
    process, ``blocks`` times; their latencies and CPU per turn side by side."""
    http_lat: list[float] = []
    peer_lat: list[float] = []
    http_cpu = peer_cpu = 0.0
    with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
        for block in range(blocks):
            script = messages(random.Random(10_000 + block), turns)
            session = None
            before = tree_cpu_s(server_pid)
            for message in script:
                ok, kind, elapsed, session = http_turn(client, session, message)
                if not ok:
                    raise SystemExit(f"an HTTP turn failed ({kind}) during the paired run")
                http_lat.append(elapsed)
            after = tree_cpu_s(server_pid)
            if before is not None and after is not None:
                http_cpu += after - before
            thread_id = f"peer-{block}"
            for k, message in enumerate(script):
                cpu, started = time.process_time(), time.perf_counter()
                if k == 0:
                    agent.start(thread_id, message)
                else:
                    agent.reply(thread_id, message)
                peer_lat.append(time.perf_counter() - started)
                peer_cpu += time.process_time() - cpu

    def summary(lat: list[float], cpu: float) -> dict:
        return {
            "turns": len(lat),
            "p50_ms": round(1000 * percentile(lat, 50), 1),
            "p90_ms": round(1000 * percentile(lat, 90), 1),
            "mean_ms": round(1000 * statistics.fmean(lat), 1),
            "cpu_ms_per_turn": round(1000 * cpu / len(lat), 1) if cpu else None,
        }

    http, peer = summary(http_lat, http_cpu), summary(peer_lat, peer_cpu)
    return {
        "http": http,
        "in_process": peer,
        "p50_ratio": round(http["p50_ms"] / peer["p50_ms"], 2),
        "mean_ratio": round(http["mean_ms"] / peer["mean_ms"], 2),
    }


def int_list(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("a comma-separated list of integers >= 1")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running server (default: start one)")
    parser.add_argument(
        "--sessions", type=int_list, default=[50], help="concurrent users, e.g. 1,20 [50]"
    )
    parser.add_argument("--duration", type=float, default=60, help="seconds of load [60]")
    parser.add_argument("--turns", type=int, default=6, help="turns per session [6]")
    parser.add_argument(
        "--workers", type=int_list, default=[1], help="own server's worker processes, e.g. 1,2"
    )
    parser.add_argument("--warmup", type=float, default=10, help="own server's warm-up s [10]")
    parser.add_argument(
        "--rounds", type=int, default=1, help="own servers: runs of each, alternated [1]"
    )
    parser.add_argument("--checkpoint", help="own server's store [SQLite in a temporary folder]")
    parser.add_argument(
        "--peer-blocks", type=int, default=40, help="paired sessions (HTTP and in process) [40]"
    )
    parser.add_argument("--no-peer", action="store_true", help="skip the in-process peer")
    parser.add_argument(
        "--gallery-size", type=int, default=1000, help="own server's testbed [1000]"
    )
    parser.add_argument("--strategy", default="auto", help="own server's strategy [auto]")
    parser.add_argument("--generate", action="store_true", help="own server generates (DAR)")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args()
    if args.duration <= 0 or args.turns < 1:
        parser.error("--turns must be >= 1, --duration > 0")
    key = os.environ.get("CONVIR_API_KEY")
    headers = {"X-API-Key": key} if key else {}
    report: dict = {"runs": [], "cpus": os.cpu_count()}
    if args.url:
        for sessions in args.sessions:
            figures = run(args.url.rstrip("/"), sessions, args.duration, args.turns, headers)
            report["runs"].append({**pooled([figures]), "server": args.url})
    else:
        report["setup"] = (
            f"own server: testbed {args.gallery_size}, strategy {args.strategy}, generator "
            f"{'on' if args.generate else 'off'}, store {args.checkpoint or 'SQLite (temp)'}, "
            f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
        )
        with tempfile.TemporaryDirectory() as tmp:
            agent = None
            if not args.no_peer:
                store = f"sqlite:{Path(tmp) / 'peer.db'}"
                agent = peer_agent(args.gallery_size, args.generate, args.strategy, store)
                for block in range(3):  # its warm-up (caches), as the server gets its own
                    for k, message in enumerate(messages(random.Random(block), args.turns)):
                        if k == 0:
                            agent.start(f"warm-{block}", message)
                        else:
                            agent.reply(f"warm-{block}", message)
            with ExitStack() as stack:
                servers = {  # all up at once (an idle one costs memory only)
                    workers: stack.enter_context(
                        own_server(
                            args.gallery_size,
                            args.generate,
                            args.strategy,
                            workers,
                            args.checkpoint,
                        )
                    )
                    for workers in args.workers
                }
                for url, _ in servers.values():  # each warms its own caches
                    run(url, max(args.sessions), args.warmup, args.turns, headers)
                if agent is not None:
                    url, pid = servers[args.workers[0]]
                    report["peer"] = {
                        "workers": args.workers[0],
                        **paired(url, agent, headers, args.peer_blocks, args.turns, pid),
                    }
                # rounds alternate the servers, so a change in the machine's load falls on all
                parts: dict[tuple[int, int], list[dict]] = {}
                for _ in range(args.rounds):
                    for workers, (url, pid) in servers.items():
                        for sessions in args.sessions:
                            figures = run(url, sessions, args.duration, args.turns, headers, pid)
                            parts.setdefault((workers, sessions), []).append(figures)
                for (workers, _), runs in parts.items():
                    report["runs"].append({**pooled(runs), "workers": workers})
        base = {r["sessions"]: r for r in report["runs"] if r["workers"] == args.workers[0]}
        for r in report["runs"]:
            first = base.get(r["sessions"])
            if first and first["turns_per_s"]:
                r["throughput_vs_first"] = round(r["turns_per_s"] / first["turns_per_s"], 2)
    if args.json:
        print(json.dumps(report))
        return
    print(report.get("setup", f"server {args.url}"))
    if "peer" in report:
        p = report["peer"]
        print(
            f"1 session, {p['http']['turns']} turns each, alternating: HTTP p50 "
            f"{p['http']['p50_ms']} ms (server CPU {p['http']['cpu_ms_per_turn']} ms/turn), "
            f"in process p50 {p['in_process']['p50_ms']} ms (CPU "
            f"{p['in_process']['cpu_ms_per_turn']} ms/turn): HTTP/in-process p50 "
            f"{p['p50_ratio']}x, mean {p['mean_ratio']}x"
        )
    for r in report["runs"]:
        print(
            f"workers {r.get('workers', '?')}, {r['sessions']} sessions x {r['duration_s']:g} s "
            f"({r['runs']} run(s), turns/s each {r['turns_per_s_each']}): "
            f"{r['turns']} turns ({r['turns_per_s']}/s"
            + (f", {r['throughput_vs_first']}x" if "throughput_vs_first" in r else "")
            + f"), p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, max {r['max_ms']} ms, "
            f"server CPU {r['server_cpu_ms_per_turn']} ms/turn, "
            f"errors {r['errors']} {r['errors_by_kind'] or ''}"
        )


if __name__ == "__main__":
    main()
