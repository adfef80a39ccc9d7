"""The set-score benchmark runs and reports every score against its peer."""

from bench_script import load_benchmark


def test_bench_set_scores_reports_each_score_and_the_peer_ratio(capsys):
    report = load_benchmark("bench_set_scores").main(["--quick", "--json"])
    assert [r["score"] for r in report["rows"]] == ["ct", "sinkhorn", "token-ot (peer)"]
    assert all(r["ms"] > 0 and r["n"] == 50 and r["views"] == 11 for r in report["rows"])
    assert report["rows"][-1]["vs_peer"] == 1.0
