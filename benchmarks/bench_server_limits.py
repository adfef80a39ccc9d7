"""What the server's input bounds cost and save, in process (FastAPI TestClient).

- **Uploads**: ``--uploads`` (50) posts of a large JPEG (default 4000 x 4000 of smooth
  noise, ~3 MB); the store keeps the bytes received. Peer, measured in the same run: what a
  store of re-encoded PNGs (the previous behaviour) would have held for the same images.
  Reported: resident memory growth of the process, bytes held by the store, and both per
  upload.
- **JSON body**: a 10 MB JSON object with many extra keys to ``POST /sessions``: status,
  seconds, reply size, resident memory growth. Peer: a normal 30-byte message.

    python benchmarks/bench_server_limits.py            # 50 uploads of 4000 x 4000
    python benchmarks/bench_server_limits.py --uploads 3 --side 800 --json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import time


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def big_jpeg(side: int, seed: int) -> tuple[bytes, int]:
    """(JPEG bytes, the size of the same image as PNG) of smooth random colour blobs."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 255, (side // 50, side // 50, 3), dtype=np.uint8))
    image = small.resize((side, side), Image.Resampling.BICUBIC)
    noise = rng.integers(-12, 12, (side, side, 3))
    image = Image.fromarray(
        np.clip(np.asarray(image, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
    )
    jpeg, png = io.BytesIO(), io.BytesIO()
    image.save(jpeg, format="JPEG", quality=90)
    image.save(png, format="PNG")
    return jpeg.getvalue(), len(png.getvalue())


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--uploads", type=int, default=50)
    p.add_argument("--side", type=int, default=4000)
    p.add_argument("--body-mb", type=float, default=10.0)
    p.add_argument("--gallery-size", type=int, default=100)
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = p.parse_args(argv)

    from fastapi.testclient import TestClient

    from convir.agent import build_agent
    from convir.server.app import create_app
    from convir.testbed.resources import testbed_resources

    resources = testbed_resources(args.gallery_size, 0, generator=False, progress=False)
    client = TestClient(create_app(build_agent(resources, "text"), resources))
    client.get("/health")
    data, png_size = big_jpeg(args.side, 0)
    start_rss = rss_mb()
    started = time.perf_counter()
    codes = []
    for _ in range(args.uploads):
        codes.append(
            client.post("/uploads", files={"file": ("a.jpg", data, "image/jpeg")}).status_code
        )
    upload_s = (time.perf_counter() - started) / max(1, args.uploads)
    grown = rss_mb() - start_rss
    uploads = {
        "count": args.uploads,
        "statuses": sorted(set(codes)),
        "jpeg_mb": round(len(data) / 2**20, 2),
        "png_mb_peer": round(png_size / 2**20, 2),
        "kept_mb_per_upload": round(len(data) / 2**20, 2),
        "peer_kept_mb_per_upload": round(png_size / 2**20, 2),
        "rss_growth_mb": round(grown, 1),
        "rss_growth_mb_per_upload": round(grown / max(1, args.uploads), 2),
        "seconds_per_upload": round(upload_s, 3),
    }

    keys = int(args.body_mb * 2**20 / 12)
    body = json.dumps({"message": "a red circle", **{f"k{i:07d}": 1 for i in range(keys)}})
    before = rss_mb()
    started = time.perf_counter()
    reply = client.post("/sessions", content=body, headers={"content-type": "application/json"})
    seconds = time.perf_counter() - started
    body_row = {
        "body_mb": round(len(body) / 2**20, 1),
        "status": reply.status_code,
        "seconds": round(seconds, 4),
        "reply_bytes": len(reply.content),
        "rss_growth_mb": round(rss_mb() - before, 1),
    }
    started = time.perf_counter()
    normal = client.post("/sessions", json={"message": "a red circle"})
    body_row["peer_normal_message"] = {
        "status": normal.status_code,
        "seconds": round(time.perf_counter() - started, 4),
    }
    report = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "uploads": uploads,
        "json_body": body_row,
    }
    if args.json:
        print(json.dumps(report))
        return report
    print(report["machine"])
    u = uploads
    print(
        f"{u['count']} uploads of a {args.side}x{args.side} JPEG ({u['jpeg_mb']} MB; as PNG "
        f"{u['png_mb_peer']} MB): kept {u['kept_mb_per_upload']} MB each (re-encoded PNG peer: "
        f"{u['peer_kept_mb_per_upload']} MB), process grew {u['rss_growth_mb']} MB "
        f"({u['rss_growth_mb_per_upload']} MB/upload), {u['seconds_per_upload']} s/upload"
    )
    b = body_row
    print(
        f"{b['body_mb']} MB JSON body: HTTP {b['status']} in {b['seconds']} s, reply "
        f"{b['reply_bytes']} bytes, process grew {b['rss_growth_mb']} MB (a normal message: "
        f"HTTP {b['peer_normal_message']['status']} in {b['peer_normal_message']['seconds']} s)"
    )
    return report


if __name__ == "__main__":
    main()
