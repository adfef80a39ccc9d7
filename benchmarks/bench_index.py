"""Index scaling: exact Flat vs IVF vs HNSW32, as convir builds and searches them.

Every index is a :class:`convir.index.faiss_index.GalleryIndex` built from a factory string
(what ``convir index --factory`` builds), side by side on the same vectors and queries:

* ``Flat``: exact search, the reference for recall.
* ``IVF<nlist>,Flat`` with nlist ~ 4*sqrt(N) (:func:`convir.index.factory.ivf_nlist`);
  ``nprobe`` is tuned to the smallest value reaching recall@10 >= --target on a tuning set
  of queries, then everything is measured on separate evaluation queries.
* ``HNSW32``: ``efSearch`` tuned the same way.

Measured per index: build time (train + add), memory (size of the serialised FAISS index,
``GalleryIndex.serialized_bytes``), single-query latency (p50/p95 over the evaluation
queries, searched one at a time), batched latency (wall time per query in batches of 256),
and recall@10 against Flat (share of Flat's top-10 positions that the index also returns).

Vectors (the ``vectors`` column), side by side at every size they apply to:

* ``testbed``: the testbed gallery embedded by the shipped CLIP, at sizes up to
  --testbed-max (embedding 1M images takes hours on a CPU). Queries: text embeddings of the
  captions of held-out scenes, i.e. real text-to-image queries.
* ``fit``: unit vectors drawn from a Gaussian with the mean and covariance of the testbed
  image embeddings (the largest testbed gallery measured), queried by the same caption
  embeddings: the real vectors' spread and effective dimension at sizes the testbed cannot
  reach, without their cluster structure. At the testbed sizes it is checked against the
  real thing.
* ``random``: random unit vectors of the same dimension (Gaussian, normalised), queried by
  random unit vectors. They have no structure at all: the worst case for IVF and HNSW (the
  tuned nprobe / efSearch on them are upper bounds, not what real embeddings need).

The headline is the single-query latency at the largest size divided by the Flat figure at
the smallest size (the issue's target: <= 3x at 1M against 10k, at recall@10 >= 0.95).

    python benchmarks/bench_index.py                            # 10k (testbed), 100k, 1M
    python benchmarks/bench_index.py --sizes 10000,100000 --json
    python benchmarks/bench_index.py --quick --json             # tiny, for the test
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from convir.index.faiss_index import GalleryIndex, ivf_nlist

K = 10
TARGET_RECALL = 0.95
TARGET_RATIO = 3.0  # largest-size single query vs smallest-size Flat single query
BATCH = 256
NPROBE_GRID = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768)
NPROBE_GRID += (1024, 1536, 2048, 3072, 4096, 6144, 8192)
EF_GRID = (
    16,
    20,
    24,
    28,
    32,
    40,
    48,
    56,
    64,
    80,
    96,
    128,
    192,
    256,
    384,
    512,
    768,
    1024,
    1536,
    2048,
)


SOURCES = ("testbed", "fit", "random")


@dataclass
class Data:
    size: int
    source: str  # one of SOURCES
    base: np.ndarray  # [N, D] float32
    tune: np.ndarray  # [Qt, D] queries used to pick nprobe / efSearch
    evals: np.ndarray  # [Qe, D] queries everything is measured on


def unit_random(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random unit vectors (Gaussian, normalised), generated in chunks as float32."""
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 1 << 16):
        block = rng.standard_normal((min(1 << 16, n - start), dim), dtype=np.float32)
        out[start : start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def random_data(size: int, dim: int, n_tune: int, n_eval: int, seed: int) -> Data:
    rng = np.random.default_rng(seed)
    base = unit_random(size, dim, rng)
    queries = unit_random(n_tune + n_eval, dim, rng)
    return Data(size, "random", base, queries[:n_tune], queries[n_tune:])


def testbed_data(size: int, n_tune: int, n_eval: int, seed: int) -> Data:
    """The first ``size`` testbed scenes embedded by the shipped CLIP; queries are the text
    embeddings of the captions of the next ``n_tune + n_eval`` scenes (not in the gallery)."""
    from convir.testbed.resources import testbed_resources

    res = testbed_resources(size + n_tune + n_eval, seed, generator=False, progress=False)
    captions = res.captions[size:]
    queries = res.embedder.encode_text(captions).pooled.float().numpy().astype(np.float32)
    base = np.ascontiguousarray(res.vectors[:size])
    return Data(size, "testbed", base, queries[:n_tune], queries[n_tune:])


def fitted_data(size: int, real: Data, seed: int) -> Data:
    """``size`` unit vectors from a Gaussian fitted to ``real.base`` (mean and covariance),
    with ``real``'s queries."""
    rng = np.random.default_rng(seed + 1)
    mean = real.base.astype(np.float64).mean(axis=0)
    cov = np.cov(real.base.astype(np.float64), rowvar=False)
    chol = np.linalg.cholesky(cov + 1e-9 * np.trace(cov) / len(cov) * np.eye(len(cov)))
    out = np.empty((size, len(mean)), np.float32)
    for start in range(0, size, 1 << 16):
        z = rng.standard_normal((min(1 << 16, size - start), len(mean)))
        block = z @ chol.T + mean
        out[start : start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return Data(size, "fit", out, real.tune, real.evals)


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each row of ``truth`` (exact top-k positions) present in ``found``."""
    hits = [len(np.intersect1d(f[f >= 0], t)) for f, t in zip(found, truth, strict=True)]
    return float(np.sum(hits) / truth.size)


def single_latencies(index: GalleryIndex, queries: np.ndarray) -> list[float]:
    """Seconds per search, one query at a time (after one warm-up search)."""
    index.search(queries[:1], K)
    times = []
    for q in queries:
        row = q[None, :]
        t0 = time.perf_counter()
        index.search(row, K)
        times.append(time.perf_counter() - t0)
    return times


def batched_latency(index: GalleryIndex, queries: np.ndarray, batch: int) -> float:
    """Seconds per query when searched in batches of ``batch``."""
    index.search(queries[: min(batch, 8)], K)
    t0 = time.perf_counter()
    for start in range(0, len(queries), batch):
        index.search(queries[start : start + batch], K)
    return (time.perf_counter() - t0) / len(queries)


def tune(
    index: GalleryIndex,
    param: str,
    grid: tuple[int, ...],
    limit: int,
    queries: np.ndarray,
    truth: np.ndarray,
    target: float,
) -> tuple[int, float, bool]:
    """Smallest grid value (up to ``limit``) whose recall@10 on the tuning queries reaches
    ``target``; (value, tuning recall, reached)."""
    values = [v for v in grid if v < limit] + [limit]
    recall = 0.0
    for value in values:
        setattr(index, param, value)
        recall = recall_at_k(index.search(queries, K)[1], truth)
        if recall >= target:
            return value, recall, True
    return values[-1], recall, False


def measure(
    data: Data, factory: str, truth_tune: np.ndarray, truth_eval: np.ndarray, args
) -> list[dict]:
    """One row with nprobe / efSearch tuned to the target; with --defaults, a second row
    for IVF/HNSW at the search parameters GalleryIndex sets by default (no tuning)."""
    import faiss

    ids = [str(i) for i in range(data.size)]
    faiss.omp_set_num_threads(args.build_threads)
    t0 = time.perf_counter()
    index = GalleryIndex.build(data.base, ids, ids, factory=factory)
    build_s = time.perf_counter() - t0
    faiss.omp_set_num_threads(args.threads)
    param, value, tune_recall, reached = None, None, None, True
    attr = "nprobe" if index.nprobe is not None else "ef_search"
    default = getattr(index, attr)
    if index.nprobe is not None:
        param = "nprobe"
        value, tune_recall, reached = tune(
            index, "nprobe", NPROBE_GRID, index.nlist, data.tune, truth_tune, args.target
        )
    elif index.ef_search is not None:
        param = "efSearch"
        value, tune_recall, reached = tune(
            index, "ef_search", EF_GRID, EF_GRID[-1], data.tune, truth_tune, args.target
        )
    nbytes = index.serialized_bytes()
    common = {
        "size": data.size,
        "source": data.source,
        "factory": factory,
        "param": param,
        "build_s": build_s,
        "bytes": nbytes,
        "bytes_per_vector": nbytes / data.size,
    }
    rows = [
        {
            **common,
            "setting": "tuned" if param else "exact",
            "value": value,
            "tune_recall": tune_recall,
            "reached_target": reached,
            **search_figures(index, data.evals, truth_eval, args.batch),
        }
    ]
    if param and args.defaults:
        setattr(index, attr, default)
        rows.append(
            {
                **common,
                "setting": "default",
                "value": default,
                "tune_recall": None,
                "reached_target": True,
                **search_figures(index, data.evals, truth_eval, args.batch),
            }
        )
    return rows


def search_figures(index: GalleryIndex, queries: np.ndarray, truth: np.ndarray, batch: int):
    found = index.search(queries, K)[1]
    times = single_latencies(index, queries)
    return {
        "single_p50_ms": 1e3 * statistics.median(times),
        "single_p95_ms": 1e3 * float(np.percentile(times, 95)),
        "batch_ms_per_query": 1e3 * batched_latency(index, queries, batch),
        "recall_at_10": recall_at_k(found, truth),
    }


def datasets(args) -> list[Callable[[], Data]]:
    """Loaders, smallest size first: testbed up to --testbed-max, fit and random at every size."""
    real: dict[str, Data] = {}
    testbed_sizes = [s for s in args.sizes if s <= args.testbed_max] or [args.testbed_max]

    def testbed(size: int) -> Data:
        data = testbed_data(size, args.tune_queries, args.queries, args.seed)
        if size == max(testbed_sizes):
            real["fit"] = data  # what the fitted Gaussians copy
        return data

    def fit(size: int) -> Data:
        if "fit" not in real:
            testbed(max(testbed_sizes))
        return fitted_data(size, real["fit"], args.seed)

    out: list[Callable[[], Data]] = []
    for size in args.sizes:
        if "testbed" in args.sources and size <= args.testbed_max:
            out.append(lambda s=size: testbed(s))
        if "fit" in args.sources:
            out.append(lambda s=size: fit(s))
        if "random" in args.sources:
            out.append(
                lambda s=size: random_data(s, args.dim, args.tune_queries, args.queries, args.seed)
            )
    return out


def run_benchmark(args) -> dict:
    import faiss

    search_threads = args.threads or faiss.omp_get_max_threads()
    build_threads = args.build_threads or faiss.omp_get_max_threads()
    args.threads, args.build_threads = search_threads, build_threads
    rows = []
    for load in datasets(args):
        t0 = time.perf_counter()
        data = load()
        prep_s = time.perf_counter() - t0
        if args.verbose:
            print(f"# {data.size} {data.source}: vectors ready in {prep_s:.1f}s", file=sys.stderr)
        ids = [str(i) for i in range(data.size)]
        exact = GalleryIndex.build(data.base, ids, ids, factory="Flat")
        truth_tune = exact.search(data.tune, K)[1]
        truth_eval = exact.search(data.evals, K)[1]
        del exact
        nlist = ivf_nlist(data.size)
        factories = ["Flat", f"IVF{nlist},Flat", "HNSW32"]
        if args.factories:
            factories = [f for f in factories if any(k in f for k in args.factories)]
        factories += [f.replace("{nlist}", str(nlist)) for f in args.also or ()]
        for factory in factories:
            for row in measure(data, factory, truth_tune, truth_eval, args):
                row["dim"] = int(data.base.shape[1])
                rows.append(row)
                if args.verbose:
                    print(f"# {json.dumps(row)}", file=sys.stderr)
        del data
        gc.collect()
    return {"config": config(args), "results": rows, "ratios": ratios(rows)}


def ratios(rows: list[dict]) -> list[dict]:
    """Single-query p50 of every index at the largest size over Flat at the smallest size
    (testbed vectors when measured there: Flat's cost does not depend on the values)."""
    flats = [r for r in rows if r["factory"] == "Flat"]
    if not flats:
        return []
    smallest = min(r["size"] for r in flats)
    base = next(
        r for r in sorted(flats, key=lambda r: r["source"] != "testbed") if r["size"] == smallest
    )
    largest = max(r["size"] for r in rows)
    out = []
    for r in rows:
        if r["size"] != largest or r["setting"] == "default":
            continue
        out.append(
            {
                "factory": r["factory"],
                "size": r["size"],
                "source": r["source"],
                "baseline": f"Flat at {smallest} ({base['source']})",
                "baseline_ms": base["single_p50_ms"],
                "ratio": r["single_p50_ms"] / base["single_p50_ms"],
                "recall_at_10": r["recall_at_10"],
                "meets_target": bool(
                    r["single_p50_ms"] / base["single_p50_ms"] <= TARGET_RATIO
                    and r["recall_at_10"] >= TARGET_RECALL
                ),
            }
        )
    return out


def config(args) -> dict:
    import faiss

    return {
        "sizes": args.sizes,
        "testbed_max": args.testbed_max,
        "dim": args.dim,
        "k": K,
        "target_recall": args.target,
        "target_ratio": TARGET_RATIO,
        "tune_queries": args.tune_queries,
        "eval_queries": args.queries,
        "batch": args.batch,
        "sources": args.sources,
        "defaults": args.defaults,
        "search_threads": args.threads,
        "build_threads": args.build_threads,
        "faiss": faiss.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def print_table(report: dict) -> None:
    cfg = report["config"]
    print(
        f"Index benchmark: k={cfg['k']} target recall@10 >= {cfg['target_recall']} "
        f"faiss {cfg['faiss']} threads: {cfg['search_threads']} search, "
        f"{cfg['build_threads']} build ({cfg['cpu_count']} cores), "
        f"{cfg['tune_queries']} tuning + {cfg['eval_queries']} evaluation queries, "
        f"batch {cfg['batch']}"
    )
    print(
        f"vectors: testbed = shipped CLIP on testbed images (caption queries), up to "
        f"{cfg['testbed_max']}; fit = Gaussian fitted to those embeddings (caption queries); "
        f"random = random unit vectors, D={cfg['dim']} (random queries)"
    )
    head = (
        f"{'size':>8s} {'vectors':8s} {'factory':15s} {'search param':>14s} {'build s':>8s} "
        f"{'memory':>9s} {'B/vec':>6s} {'1-query p50 ms':>14s} {'p95 ms':>7s} "
        f"{'batch ms/q':>10s} {'recall@10':>9s}"
    )
    print(head)
    for r in report["results"]:
        param = f"{r['param']}={r['value']}" if r["param"] else "-"
        if not r["reached_target"]:
            param += "!"
        elif r["setting"] == "default":
            param += "*"
        print(
            f"{r['size']:8d} {r['source']:8s} {r['factory']:15s} {param:>14s} "
            f"{r['build_s']:8.2f} {human_bytes(r['bytes']):>9s} {r['bytes_per_vector']:6.0f} "
            f"{r['single_p50_ms']:14.3f} {r['single_p95_ms']:7.3f} "
            f"{r['batch_ms_per_query']:10.4f} {r['recall_at_10']:9.3f}"
        )
    if any(not r["reached_target"] for r in report["results"]):
        print("! the largest value tried did not reach the target recall on the tuning queries")
    if any(r["setting"] == "default" for r in report["results"]):
        print("* GalleryIndex's default search parameter, not tuned")
    for q in report["ratios"]:
        verdict = "meets" if q["meets_target"] else "misses"
        print(
            f"{q['factory']} at {q['size']} ({q['source']}): single query "
            f"{q['ratio']:.2f}x {q['baseline']} ({q['baseline_ms']:.3f} ms) at recall@10 "
            f"{q['recall_at_10']:.3f}: {verdict} the target (<= {TARGET_RATIO:.0f}x at "
            f">= {cfg['target_recall']})"
        )


def parse_sizes(text: str) -> list[int]:
    sizes = sorted({int(s.replace("_", "")) for s in text.split(",") if s.strip()})
    if not sizes or sizes[0] < 50:
        raise argparse.ArgumentTypeError("--sizes: give sizes of at least 50, e.g. 10000,100000")
    return sizes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=parse_sizes, default=[10_000, 100_000, 1_000_000])
    p.add_argument(
        "--testbed-max",
        type=int,
        default=10_000,
        help="sizes up to this also run on testbed CLIP embeddings (the rest: random only)",
    )
    p.add_argument("--dim", type=int, default=128, help="dimension of the random vectors")
    p.add_argument("--queries", type=int, default=500, help="evaluation queries (>= 200)")
    p.add_argument("--tune-queries", type=int, default=300, help="queries to tune nprobe/ef")
    p.add_argument("--batch", type=int, default=BATCH, help="batch size of the batched search")
    p.add_argument("--target", type=float, default=TARGET_RECALL, help="recall@10 to tune to")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="faiss (OpenMP) threads while searching; 0 = faiss default (all cores)",
    )
    p.add_argument(
        "--build-threads", type=int, default=0, help="faiss threads while building; 0 = all"
    )
    p.add_argument(
        "--sources",
        type=lambda t: [x for x in t.split(",") if x],
        default=list(SOURCES),
        help="vectors to run, among testbed,fit,random",
    )
    p.add_argument("--factories", nargs="*", help="keep only factories containing one of these")
    p.add_argument(
        "--also",
        nargs="*",
        help='more factory strings to measure, "{nlist}" standing for the IVF list count '
        '(e.g. "IVF{nlist},SQ8" "HNSW32,SQ8")',
    )
    p.add_argument(
        "--defaults",
        action="store_true",
        help="also measure IVF/HNSW at GalleryIndex's default nprobe / efSearch",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="tiny sizes, for smoke tests")
    p.add_argument("--verbose", action="store_true", help="progress lines on stderr")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.testbed_max = [200, 2000], 200
        args.queries, args.tune_queries, args.batch = 64, 32, 32
        args.defaults = True
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    report = run_benchmark(args)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
