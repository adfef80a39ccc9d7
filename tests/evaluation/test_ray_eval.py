"""``convir eval run --ray`` on a local Ray cluster writes the run files one process writes,
byte for byte (every dialogue is seeded by its id, chunks are merged in order)."""

import json

import pytest
from typer.testing import CliRunner

from convir.cli import app
from convir.evaluation.ray_eval import chunks

TINY = ("--gallery-size", "100", "--dialogues", "4", "--rounds", "2", "--seed", "0")
SYSTEMS = ("--strategy", "concat", "--strategy", "text", "--no-progress", "--json")


@pytest.mark.slow
def test_ray_run_files_are_identical(ray_local, tmp_path):
    one, ray = tmp_path / "one", tmp_path / "ray"
    result = CliRunner().invoke(app, ["eval", "run", *TINY, *SYSTEMS, "--out", str(one)])
    assert result.exit_code == 0, result.output
    args = ["eval", "run", *TINY, *SYSTEMS, "--out", str(ray), "--ray", "--ray-actors", "2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    for label in ("concat", "text"):
        assert (ray / f"{label}.run.jsonl").read_bytes() == (
            one / f"{label}.run.jsonl"
        ).read_bytes()
    drop = lambda summary: {k: {**v, "seconds": 0} for k, v in summary.items()}  # noqa: E731
    read = lambda folder: json.loads((folder / "summary.json").read_text())  # noqa: E731
    assert drop(read(ray)) == drop(read(one))


def test_chunks_are_contiguous_and_cover_everything():
    ids = [str(i) for i in range(7)]
    assert chunks(ids, 3) == [["0", "1", "2"], ["3", "4"], ["5", "6"]]
    assert chunks(ids[:2], 5) == [["0"], ["1"]]
    assert sum(chunks(ids, 4), []) == ids
