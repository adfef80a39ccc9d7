import json

import pytest
from convir_cli import run_convir

from convir.models.embedder import TESTBED_CHECKPOINT


@pytest.mark.skipif(not TESTBED_CHECKPOINT.exists(), reason="testbed CLIP not trained yet")
def test_demo_json_reports_cumulative_hits_per_round():
    proc = run_convir(
        "demo", "--dialogues", 40, "--rounds", 4, "--gallery-size", 300, "--json", timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert set(out) == {"hits_at_10", "strategy", "dialogues"}
    hits = out["hits_at_10"]
    assert len(hits) == 5 and out["dialogues"] == 40
    assert all(b >= a for a, b in zip(hits, hits[1:], strict=False)), "cumulative hits cannot drop"
    assert hits[0] > 10 / 300  # a partial caption already beats chance


def test_demo_rejects_bad_arguments():
    proc = run_convir("demo", "--dialogues", 0, timeout=60)
    assert proc.returncode == 2 and "--dialogues" in proc.stderr
