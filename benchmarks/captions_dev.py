"""The captions dev set (issue 24): CIRR images known only by three VLM captions each.

Runs ``convir eval run --benchmark captions`` on ``../shared/benchmarks/captions/
cirr_vlm_captions.jsonl`` (all 4,609 items, caption 1 opens, captions 2-3 are the gallery's
text, all-MiniLM-L6-v2), 200 dialogues, 5 rounds, seed 0, one CPU thread, with the systems
``concat/bank`` (ChatIR's text baseline asking random questions of the gallery's own bank),
``text/info_gain`` and ``text/random`` (the agent), and prints Hits@10 and Recall@1 per round
and BRI, then a sample of the questions asked with the user's answers. The command it runs is
printed first; the run's files (run files, summary.json, dialogues.jsonl, the index) stay in
``--out``.

    python benchmarks/captions_dev.py                                  # the dev set, seed 0
    python benchmarks/captions_dev.py --gallery-size 1000 --dialogues 50  # a quick check
    python benchmarks/captions_dev.py --seed 1                         # tuning seed
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEV_SET = ROOT.parent / "shared" / "benchmarks" / "captions" / "cirr_vlm_captions.jsonl"
SYSTEMS = ("concat", "text")
QUESTIONS = ("info_gain", "random")


def command(args: argparse.Namespace) -> list[str]:
    """The ``convir eval run`` command line of these options."""
    cmd = [sys.executable, "-m", "convir.cli", "eval", "run", "--benchmark", "captions"]
    cmd += ["--annotations", str(args.annotations), "--text-model", args.text_model]
    if args.gallery_size is not None:
        cmd += ["--gallery-size", str(args.gallery_size)]
    cmd += ["--dialogues", str(args.dialogues), "--rounds", str(args.rounds)]
    cmd += ["--seed", str(args.seed)]
    for system in SYSTEMS:
        cmd += ["--strategy", system]
    for mode in QUESTIONS:
        cmd += ["--questions", mode]
    cmd += ["--out", str(args.out), "--json", "--no-progress"]
    return cmd


def table(summary: dict[str, Any]) -> str:
    """Hits@10 and Recall@1 per round, one column per system, then BRI."""
    labels = list(summary)
    width = {label: max(8, len(label)) for label in labels}
    rounds = len(next(iter(summary.values()))["hits_at_10"])
    lines = []
    for key, name in (("hits_at_10", "Hits@10"), ("recall_at_1", "Recall@1")):
        lines.append(f"{name} per round")
        lines.append(f"{'round':>5}  " + "  ".join(f"{k:>{width[k]}}" for k in labels))
        for r in range(rounds):
            cells = "  ".join(f"{summary[k][key][r]:>{width[k]}.3f}" for k in labels)
            lines.append(f"{r:>5}  {cells}")
    lines.append(
        "BRI (lower is better): " + ", ".join(f"{k} {summary[k]['bri']:.3f}" for k in labels)
    )
    return "\n".join(lines)


def sample_turns(dialogues: Path, system: str, count: int, seed: int) -> list[str]:
    """``count`` asked questions of ``system`` drawn at random, with options and answers."""
    turns = []
    for line in dialogues.read_text().splitlines():
        row = json.loads(line)
        if row["system"] == system:
            turns += [(row["target"], t) for t in row["turns"]]
    picked = random.Random(seed).sample(turns, min(count, len(turns)))
    out = []
    for target, turn in picked:
        options = f" [{' / '.join(turn['options'])}]" if turn["options"] else ""
        out.append(f"{target}: {turn['question']}{options} -> {turn['answer']}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--annotations", type=Path, default=DEV_SET)
    parser.add_argument("--text-model", default="all-MiniLM-L6-v2")
    parser.add_argument("--gallery-size", type=int, default=None, help="default: all items")
    parser.add_argument("--dialogues", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/captions-dev"))
    parser.add_argument("--sample", type=int, default=20, help="questions shown per system")
    args = parser.parse_args(argv)
    if not args.annotations.is_file():
        print(f"no dev set at {args.annotations}", file=sys.stderr)
        return 2
    cmd = command(args)
    print("$ OMP_NUM_THREADS=1 " + shlex.join(cmd[1:]).replace("-m convir.cli", "convir", 1))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True, check=False)
    if proc.returncode:
        return proc.returncode
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    print(table(summary))
    print("seconds: " + ", ".join(f"{k} {s['seconds']}" for k, s in summary.items()))
    for system in summary:
        print(f"\n{args.sample} questions of {system}, drawn at random (seed {args.seed}):")
        for line in sample_turns(args.out / "dialogues.jsonl", system, args.sample, args.seed):
            print("  " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
