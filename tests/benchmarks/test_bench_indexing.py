"""The indexing benchmark runs end to end on a tiny folder and reports what it promises
(no timings)."""

import json

import pytest
from bench_script import load_benchmark

pytest.importorskip("faiss")


def load_bench():
    return load_benchmark("bench_indexing")


def test_quick_json_compares_convir_index_with_the_forward_pass(tmp_path, capsys):

    bench = load_bench()
    folder = tmp_path / "gallery"
    bench.main(["--quick", "--json", "--folder", str(folder), "--workers", "2"])
    report = json.loads(capsys.readouterr().out)
    assert len(list((folder / "images").rglob("*.png"))) == 100  # convir testbed make wrote it
    cfg = report["config"]
    assert cfg["images"] == 100 and cfg["workers"] == 2 and cfg["batch_size"] >= 1
    assert 0 <= cfg["decode_threads"] <= 2
    rows = {r["method"]: r for r in report["results"]}
    assert {"forward only", "convir index", "embed_images", "decode only (1 thread)"} <= set(rows)
    for r in rows.values():
        assert r["median_s"] > 0 and r["images_per_s"] > 0 and r["ratio_to_forward"] > 0
        assert r["cpu_s"] >= 0
    assert rows["forward only"]["ratio_to_forward"] == pytest.approx(1.0)
    assert report["ratio"] == rows["convir index"]["ratio_to_forward"] > 0
    assert isinstance(report["meets_target"], bool)
    bench.print_table(report)
    assert "% of the bare forward pass" in capsys.readouterr().out
