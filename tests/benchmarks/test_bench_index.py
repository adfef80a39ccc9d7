"""The index benchmark runs end to end at a tiny size and reports what it promises (no timings)."""

import json

import pytest
from bench_script import load_benchmark

pytest.importorskip("faiss")


def load_bench():
    return load_benchmark("bench_index")


@pytest.fixture(scope="module")
def quick_report():
    bench = load_bench()
    return bench, bench.run_benchmark(bench.parse_args(["--quick"]))


def test_quick_report_covers_every_factory_size_and_source(quick_report):
    _, report = quick_report
    cfg = report["config"]
    for key in ("sizes", "testbed_max", "k", "target_recall", "search_threads", "faiss"):
        assert key in cfg
    rows = report["results"]
    seen = {(r["size"], r["source"], r["factory"].split(",")[0][:3]) for r in rows}
    small, large = cfg["sizes"]
    for source in ("testbed", "fit", "random"):
        for kind in ("Fla", "IVF", "HNS"):
            assert (small, source, kind) in seen
    for source in ("fit", "random"):  # the testbed is embedded only up to --testbed-max
        assert {(large, source, k) for k in ("Fla", "IVF", "HNS")} <= seen
    assert not any(r["size"] == large and r["source"] == "testbed" for r in rows)


def test_quick_report_is_sane(quick_report):
    _, report = quick_report
    for r in report["results"]:
        assert 0.0 <= r["recall_at_10"] <= 1.0
        assert r["build_s"] >= 0 and r["single_p50_ms"] > 0 and r["batch_ms_per_query"] > 0
        assert r["single_p95_ms"] >= r["single_p50_ms"]
        assert r["bytes_per_vector"] >= 4 * r["dim"]  # at least the float32 vectors
        if r["factory"] == "Flat":
            assert r["recall_at_10"] == 1.0 and r["param"] is None and r["setting"] == "exact"
        elif r["factory"].startswith("IVF"):
            assert r["param"] == "nprobe" and 1 <= r["value"] <= int(r["factory"][3:].split(",")[0])
        else:
            assert r["param"] == "efSearch" and r["value"] >= 16
        if r["setting"] == "tuned" and r["reached_target"]:
            assert r["tune_recall"] >= report["config"]["target_recall"]
    # --quick also measures every approximate index at GalleryIndex's default parameters
    tuned = {(r["size"], r["source"], r["factory"]) for r in report["results"] if r["param"]}
    defaults = [r for r in report["results"] if r["setting"] == "default"]
    assert {(r["size"], r["source"], r["factory"]) for r in defaults} == tuned
    assert all(r["value"] == 64 for r in defaults if r["param"] == "efSearch")
    largest = max(report["config"]["sizes"])
    assert {q["factory"].split(",")[0][:3] for q in report["ratios"]} == {"Fla", "IVF", "HNS"}
    for q in report["ratios"]:
        assert q["size"] == largest and q["ratio"] > 0 and q["baseline_ms"] > 0


def test_quick_table_and_json_print(quick_report, capsys):
    bench, report = quick_report
    bench.print_table(report)
    out = capsys.readouterr().out
    assert "1-query p50 ms" in out and "recall@10" in out and "testbed" in out
    assert "single query" in out and "target" in out
    json.loads(json.dumps(report))  # --json output is plain JSON
