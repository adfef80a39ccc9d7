"""Evaluation throughput: simulated dialogues per second, threaded vs one at a time.

The same dialogues (testbed, partial-caption openings, oracle answers) run through the same
system twice: with ``--workers`` threads (dialogues in flight at once, so model calls from
different dialogues overlap) and with one worker (the unbatched loop, the peer). Run files
must be identical; the ratio of the two rates is printed. The project's target: 1,000
dialogues x 10 rounds on 2 cores in at most 10 minutes.

    python benchmarks/bench_eval.py                                   # 1,000 x 10, agent "text"
    python benchmarks/bench_eval.py --dialogues 8 --rounds 2 --gallery-size 300 --json
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

TARGET_S_PER_1000x10 = 600.0


def run(
    system_name: str, resources: object, ids: list[str], user: object, rounds: int, workers: int
) -> tuple[list, float]:
    from convir.agent import build_agent
    from convir.evaluation.loop import run_dialogues
    from convir.evaluation.text_baseline import TextBaseline

    if system_name == "concat":
        system = TextBaseline(resources, seed=0, questions="random")
    else:
        system = build_agent(resources, system_name, "rules", seed=0)
    start = time.perf_counter()
    records = run_dialogues(system, user, ids, rounds, workers, progress=False)
    return records, time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--system", default="text", help="concat, text or dar [text]")
    parser.add_argument("--dialogues", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--gallery-size", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    import torch

    from convir.agents.resources import Resources
    from convir.evaluation.users import TestbedUser

    resources = Resources.for_testbed(
        args.gallery_size, 0, generator=args.system == "dar", progress=not args.json
    )
    picks = np.random.default_rng(0).choice(args.gallery_size, args.dialogues, replace=False)
    targets = {f"d{n}": int(t) for n, t in enumerate(picks)}
    user = TestbedUser(resources.world, targets, seed=0)
    ids = list(targets)
    run(args.system, resources, ids[:2], user, 1, 1)  # warm-up: model and fact caches
    threaded, t_threads = run(args.system, resources, ids, user, args.rounds, args.workers)
    single, t_single = run(args.system, resources, ids, user, args.rounds, 1)
    same = [r.as_line() for r in threaded] == [r.as_line() for r in single]
    scale = 1000 / args.dialogues * 10 / max(args.rounds, 1)
    report = {
        "config": {
            "system": args.system,
            "dialogues": args.dialogues,
            "rounds": args.rounds,
            "gallery_size": args.gallery_size,
            "workers": args.workers,
            "torch_threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
        },
        "threaded_s": round(t_threads, 2),
        "single_s": round(t_single, 2),
        "threaded_dialogues_per_s": round(args.dialogues / t_threads, 3),
        "single_dialogues_per_s": round(args.dialogues / t_single, 3),
        "speedup": round(t_single / t_threads, 3),
        "identical_run_files": same,
        "projected_s_for_1000x10": round(t_threads * scale, 1),
        "target_s_for_1000x10": TARGET_S_PER_1000x10,
    }
    if args.json:
        print(json.dumps(report))
        return report
    c = report["config"]
    print(
        f"{c['system']}: {c['dialogues']} dialogues x {c['rounds']} rounds, gallery "
        f"{c['gallery_size']}, {c['cpus']} CPUs, {c['torch_threads']} torch threads"
    )
    print(
        f"  {c['workers']} workers: {t_threads:8.1f} s  {report['threaded_dialogues_per_s']:.2f} dialogues/s"
    )
    print(f"  1 worker : {t_single:8.1f} s  {report['single_dialogues_per_s']:.2f} dialogues/s")
    print(f"  speedup {report['speedup']:.2f}x; identical run files: {same}")
    print(
        f"  1,000 x 10 at this rate: {report['projected_s_for_1000x10']:.0f} s "
        f"(target {TARGET_S_PER_1000x10:.0f} s)"
    )
    return report


if __name__ == "__main__":
    main()
