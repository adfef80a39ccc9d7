"""Indexing throughput: images/s of ``convir index`` against the embedder's bare forward pass.

A folder of testbed PNGs (what ``convir testbed make --size N --out DIR`` writes) is indexed
side by side by:

* ``forward only``: ``OpenClipEmbedder.encode_image_tensor`` on tensors decoded and
  preprocessed beforehand, in batches of --batch-size: the ceiling;
* ``convir index``: the command itself, run in this process (``convir index DIR --out F
  --batch-size B --no-progress``: list, decode + preprocess in worker threads, or between
  batches where the model takes every core, embed, build the index, save it), with the model
  already loaded, so it is timed from the first file read to the saved index;
* ``embed_images``: the decode-and-embed loop alone (the command minus listing, index
  build and save), to show where the rest goes;
* ``decode only``: ``load_image`` + preprocessing (per image, then the per-batch
  normalisation) on one thread, no model: the work that has to hide behind the model.

Each is timed --repeats times, interleaved; the table gives the median and the best run,
and the median CPU seconds of the whole process (all threads: what decoding adds to the
model's own CPU time, which is steadier than wall time on a shared machine).
The headline is ``convir index`` images/s over ``forward only`` images/s from the medians
(target >= 80%: decoding must overlap with compute), and the same from the best runs, which
is the steadier figure on a machine shared with other work. Python
start-up, imports and loading the weights are not included (``convir index`` pays them once
per run, about a second or two).

    python benchmarks/bench_indexing.py                         # 2,000 images, batch 64
    python benchmarks/bench_indexing.py --folder /tmp/tb2k --json
    python benchmarks/bench_indexing.py --quick --json          # tiny, for the test
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

TARGET_RATIO = 0.80


def make_folder(folder: Path, size: int, seed: int) -> None:
    """``convir testbed make --size SIZE --out FOLDER --seed SEED``, unless already there."""
    from convir.index.folder import list_images

    try:
        if len(list_images(folder, on_skip=None)) >= size:
            return
    except Exception:  # no folder or no images yet: write them
        pass
    run_cli(["testbed", "make", "--size", str(size), "--out", str(folder), "--seed", str(seed)])


def run_cli(argv: list[str]) -> str:
    """Run a ``convir`` command in this process; returns what it printed."""
    import typer

    from convir.cli import app

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        typer.main.get_command(app).main(argv, prog_name="convir", standalone_mode=False)
    return out.getvalue()


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall seconds and CPU seconds of this process (all its threads) for one call."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def run_benchmark(args: argparse.Namespace) -> dict:
    import torch

    from convir.index.folder import decode_threads, embed_images, list_images, load_image
    from convir.models.embedder import TESTBED_CHECKPOINT, TESTBED_MODEL, load_embedder

    if args.threads:
        torch.set_num_threads(args.threads)
    with contextlib.ExitStack() as stack:
        if args.folder is None:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-indexing-")))
            folder = tmp / "gallery"
        else:
            folder = Path(args.folder)
        make_folder(folder, args.size, args.seed)
        files = list_images(folder, on_skip=None)[: args.size]
        n = len(files)
        out_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-index-")))
        # the key `convir index` uses for the shipped model: the command finds it loaded
        embedder = load_embedder(TESTBED_MODEL, str(TESTBED_CHECKPOINT.resolve()), "cpu")
        bs = args.batch_size

        def decode() -> torch.Tensor:
            """What the decode threads and the batch collation do, on one thread."""
            prepared = [embedder.prepare_image(load_image(p)) for p in files]
            batches = [prepared[s : s + bs] for s in range(0, n, bs)]
            return torch.cat([embedder.collate_images(b) for b in batches])

        pixels = decode()

        def forward() -> None:
            for start in range(0, n, bs):
                embedder.encode_image_tensor(pixels[start : start + bs])

        def index() -> None:
            target = out_dir / "gallery.index"
            argv = [str(folder), "--out", str(target), "--batch-size", str(bs)]
            argv += ["--workers", str(args.workers), "--no-progress"]
            printed = run_cli(["index", *argv])
            if f"indexed {n} images" not in printed:
                raise SystemExit(f"convir index did not index the {n} images: {printed!r}")

        def embed() -> None:
            embed_images(files, folder, embedder, batch_size=bs, workers=args.workers,
                         progress=False)  # fmt: skip

        methods: list[tuple[str, Callable[[], None]]] = [
            ("forward only", forward),
            ("convir index", index),
            ("embed_images", embed),
            ("decode only (1 thread)", decode),
        ]
        embedder.encode_image_tensor(pixels[:bs])  # warm-up: first-call allocations
        times: dict[str, list[float]] = {name: [] for name, _ in methods}
        cpu: dict[str, list[float]] = {name: [] for name, _ in methods}
        for _ in range(args.repeats):
            for name, fn in methods:
                wall, cpu_s = timed(fn)
                times[name].append(wall)
                cpu[name].append(cpu_s)
    rows = []
    base = statistics.median(times["forward only"])
    base_best = min(times["forward only"])
    for name, _ in methods:
        median, best = statistics.median(times[name]), min(times[name])
        rows.append(
            {
                "method": name,
                "median_s": median,
                "best_s": best,
                "runs": len(times[name]),
                "images_per_s": n / median,
                "cpu_s": statistics.median(cpu[name]),
                "ratio_to_forward": base / median,
                "ratio_to_forward_best": base_best / best,
            }
        )
    ratio = next(r["ratio_to_forward"] for r in rows if r["method"] == "convir index")
    ratio_best = next(r["ratio_to_forward_best"] for r in rows if r["method"] == "convir index")
    return {
        "config": {
            "images": n,
            "image_size": 64,
            "batch_size": bs,
            "workers": args.workers,
            "decode_threads": decode_threads(args.workers, embedder.device),
            "torch_threads": torch.get_num_threads(),
            "repeats": args.repeats,
            "model": TESTBED_MODEL,
            "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "target_ratio": TARGET_RATIO,
        },
        "results": rows,
        "ratio": ratio,
        "ratio_best": ratio_best,
        "meets_target": ratio >= TARGET_RATIO,
    }


def print_table(report: dict) -> None:
    cfg = report["config"]
    print(
        f"Indexing benchmark: {cfg['images']} testbed PNGs ({cfg['image_size']}px), "
        f"{cfg['model']}, batch {cfg['batch_size']}, --workers {cfg['workers']} "
        f"({cfg['decode_threads'] or 'no'} decode threads started), "
        f"torch threads={cfg['torch_threads']} ({cfg['cpu_count']} cores), "
        f"median of {cfg['repeats']}"
    )
    print(
        f"{'method':24s} {'median s':>9s} {'best s':>8s} {'runs':>4s} {'images/s':>9s} "
        f"{'vs forward':>10s} {'(best runs)':>11s} {'CPU s':>6s}"
    )
    for r in report["results"]:
        print(
            f"{r['method']:24s} {r['median_s']:9.3f} {r['best_s']:8.3f} {r['runs']:4d} "
            f"{r['images_per_s']:9.0f} {100 * r['ratio_to_forward']:9.0f}% "
            f"{100 * r['ratio_to_forward_best']:10.0f}% {r['cpu_s']:6.2f}"
        )
    verdict = "meets" if report["meets_target"] else "misses"
    print(
        f"convir index runs at {100 * report['ratio']:.0f}% of the bare forward pass "
        f"({100 * report['ratio_best']:.0f}% best run against best run): {verdict} the "
        f"target (>= {100 * cfg['target_ratio']:.0f}%)"
    )


def main(argv: list[str] | None = None) -> dict:
    from convir.index.folder import DEFAULT_WORKERS

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--folder", help="folder of images (written with convir testbed make if empty)")
    p.add_argument("--size", type=int, default=2000, help="images to write / index")
    p.add_argument("--batch-size", type=int, default=64, help="images per model call (both)")
    p.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="decode threads")
    p.add_argument("--threads", type=int, default=0, help="torch threads; 0 = torch default")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="100 images, one run: smoke test")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = p.parse_args(argv)
    if args.quick:
        args.size, args.repeats = 100, 1
        args.batch_size = min(args.batch_size, 32)
    report = run_benchmark(args)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
