"""The evaluation and per-turn benchmarks run end to end at a tiny size (no timings checked)."""

from bench_script import load_benchmark


def test_bench_eval_threaded_and_single_runs_agree():
    report = load_benchmark("bench_eval").main(
        ["--dialogues", "4", "--rounds", "1", "--gallery-size", "200", "--workers", "2", "--json"]
    )
    assert report["identical_run_files"] is True
    assert report["threaded_s"] > 0 and report["single_s"] > 0 and report["speedup"] > 0


def test_bench_turn_reports_every_node_of_the_text_pipeline():
    report = load_benchmark("bench_turn").main(
        [
            "--gallery-size",
            "200",
            "--dialogues",
            "2",
            "--rounds",
            "1",
            "--strategies",
            "text",
            "--json",
        ]
    )
    rows = report["strategies"]["text"]
    assert {"receive", "policy", "refine_query", "retrieve", "ask_clarification", "turn"} <= set(
        rows
    )
    assert rows["turn"]["calls"] == 4 and rows["turn"]["p99_ms"] >= rows["turn"]["p50_ms"] > 0
