"""The OT benchmark runs end to end at a tiny size and reports what it promises (no timings)."""

import json

import pytest
from bench_script import load_benchmark

pytest.importorskip("ot")


def load_bench():
    return load_benchmark("bench_ot")


def test_quick_json_reports_every_method_with_accuracy(capsys):
    bench = load_bench()
    bench.main(["--quick", "--json", "--tol", "1e-6", "--repeats", "1"])
    report = json.loads(capsys.readouterr().out)
    cfg = report["config"]
    for key in ("reg", "tol", "dtype", "device", "torch_threads", "pot", "pot_batch_solver"):
        assert key in cfg
    assert cfg["pot_batch_solver"] in ("present", "absent")
    methods = {r["method"] for r in report["results"]}
    assert any(m.startswith("POT loop, sinkhorn ") for m in methods)
    assert any(m.startswith("POT loop, sinkhorn_log") for m in methods)
    assert any(m.startswith("POT solve_batch") for m in methods)
    assert any(m.startswith("convir") for m in methods)
    for row in report["results"]:
        assert {"size", "method", "median_ms", "runs", "speedup", "max_rel_err", "status"} <= set(
            row
        )
        if row["status"] == "ok":
            assert row["median_ms"] > 0 and row["speedup"] > 0
            assert row["max_rel_err"] < 1e-4  # every solver converged to the same costs


def test_quick_table_has_a_header_and_the_target(capsys):
    load_bench().main(
        [
            "--quick",
            "--tol",
            "1e-6",
            "--repeats",
            "1",
            "--methods",
            "sinkhorn (",
            "convir sinkhorn_cost",
        ]
    )
    out = capsys.readouterr().out
    assert "median ms" in out and "speed-up" in out and "max rel err" in out
    assert "convir sinkhorn_cost" in out and ">= 20x" in out


def test_skip_slow_keeps_the_baseline_and_marks_matched_accuracy(capsys):
    bench = load_bench()
    bench.main(["--quick", "--json", "--tol", "1e-6", "--convir-tol", "1e-6", "--repeats", "1",
                "--skip-slow"])  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    methods = [r["method"] for r in report["results"]]
    assert not any("sinkhorn_log" in m or "solve_batch" in m or "lse" in m for m in methods)
    assert methods[0].startswith("POT loop, sinkhorn ")
    assert any("tol matched" in m for m in methods)
    two = [r for r in report["results"] if r["method"].endswith("2 threads")]
    assert two and all(r["torch_threads"] == 2 for r in two)
    for r in report["results"]:
        assert r["err_le_pot_loop"] in (True, False)
    assert report["config"]["torch_threads"] == 1  # restored after the 2-thread rows
