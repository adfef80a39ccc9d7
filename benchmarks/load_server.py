"""Load on ``convir serve``: N concurrent sessions talking for T seconds; turn latency.

Each simulated user opens a session with a short description, then answers the agent's
questions with plausible testbed words, and starts over after ``--turns`` turns. Latency is
one HTTP turn (request sent -> JSON result read) seen by the client, so it includes queueing
behind the other sessions. Without ``--url`` the script starts a server itself (testbed
gallery, SQLite sessions in a temporary folder) and stops it at the end.

    python benchmarks/load_server.py                             # 50 sessions x 60 s, own server
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
from contextlib import contextmanager

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


def user(url: str, headers: dict, stop: float, turns: int, seed: int, out: dict) -> None:
    """One simulated user: sessions of ``turns`` turns until ``stop`` (a monotonic time)."""
    rng = random.Random(seed)
    with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
        while time.monotonic() < stop:
            session = None
            for _ in range(turns):
                if time.monotonic() >= stop:
                    break
                if session is None:
                    path, body = "/sessions", {"message": rng.choice(OPENINGS)}
                else:
                    path, body = f"/sessions/{session}/messages", {"message": rng.choice(ANSWERS)}
                started = time.perf_counter()
                try:
                    response = client.post(path, json=body, params={"top": 10})
                    ok = response.status_code in (200, 201)
                    kind = str(response.status_code)
                    if ok and session is None:
                        session = response.json()["session_id"]
                except httpx.HTTPError as exc:
                    ok, kind = False, type(exc).__name__
                elapsed = time.perf_counter() - started
                with out["lock"]:
                    if ok:
                        out["latencies"].append(elapsed)
                    else:
                        out["errors"][kind] += 1
                if not ok:
                    break


@contextmanager
def own_server(gallery: int, generate: bool, strategy: str):
    """``convir serve`` on a free loopback port with SQLite sessions; yields its URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            sys.executable, "-m", "convir.cli", "serve", "--port", str(port),
            "--gallery-size", str(gallery), "--strategy", strategy,
            "--checkpoint", f"sqlite:{tmp}/sessions.db",
            "--generate" if generate else "--no-generate",
        ]  # fmt: skip
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 600
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"convir serve exited with {proc.returncode}")
                try:
                    if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("convir serve did not come up in 10 minutes")
                time.sleep(0.5)
            yield url
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


def run(url: str, sessions: int, duration: float, turns: int, headers: dict) -> dict:
    """Drive the server; the figures as a dict."""
    health = httpx.get(f"{url}/health", headers=headers, timeout=10).json()
    out: dict = {"latencies": [], "errors": Counter(), "lock": threading.Lock()}
    stop = time.monotonic() + duration
    workers = [
        threading.Thread(target=user, args=(url, headers, stop, turns, seed, out), daemon=True)
        for seed in range(sessions)
    ]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    wall = time.monotonic() - started
    lat = out["latencies"]
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
        "errors": sum(out["errors"].values()),
        "errors_by_kind": dict(out["errors"]),
        "cpus": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running server (default: start one)")
    parser.add_argument("--sessions", type=int, default=50, help="concurrent users [50]")
    parser.add_argument("--duration", type=float, default=60, help="seconds of load [60]")
    parser.add_argument("--turns", type=int, default=6, help="turns per session [6]")
    parser.add_argument(
        "--gallery-size", type=int, default=1000, help="own server's testbed [1000]"
    )
    parser.add_argument("--strategy", default="auto", help="own server's strategy [auto]")
    parser.add_argument("--generate", action="store_true", help="own server generates (DAR)")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args()
    if args.sessions < 1 or args.duration <= 0 or args.turns < 1:
        parser.error("--sessions and --turns must be >= 1, --duration > 0")
    key = os.environ.get("CONVIR_API_KEY")
    headers = {"X-API-Key": key} if key else {}
    if args.url:
        figures = run(args.url.rstrip("/"), args.sessions, args.duration, args.turns, headers)
        figures["server"] = args.url
    else:
        with own_server(args.gallery_size, args.generate, args.strategy) as url:
            figures = run(url, args.sessions, args.duration, args.turns, headers)
        figures["server"] = f"own (generator {'on' if args.generate else 'off'})"
    if args.json:
        print(json.dumps(figures))
        return
    print(
        f"{figures['sessions']} sessions x {figures['duration_s']:g} s on {figures['server']}, "
        f"gallery {figures['gallery_size']}, strategy {figures['strategy']}: "
        f"{figures['turns']} turns ({figures['turns_per_s']}/s), "
        f"p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms, max {figures['max_ms']} ms, "
        f"errors {figures['errors']} {figures['errors_by_kind'] or ''}"
    )


if __name__ == "__main__":
    main()
