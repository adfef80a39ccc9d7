"""Evaluation throughput: simulated dialogues per second, each way of running them vs the
unbatched loop.

The same dialogues (testbed, partial-caption openings, oracle answers, 10 rounds) run through
each system in several ways, and each way's dialogues/s is divided by the peer's, the
unbatched loop (one dialogue after another, one turn per call), measured in the same run:

* ``unbatched loop``: ``run_dialogues(..., workers=1, batched=False)``, the peer;
* ``batched rounds``: round by round, every dialogue's turn of the round in one call (one
  text-encoder forward and one FAISS search per 256 dialogues): the ChatIR baseline
  ``concat``, and the agent as its evaluation engine (``BatchedAgent``: the same nodes
  without the LangGraph runtime, what ``convir eval run`` runs by default);
* ``threads``: ``--workers`` dialogues in flight on a thread pool;
* ``ray``: ``--ray-actors`` Ray actors (processes) with a share of the dialogues each, timed
  from the first actor's creation (each builds its own gallery) to the last record; only with
  ``--ray`` and Ray installed.

Every way must give the run file of the unbatched loop: bitwise for threads and Ray, and for
batched rounds up to the float rounding of a batched forward pass (the report counts the
rankings that differ and compares the Hits@10 curves). The project's targets: 1,000 dialogues
x 10 rounds on 2 cores in at most 10 minutes; the batched agent in at most 60 s, at least 3x
its unbatched loop, and within 2.5x of the batched concat baseline measured in the same run
(``agent_vs_concat``).

    python benchmarks/bench_eval.py                         # 1,000 x 10: concat, agent text
    python benchmarks/bench_eval.py --systems text --dialogues 200 --ray
    python benchmarks/bench_eval.py --dialogues 8 --rounds 2 --gallery-size 300 --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

TARGET_S_PER_1000x10 = 600.0


def make_system(name: str, resources: Any, engine: str = "graph") -> Any:
    """``concat`` (the ChatIR baseline) or an agent strategy (text, dar) with rule policy:
    the LangGraph agent (``graph``) or its evaluation engine (``batched``)."""
    from convir.agent import build_agent, build_batched_agent
    from convir.evaluation.text_baseline import TextBaseline

    if name == "concat":
        return TextBaseline(resources, seed=0, questions="random")
    build = build_batched_agent if engine == "batched" else build_agent
    return build(resources, name, "rules", seed=0)


def build_worker(name: str, gallery_size: int, targets: dict[str, int]) -> tuple[dict, Callable]:
    """What one Ray actor builds for itself (module level, so Ray can ship it)."""
    from convir.evaluation.users import TestbedUser
    from convir.testbed.resources import testbed_resources
    from convir.testbed.world import World

    resources = testbed_resources(gallery_size, 0, generator=name == "dar", progress=False)
    world = World(seed=0, size=gallery_size)
    return {name: make_system(name, resources)}, lambda: TestbedUser(world, targets, seed=0)


def timed(fn: Callable[[], list]) -> tuple[list, float]:
    start = time.perf_counter()
    records = fn()
    return records, time.perf_counter() - start


def compare(records: list, peer: list) -> dict[str, Any]:
    """How far a run is from the peer's: rankings that differ, and the Hits@10 curves."""
    from convir.evaluation.loop import summarize

    differ = sum(a.as_line() != b.as_line() for a, b in zip(records, peer, strict=True))
    return {
        "identical_run_files": differ == 0 and len(records) == len(peer),
        "records_that_differ": differ,
        "same_hits_at_10": summarize(records).hits_at_k == summarize(peer).hits_at_k,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--systems", default="concat,text", help="concat, text, dar [concat,text]")
    parser.add_argument("--dialogues", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--gallery-size", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=8, help="threads for the threads row")
    parser.add_argument("--ray", action="store_true", help="add a row on a local Ray cluster")
    parser.add_argument("--ray-actors", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    import torch

    from convir.evaluation.loop import run_dialogues
    from convir.evaluation.users import TestbedUser
    from convir.testbed.resources import testbed_resources
    from convir.testbed.world import World

    systems = [s for s in args.systems.split(",") if s]
    need_generator = "dar" in systems
    resources = testbed_resources(
        args.gallery_size, 0, generator=need_generator, progress=not args.json
    )
    picks = np.random.default_rng(0).choice(args.gallery_size, args.dialogues, replace=False)
    targets = {f"d{n}": int(t) for n, t in enumerate(picks)}
    ids = list(targets)
    scale = 1000 / args.dialogues * 10 / max(args.rounds, 1)
    report: dict[str, Any] = {
        "config": {
            "dialogues": args.dialogues,
            "rounds": args.rounds,
            "gallery_size": args.gallery_size,
            "workers": args.workers,
            "torch_threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
            "machine": platform.processor() or platform.machine(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        },
        "target_s_for_1000x10": TARGET_S_PER_1000x10,
        "systems": {},
    }
    for name in systems:

        def loop(workers: int, batched: bool, name: str = name, n: int = args.dialogues) -> list:
            """A fresh system (agents refuse to restart a conversation) on the first n ids."""
            user = TestbedUser(World(seed=0, size=args.gallery_size), targets, seed=0)
            system = make_system(name, resources, "batched" if batched else "graph")
            return run_dialogues(
                system, user, ids[:n], args.rounds, workers, False, batched=batched
            )

        loop(1, False, n=2)  # warm-up: first-call costs (fact caches, lazy generator load)
        ways: dict[str, Callable[[], list]] = {"unbatched loop": lambda: loop(1, False)}
        ways["batched rounds"] = lambda: loop(1, True)
        ways["threads"] = lambda: loop(args.workers, False)
        if args.ray:
            ways["ray"] = partial(run_on_ray, name, args, targets)
        rows: dict[str, dict[str, Any]] = {}
        peer: list = []
        for way, fn in ways.items():
            records, seconds = timed(fn)
            if way == "unbatched loop":
                peer, peer_s = records, seconds
            rows[way] = {
                "seconds": round(seconds, 2),
                "dialogues_per_s": round(args.dialogues / seconds, 3),
                "vs_unbatched": round(peer_s / seconds, 2),
                "projected_s_for_1000x10": round(seconds * scale, 1),
                **compare(records, peer),
            }
        report["systems"][name] = rows
    concat = report["systems"].get("concat", {}).get("batched rounds")
    report["agent_vs_concat"] = {
        name: round(rows["batched rounds"]["seconds"] / concat["seconds"], 2)
        for name, rows in report["systems"].items()
        if concat and name != "concat"
    }
    if args.json:
        print(json.dumps(report))
        return report
    c = report["config"]
    print(
        f"Evaluation throughput: {c['dialogues']} dialogues x {c['rounds']} rounds, testbed "
        f"gallery {c['gallery_size']}, {c['cpus']} CPUs, {c['torch_threads']} torch threads, "
        f"load average {c['load_average'][0]}"
    )
    print(
        f"{'system':<8} {'way':<15} {'seconds':>8} {'dial/s':>8} {'vs loop':>8} "
        f"{'1000x10 s':>10}  same run file"
    )
    for name, rows in report["systems"].items():
        for way, r in rows.items():
            same = (
                "identical"
                if r["identical_run_files"]
                else f"{r['records_that_differ']} rounds differ, Hits@10 "
                + ("equal" if r["same_hits_at_10"] else "DIFFERENT")
            )
            print(
                f"{name:<8} {way:<15} {r['seconds']:>8.1f} {r['dialogues_per_s']:>8.2f} "
                f"{r['vs_unbatched']:>7.2f}x {r['projected_s_for_1000x10']:>10.0f}  {same}"
            )
    for name, ratio in report["agent_vs_concat"].items():
        print(f"{name}: batched rounds take {ratio:.2f}x the batched concat baseline's time")
    print(f"target: 1,000 x 10 in {TARGET_S_PER_1000x10:.0f} s")
    return report


def run_on_ray(name: str, args: argparse.Namespace, targets: dict[str, int]) -> list:
    """All dialogues on ``--ray-actors`` actors of a local Ray cluster, in dialogue order."""
    from convir.evaluation.ray_eval import run_systems_ray
    from convir.ray_cluster import ray_cluster

    build = partial(build_worker, name, args.gallery_size, targets)
    with ray_cluster(None):
        runs = run_systems_ray(
            build, [name], list(targets), args.rounds, actors=args.ray_actors, workers=1
        )
        return [records for _, records, _ in runs][0]  # all of it: the actors end in here


if __name__ == "__main__":
    main()
