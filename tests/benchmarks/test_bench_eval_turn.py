"""The evaluation and per-turn benchmarks run end to end at a tiny size (no timings checked)."""

from bench_script import load_benchmark


def test_bench_eval_compares_every_way_with_the_unbatched_loop():
    report = load_benchmark("bench_eval").main(
        ["--dialogues", "4", "--rounds", "1", "--gallery-size", "200", "--workers", "2", "--json"]
    )
    concat, text = report["systems"]["concat"], report["systems"]["text"]
    assert list(concat) == ["unbatched loop", "batched rounds", "threads"]
    assert list(text) == ["unbatched loop", "batched rounds", "threads"]
    assert text["batched rounds"]["same_hits_at_10"] and report["agent_vs_concat"]["text"] > 0
    for rows in (concat, text):
        assert rows["unbatched loop"]["vs_unbatched"] == 1.0
        assert rows["threads"]["identical_run_files"] is True
        for r in rows.values():
            assert r["seconds"] > 0 and r["dialogues_per_s"] > 0 and r["same_hits_at_10"]


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
