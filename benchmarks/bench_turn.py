"""Per-turn latency of the agent on the testbed, broken down by graph node.

Simulated dialogues (partial caption, then oracle answers) run one at a time, so each turn
is timed alone; every node's time is the wall time between its update and the previous one
in the graph's update stream (LangGraph's own overhead lands on the node that follows it).
``text`` runs without generation; ``dar`` adds the generation step, reported on its own row.
The peer is the target stated for the project: p50 <= 150 ms per turn without generation on
2 cores.

    python benchmarks/bench_turn.py                          # 10k gallery, 120 turns per strategy
    python benchmarks/bench_turn.py --gallery-size 300 --dialogues 4 --rounds 2 --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections import defaultdict

import numpy as np

TARGET_P50_MS = 150.0


def time_turns(agent: object, user: object, ids: list[str], rounds: int) -> dict[str, list[float]]:
    """Seconds per node per turn (key "turn": the whole turn)."""
    times: dict[str, list[float]] = defaultdict(list)

    def consume(events: object) -> object:
        start = last = time.perf_counter()
        per_node: dict[str, float] = defaultdict(float)
        result = None
        for event in events:  # type: ignore[attr-defined]
            now = time.perf_counter()
            if isinstance(event, tuple):
                per_node[event[0]] += now - last
            else:
                result = event
            last = now
        for node, seconds in per_node.items():
            times[node].append(seconds)
        times["turn"].append(time.perf_counter() - start)
        return result

    for did in ids:
        message, reference = user.opening(did)  # type: ignore[attr-defined]
        result = consume(agent.start_stream(did, message, reference))  # type: ignore[attr-defined]
        for _ in range(rounds):
            if result.question is None:  # type: ignore[attr-defined]
                break
            answer = user.answer(did, result.question)  # type: ignore[attr-defined]
            result = consume(agent.reply_stream(did, answer))  # type: ignore[attr-defined]
    return times


def summarize(times: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    return {
        node: {
            "calls": len(v),
            "p50_ms": float(np.percentile(v, 50) * 1000),
            "p99_ms": float(np.percentile(v, 99) * 1000),
            "mean_ms": float(np.mean(v) * 1000),
        }
        for node, v in sorted(times.items())
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gallery-size", type=int, default=10_000)
    parser.add_argument("--dialogues", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--strategies", default="text,dar")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    import torch

    from convir.agent import build_agent
    from convir.evaluation.users import TestbedUser
    from convir.testbed.resources import testbed_resources
    from convir.testbed.world import World

    strategies = [s for s in args.strategies.split(",") if s]
    t0 = time.perf_counter()
    resources = testbed_resources(
        args.gallery_size, args.seed, generator="dar" in strategies, progress=not args.json
    )
    setup_s = time.perf_counter() - t0
    rng = np.random.default_rng(args.seed)
    picks = rng.choice(args.gallery_size, size=args.dialogues, replace=False)
    report: dict = {
        "config": {
            "gallery_size": args.gallery_size,
            "dialogues": args.dialogues,
            "rounds": args.rounds,
            "torch_threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
            "machine": platform.processor() or platform.machine(),
            "setup_s": round(setup_s, 1),
        },
        "target_p50_ms_without_generation": TARGET_P50_MS,
        "strategies": {},
    }
    for strategy in strategies:
        targets = {f"{strategy}-{n}": int(t) for n, t in enumerate(picks)}
        user = TestbedUser(World(seed=args.seed, size=args.gallery_size), targets, seed=args.seed)
        agent = build_agent(resources, strategy, "rules", seed=args.seed)
        # one warm-up dialogue: first-call costs (lazy generator load, fact cache) are not turns
        warm = {"warm-up": int(picks[0])}
        time_turns(
            agent,
            TestbedUser(World(seed=args.seed, size=args.gallery_size), warm, seed=args.seed),
            list(warm),
            1,
        )
        times = time_turns(agent, user, list(targets), args.rounds)
        report["strategies"][strategy] = summarize(times)
    if args.json:
        print(json.dumps(report))
        return report
    cfg = report["config"]
    print(
        f"Per-turn latency, testbed gallery {cfg['gallery_size']}, {cfg['torch_threads']} torch "
        f"threads, {cfg['cpus']} CPUs (setup {cfg['setup_s']} s)"
    )
    for strategy, rows in report["strategies"].items():
        print(f"\n{strategy}: {'node':<18} {'calls':>6} {'p50 ms':>8} {'p99 ms':>8}")
        for node, r in rows.items():
            print(
                f"{'':<{len(strategy) + 2}}{node:<18} {r['calls']:>6} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f}"
            )
    if "text" in report["strategies"]:
        p50 = report["strategies"]["text"]["turn"]["p50_ms"]
        print(f"\ntext turn p50 {p50:.1f} ms = {p50 / TARGET_P50_MS:.2f} x the 150 ms target")
    return report


if __name__ == "__main__":
    main()
