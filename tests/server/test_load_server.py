"""benchmarks/load_server.py against a real server: it reports turns, latencies and errors."""

import importlib.util
from pathlib import Path

import pytest

FASTAPI = pytest.importorskip("fastapi", reason="needs the server extra: pip install '.[server]'")
SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "load_server.py"


@pytest.fixture(scope="module")
def load_server():
    spec = importlib.util.spec_from_file_location("load_server", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_percentiles_are_nearest_rank(load_server):
    values = [float(v) for v in range(1, 101)]
    assert load_server.percentile(values, 50) == 50.0
    assert load_server.percentile(values, 99) == 99.0
    assert load_server.percentile([3.0], 99) == 3.0


def test_a_short_load_run_counts_turns_and_no_errors(load_server, serve_cli):
    with serve_cli("--checkpoint", "memory") as (url, _):
        figures = load_server.run(url, sessions=3, duration=4, turns=3, headers={})
    assert figures["errors"] == 0 and figures["turns"] >= 3
    assert 0 < figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"]
    assert figures["gallery_size"] == 60 and figures["strategy"] == "text"
    assert figures["server_cpu_ms_per_turn"] is None  # no pid given: not measured
    both = load_server.pooled([figures, figures])  # --rounds: runs of one setup as one
    assert both["turns"] == 2 * figures["turns"] and both["runs"] == 2
    assert both["turns_per_s"] == round(2 * figures["turns"] / (2 * figures["wall_s"]), 2)
    assert both["p50_ms"] == figures["p50_ms"] and both["p99_ms"] == figures["p99_ms"]


def test_server_cpu_is_counted_over_the_process_tree(load_server):
    import os

    assert load_server.tree_cpu_s(os.getpid()) > 0
    assert load_server.tree_cpu_s(None) is None
