"""The real-size benchmark runs end to end at a tiny size (no timings checked)."""

from bench_script import load_benchmark


def test_bench_real_size_reports_indexing_turn_steps_and_memory():
    report = load_benchmark("bench_real_size").main(["--quick", "--json"])
    assert report["config"]["dim"] == 512
    index = report["indexing"]
    assert index["images"] == 16 and index["forward_img_per_s"] > 0
    steps = {r["step"]: r["ms"] for r in report["per_turn_ms"]}
    assert len(steps) == 7 and all(ms > 0 for ms in steps.values())
    memory = {r["stored"]: r["mb"] for r in report["memory_mb"]}
    assert memory["patch features x49, float16"] > memory["pooled vectors, float32 (Flat)"]
