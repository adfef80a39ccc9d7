"""`convir eval composed --json` on the testbed: named stages through the agent."""

import json

from typer.testing import CliRunner

from convir.cli import app


def test_composed_prints_each_stage_and_the_ideal_ceiling():
    args = ["eval", "composed", "--gallery-size", "200", "--limit", "24", "--json",
            "--stages", "caption,+image-transition,stitch,stitch-token-ot"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["queries"] == 24 and out["gallery"] == 200
    assert list(out["stages"]) == ["caption", "+image-transition", "stitch", "stitch-token-ot"]
    for table in (out["stages"], out["ideal"]):
        for r in table.values():
            assert set(r) == {"r1", "r10", "r50"} and 0 <= r["r1"] <= r["r10"] <= r["r50"] <= 1
    # far above chance (10 / 199 at R@10), and the true captions beat the rule-written ones
    assert all(r["r10"] > 0.5 for r in out["stages"].values())
    assert out["ideal"]["caption"]["r1"] > out["stages"]["caption"]["r1"]


def test_unknown_stages_are_refused_before_any_work():
    result = CliRunner().invoke(app, ["eval", "composed", "--stages", "caption,magic"])
    assert result.exit_code != 0 and "unknown magic" in str(result.exception)
