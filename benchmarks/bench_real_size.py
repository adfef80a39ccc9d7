"""Real-size models on CPU: open_clip ViT-B-32 (random weights, built from its config: no
download) and a ChatIR-size gallery of 50,000 images at 224 px.

Every number of the other benchmarks is on the 128-d testbed CLIP; users run ViT-B/32 or
larger. This measures, at that size:

* **indexing**: ``convir index`` on a folder of 224-px PNGs (``--images``, drawn here) with
  the ViT-B-32 weights saved to a file, vs the bare forward pass (``model.encode_image`` on
  tensors preprocessed beforehand) in the same run: images/s of each and their ratio, and
  the projected time for the whole gallery (the command's fixed cost, loading the weights
  and saving, is the time of the same command on a one-image folder: left out of its rate
  and reported as ``fixed_s``);
* **per-turn nodes** at 512-d: the query's text encoding at 77 tokens (pooled + tokens), the
  FAISS search of a 50k gallery (the default factory for that size, and HNSW32 as the
  peer), the answer model scoring a menu of 24 questions over the 50-candidate pool (fact
  embeddings cached, as after the first turns), STiTch's CT set score (5 descriptions x 11
  views x 50 candidates), token x patch OT over 50 candidates (77 tokens x 49 patches), and
  computing 50 candidates' patch features when they are not cached (what ``ot_rerank``
  pays on a cold cache);
* **memory** per gallery of what an index may store: pooled vectors (float32), the HNSW
  graph, views (10 per image, float16) and patch features (49 per image, float16).

The 50k gallery's vectors for search are random unit vectors (their values do not change
a Flat search's cost; embedding 50k random-weight images would only re-measure the forward
pass, already projected). Set ``--threads`` for torch (default 1, the evaluation's setting).

    python benchmarks/bench_real_size.py                 # 256 images indexed, 50k gallery
    python benchmarks/bench_real_size.py --quick --json  # tiny, for the test
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

MODEL = "ViT-B-32"
IMAGE_PX = 224


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))


def draw_images(folder: Path, count: int, seed: int) -> list[Path]:
    """``count`` 224-px PNGs of a few coloured shapes each (the decode cost of a real photo
    folder is its size in pixels; the content does not matter to a random-weight model)."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        image = Image.new(
            "RGB", (IMAGE_PX, IMAGE_PX), tuple(int(c) for c in rng.integers(0, 256, 3))
        )
        draw = ImageDraw.Draw(image)
        for _ in range(int(rng.integers(1, 5))):
            x, y = rng.integers(0, IMAGE_PX - 40, 2)
            size = int(rng.integers(20, 90))
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            draw.ellipse([int(x), int(y), int(x) + size, int(y) + size], fill=colour)
        path = folder / f"{i:06d}.png"
        image.save(path)
        paths.append(path)
    return paths


def run_cli(argv: list[str]) -> str:
    """Run a ``convir`` command in this process; returns what it printed."""
    import typer

    from convir.cli import app

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        typer.main.get_command(app).main(argv, prog_name="convir", standalone_mode=False)
    return out.getvalue()


def indexing(embedder: Any, folder: Path, paths: list[Path], batch: int, work: Path) -> dict:
    """``convir index`` vs the bare forward pass on the same images."""
    import torch
    from PIL import Image

    checkpoint = work / "vit-b-32-random.pt"
    torch.save(embedder.model.state_dict(), checkpoint)
    tensors = torch.stack([embedder.preprocess(Image.open(p).convert("RGB")) for p in paths])

    def forward() -> None:
        with torch.inference_mode():
            for start in range(0, len(tensors), batch):
                embedder.model.encode_image(tensors[start : start + batch])

    start = time.perf_counter()
    forward()
    forward_s = time.perf_counter() - start

    def index_s(images: Path) -> float:
        argv = ["index", str(images), "--out", str(work / "gallery.index"), "--model", MODEL]
        argv += ["--pretrained", str(checkpoint), "--batch-size", str(batch), "--no-progress"]
        start = time.perf_counter()
        run_cli(argv)
        return time.perf_counter() - start

    one = work / "one"
    one.mkdir()
    (one / paths[0].name).write_bytes(paths[0].read_bytes())
    index_s(one)  # warm-up: the first read of the weights file is a cold one
    fixed_s = index_s(one)  # loading the weights, building and saving: paid once per run
    all_s = index_s(folder)
    n = len(paths)
    embed_s = max(all_s - fixed_s, 1e-9)
    return {
        "images": n,
        "forward_img_per_s": round(n / forward_s, 1),
        "convir_index_img_per_s": round((n - 1) / embed_s, 1),
        "ratio": round((n - 1) / embed_s / (n / forward_s), 3),
        "fixed_s": round(fixed_s, 2),
        "convir_index_s": round(all_s, 2),
    }


def per_turn(embedder: Any, gallery: int, repeats: int) -> list[dict]:
    """Milliseconds of each step of a turn at 512-d, with the peer of each where one exists."""
    import torch

    from convir.gallery.answers import AnswerModel
    from convir.gallery.questions import Askable
    from convir.index.faiss_index import GalleryIndex, default_factory
    from convir.tools.ot_rerank import ot_rerank
    from convir.tools.set_scores import conditional_transport

    dim = embedder.dim
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((gallery, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [f"{i:07d}" for i in range(gallery)]
    factory = default_factory(gallery, dim)
    flat = GalleryIndex.build(vectors, ids, ids, factory=factory)
    hnsw = GalleryIndex.build(vectors, ids, ids, factory="HNSW32,Flat")
    query = (
        "a small red circle at the top left and a blue square in the center on a white background"
    )
    q = embedder.encode_text([query]).pooled.numpy().astype(np.float32)

    pool = vectors[:50]
    answers = AnswerModel(embedder, temperature=0.1)
    colours = ["red", "green", "blue", "yellow", "white", "gray"]
    menu = [
        Askable(f"is there a {c} {s}?", ("yes", "no"), (f"{c} {s}", None))
        for c in colours
        for s in ("circle", "square", "star", "dog")
    ]
    weights = rng.random(50)
    answers.gains(menu, pool, weights)  # embed the facts once, as after the first turns

    g = torch.Generator().manual_seed(0)

    def unit(*shape: int) -> torch.Tensor:
        return torch.nn.functional.normalize(torch.randn(*shape, generator=g), dim=-1)

    desc, views = unit(5, dim), unit(50, 11, dim)
    feats = embedder.encode_text([query], tokens=True)
    tokens, mask = feats.tokens[0], feats.mask[0]
    patches, first = unit(50, 49, dim), torch.rand(50, generator=g)
    from PIL import Image

    images = [Image.new("RGB", (IMAGE_PX, IMAGE_PX), (i, 0, 0)) for i in range(50)]
    rows = [
        ("text encode (77 tokens, + tokens)", lambda: embedder.encode_text([query], tokens=True)),
        (f"search {factory} k=51", lambda: flat.search(q, 51)),
        ("search HNSW32 k=51 (peer)", lambda: hnsw.search(q, 51)),
        ("answer model: 24 questions x 50", lambda: answers.gains(menu, pool, weights)),
        ("CT set score 5 x 11 views x 50", lambda: conditional_transport(desc, views)),
        ("token x patch OT 77 x 49 x 50", lambda: ot_rerank(first, tokens, mask, patches, 0.2)),
        ("patch features of 50 (cold cache)", lambda: embedder.encode_images(images, patches=True)),
    ]
    out = []
    for name, fn in rows:
        out.append({"step": name, "ms": round(median_ms(fn, repeats), 2)})
    return out


def memory(gallery: int, dim: int) -> list[dict]:
    """Bytes per gallery of each thing an index may store, at this size."""
    mb = 2**20
    return [
        {"stored": "pooled vectors, float32 (Flat)", "mb": round(gallery * dim * 4 / mb, 1)},
        {"stored": "HNSW32 graph on top", "mb": round(gallery * 32 * 2 * 4 / mb, 1)},
        {"stored": "views x10, float16", "mb": round(gallery * 10 * dim * 2 / mb, 1)},
        {"stored": "patch features x49, float16", "mb": round(gallery * 49 * dim * 2 / mb, 1)},
    ]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=256, help="images indexed for throughput")
    p.add_argument("--gallery", type=int, default=50_000, help="gallery size searched")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--repeats", type=int, default=11)
    p.add_argument("--quick", action="store_true", help="16 images, 2,000 vectors, 2 repeats")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.images, args.gallery, args.repeats = 16, 2000, 2
    import logging

    import torch

    from convir.models.embedder import OpenClipEmbedder

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    logging.getLogger().setLevel(logging.ERROR)  # open_clip's "initialized randomly": intended
    embedder = OpenClipEmbedder(MODEL, None)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        paths = draw_images(work / "images", args.images, seed=0)
        index_row = indexing(embedder, work / "images", paths, args.batch_size, work)
    index_row["projected_hours_for_gallery"] = round(
        args.gallery / index_row["convir_index_img_per_s"] / 3600, 2
    )
    report = {
        "config": {
            "model": MODEL,
            "dim": embedder.dim,
            "gallery": args.gallery,
            "torch_threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
            "machine": platform.processor() or platform.machine(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        },
        "indexing": index_row,
        "per_turn_ms": per_turn(embedder, args.gallery, args.repeats),
        "memory_mb": memory(args.gallery, embedder.dim),
    }
    if args.json:
        print(json.dumps(report))
        return report
    c, i = report["config"], report["indexing"]
    print(
        f"{c['model']} ({c['dim']}-d, random weights), gallery {c['gallery']:,}, "
        f"{c['cpus']} CPUs, {c['torch_threads']} torch threads"
    )
    print(
        f"indexing {i['images']} images at {IMAGE_PX} px: convir index "
        f"{i['convir_index_img_per_s']} img/s = {i['ratio']:.0%} of the bare forward pass "
        f"({i['forward_img_per_s']} img/s), plus {i['fixed_s']} s per run (weights, save); the "
        f"gallery: ~{i['projected_hours_for_gallery']} h"
    )
    for row in report["per_turn_ms"]:
        print(f"  {row['step']:<40} {row['ms']:>9.2f} ms")
    for row in report["memory_mb"]:
        print(f"  {row['stored']:<40} {row['mb']:>9.1f} MB")
    return report


if __name__ == "__main__":
    main()
