"""The GPU check: the project's hot paths on CUDA against the CPU, in one table.

Run by ``benchmarks/gpu_check.sh`` on a lent GPU machine (which has torch, no package
registry, and what a session carries: at most 64 MiB). Each row times one operation on the
``--device`` and on the CPU in the same run (the peer) and prints both and their ratio:

* ``ot``: token x patch OT rerank (``ot_rerank``: 77 tokens x 49 patches x 50 candidates,
  and x 1,000 candidates) and STiTch's CT set score (5 descriptions x 11 views x 1,000);
* ``search``: exact inner-product top-51 over a 1M x 512 gallery: FAISS on the GPU when
  this faiss build has GPUs, else a torch matmul + top-k on the device, against FAISS Flat
  (or the same torch code) on the CPU over 100k vectors, rescaled per vector;
* ``forward``: open_clip ViT-B-32 (random weights, built from its config) image encoder on
  256 images at 224 px, and its text encoder on 256 texts at 77 tokens;
* ``generator``: the shipped testbed generator sampling 16 images (25 DDIM steps).

A row whose package is missing on the machine says so and the others still run (open_clip,
faiss and diffusers may be absent there: carry them, see docs/performance.md). ``--quick``
shrinks every size (for the CPU test); ``--budget-s`` stops starting rows after that many
seconds so the whole check stays under the device's time.

    python benchmarks/gpu_check.py --device cuda          # what gpu_check.sh runs
    python benchmarks/gpu_check.py --device cpu --quick --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def timed_ms(fn: Callable[[], object], repeats: int, sync: Callable[[], None]) -> float:
    """Median milliseconds of ``fn`` (after one warm-up), synchronising the device."""
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1000)
    return sorted(times)[len(times) // 2]


class Check:
    """Rows of (operation, device ms, cpu ms); a failing row records why and moves on."""

    def __init__(self, device: str, repeats: int, budget_s: float) -> None:
        import torch

        self.torch = torch
        self.device = device
        self.repeats = repeats
        self.deadline = time.monotonic() + budget_s
        self.rows: list[dict[str, Any]] = []

    def sync(self) -> None:
        if self.device.startswith("cuda"):
            self.torch.cuda.synchronize()

    def row(
        self, name: str, on_device: Callable[[], Callable], on_cpu: Callable[[], Callable]
    ) -> None:
        """Build each side's closure (setup is not timed), time both, keep the row."""
        if time.monotonic() > self.deadline:
            self.rows.append({"operation": name, "skipped": "time budget spent"})
            return
        try:
            device_ms = timed_ms(on_device(), self.repeats, self.sync)
            cpu_ms = timed_ms(on_cpu(), max(1, self.repeats // 3), lambda: None)
        except ImportError as exc:
            self.rows.append({"operation": name, "skipped": f"missing package: {exc.name}"})
            return
        except Exception as exc:  # a check reports, it does not stop at the first failure
            self.rows.append({"operation": name, "skipped": f"{type(exc).__name__}: {exc}"[:160]})
            return
        self.rows.append(
            {
                "operation": name,
                "device_ms": round(device_ms, 3),
                "cpu_ms": round(cpu_ms, 3),
                "speedup": round(cpu_ms / device_ms, 1) if device_ms > 0 else None,
            }
        )


def ot_rows(check: Check, quick: bool) -> None:
    from convir.tools.ot_rerank import ot_rerank
    from convir.tools.set_scores import conditional_transport

    torch = check.torch

    def unit(device: str, *shape: int) -> Any:
        g = torch.Generator().manual_seed(0)
        return torch.nn.functional.normalize(torch.randn(*shape, generator=g), dim=-1).to(device)

    for n in (50,) if quick else (50, 1000):

        def ot(device: str, n: int = n) -> Callable:
            tokens, patches = unit(device, 77, 512), unit(device, n, 49, 512)
            mask = torch.ones(77, dtype=torch.bool, device=device)
            first = torch.rand(n).to(device)
            return lambda: ot_rerank(first, tokens, mask, patches, weight=0.2)

        check.row(f"token x patch OT, 77 x 49 x {n}", lambda: ot(check.device), lambda: ot("cpu"))
    n = 50 if quick else 1000

    def ct(device: str) -> Callable:
        desc, views = unit(device, 5, 512), unit(device, n, 11, 512)
        return lambda: conditional_transport(desc, views)

    check.row(f"CT set score 5 x 11 x {n}", lambda: ct(check.device), lambda: ct("cpu"))


def search_rows(check: Check, quick: bool) -> None:
    import numpy as np

    torch = check.torch
    big, small = (20_000, 5_000) if quick else (1_000_000, 100_000)
    rng = np.random.default_rng(0)
    queries = rng.standard_normal((256, 512)).astype(np.float32)

    def gallery(n: int) -> np.ndarray:
        x = rng.standard_normal((n, 512)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    def on_device() -> Callable:
        x = gallery(big)
        try:
            import faiss

            if faiss.get_num_gpus() > 0:
                index = faiss.index_cpu_to_all_gpus(faiss.IndexFlatIP(512))
                index.add(x)
                return lambda: index.search(queries, 51)
        except ImportError:
            pass
        xt, qt = torch.from_numpy(x).to(check.device), torch.from_numpy(queries).to(check.device)
        return lambda: torch.topk(qt @ xt.T, 51, dim=1)

    def on_cpu() -> Callable:
        x = gallery(small)
        try:
            import faiss

            index = faiss.IndexFlatIP(512)
            index.add(x)
            return lambda: index.search(queries, 51)
        except ImportError:
            xt, qt = torch.from_numpy(x), torch.from_numpy(queries)
            return lambda: torch.topk(qt @ xt.T, 51, dim=1)

    check.row(f"exact top-51, 256 queries, device {big:,} / cpu {small:,}", on_device, on_cpu)
    last = check.rows[-1]
    if "cpu_ms" in last:  # compare per gallery vector: the CPU searched a tenth of it
        last["cpu_ms_rescaled_to_device_size"] = round(last["cpu_ms"] * big / small, 1)
        last["speedup"] = round(last["cpu_ms_rescaled_to_device_size"] / last["device_ms"], 1)


def forward_rows(check: Check, quick: bool) -> None:
    torch = check.torch
    n = 8 if quick else 256
    models: dict[str, Any] = {}

    def model(device: str) -> Any:
        if device not in models:
            import logging

            import open_clip

            logging.getLogger().setLevel(logging.ERROR)  # "initialized randomly": intended
            models[device] = open_clip.create_model("ViT-B-32", pretrained=None).to(device).eval()
        return models[device]

    def images(device: str, count: int) -> Callable:
        m, x = model(device), torch.randn(count, 3, 224, 224).to(device)

        def run() -> None:
            with torch.inference_mode():
                m.encode_image(x)

        return run

    def texts(device: str, count: int) -> Callable:
        m = model(device)
        ids = torch.randint(1, 49000, (count, 77)).to(device)

        def run() -> None:
            with torch.inference_mode():
                m.encode_text(ids)

        return run

    cpu_n = max(1, n // 8)  # the CPU peer on an eighth of the batch, rescaled below
    for name, fn in (("ViT-B-32 images", images), ("ViT-B-32 texts, 77 tokens", texts)):
        check.row(
            f"{name} x {n} (cpu x {cpu_n})",
            lambda fn=fn: fn(check.device, n),
            lambda fn=fn: fn("cpu", cpu_n),
        )
        last = check.rows[-1]
        if "cpu_ms" in last:
            last["cpu_ms_rescaled_to_device_size"] = round(last["cpu_ms"] * n / cpu_n, 1)
            last["speedup"] = round(last["cpu_ms_rescaled_to_device_size"] / last["device_ms"], 1)
            last["device_items_per_s"] = round(n / last["device_ms"] * 1000, 1)


def generator_rows(check: Check, quick: bool) -> None:
    n = 2 if quick else 16
    steps = 4 if quick else 25

    def sampler(device: str) -> Callable:
        from convir.models.generator import TestbedGenerator

        gen = TestbedGenerator(device=device, steps=steps)
        return lambda: gen.generate(["a red circle on a white background"], n_per_prompt=n, seed=0)

    check.row(
        f"testbed generator, {n} images x {steps} steps",
        lambda: sampler(check.device),
        lambda: sampler("cpu"),
    )


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--budget-s", type=float, default=420.0, help="start no row after this")
    p.add_argument("--quick", action="store_true", help="tiny sizes (the CPU test)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--json-out", type=Path, help="also write the JSON report here")
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))  # the working tree's convir, whatever is installed
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("gpu_check: --device cuda but torch sees no CUDA device")
    check = Check(args.device, 2 if args.quick else args.repeats, args.budget_s)
    started = time.perf_counter()
    for section in (ot_rows, search_rows, forward_rows, generator_rows):
        section(check, args.quick)
    report = {
        "config": {
            "device": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu",
            "torch": torch.__version__,
            "cpus": os.cpu_count(),
            "machine": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "seconds": round(time.perf_counter() - started, 1),
        },
        "rows": check.rows,
    }
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(report, indent=1) + "\n")
    if args.json:
        print(json.dumps(report))
        return report
    c = report["config"]
    print(f"GPU check on {c['device']} (torch {c['torch']}, {c['cpus']} CPUs), {c['seconds']} s")
    print(f"{'operation':<58} {'device ms':>10} {'cpu ms':>10} {'speedup':>8}")
    for r in check.rows:
        if "skipped" in r:
            print(f"{r['operation']:<58} skipped: {r['skipped']}")
            continue
        cpu = r.get("cpu_ms_rescaled_to_device_size", r["cpu_ms"])
        print(f"{r['operation']:<58} {r['device_ms']:>10.2f} {cpu:>10.1f} {r['speedup']:>7}x")
    return report


if __name__ == "__main__":
    main()
