import json

import pytest
from convir_cli import run_convir

from convir.models.embedder import TESTBED_CHECKPOINT, TESTBED_MODEL


def test_the_demo_runs_on_the_shipped_clip(testbed, world):
    """The shipped CLIP is what the testbed gallery searches with, and it finds what a short
    description names: most of the top 10 for "a red circle" hold one."""
    assert TESTBED_CHECKPOINT.exists(), f"shipped asset missing: {TESTBED_CHECKPOINT}"
    assert testbed.embedder.name == TESTBED_MODEL
    query = testbed.text("a red circle").pooled.numpy()
    top = (testbed.vectors @ query[0]).argsort()[::-1][:10]
    hits = [
        any(o.colour == "red" and o.shape == "circle" for o in world.scene(int(i)).objects)
        for i in top
    ]
    assert sum(hits) >= 5, hits


def test_demo_json_reports_cumulative_hits_per_round():
    """The default strategy (auto: DAR for described targets) with generation, small."""
    proc = run_convir(
        "demo", "--dialogues", 16, "--rounds", 4, "--gallery-size", 300, "--json", timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert set(out) == {"hits_at_10", "strategy", "dialogues"}
    assert out["strategy"] == "dar"
    hits = out["hits_at_10"]
    assert len(hits) == 5 and out["dialogues"] == 16
    assert hits[0] > 10 / 300  # a partial caption already beats chance
    assert hits[-1] > hits[0]  # and four answers find more targets than the opening alone


def test_demo_rejects_bad_arguments():
    proc = run_convir("demo", "--dialogues", 0, timeout=60)
    assert proc.returncode == 2 and "--dialogues" in proc.stderr


def test_demo_stitch_prints_a_transcript_with_ot_rerank():
    proc = run_convir(
        "demo",
        "--strategy",
        "stitch",
        "--dialogues",
        6,
        "--rounds",
        2,
        "--gallery-size",
        300,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "ot_rerank (ct: 5 descriptions x 11 views): top 50 rescored" in proc.stdout
    assert "refine_query (5 target descriptions by rules)" in proc.stdout
    assert "Hits@10 per round over 6 dialogues, gallery of 300" in proc.stdout
    hits = [float(x.split("=")[1]) for x in proc.stdout.split()[-3:]]
    assert hits[-1] > 0.5  # composed queries find most targets (chance: 10 / 299)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--strategy", "best"), "--strategy must be auto, dar, stitch or text"),
        (("--policy", "magic"), "--policy must be rules or llm"),
        (("--dialogues", 1000), "--dialogues must be between 1 and 250"),
    ],
)
def test_demo_option_errors_are_one_line(args, message):
    proc = run_convir("demo", *args, timeout=60)
    assert proc.returncode == 2 and proc.stderr.startswith(f"error: {message}")
