"""`convir eval run`: the files it writes on a tiny testbed, and one-line option errors."""

import json
import math

import pytest
from convir_cli import run_convir
from PIL import Image
from typer.testing import CliRunner

from convir.cli import app
from convir.evaluation.runfile import read_chatir_run
from convir.evaluation.scoring import score_chatir

TINY = ("--gallery-size", "100", "--dialogues", "4", "--rounds", "2", "--seed", "0")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One in-process run (the embedder then stays loaded for the other tests)."""
    out = tmp_path_factory.mktemp("eval") / "out"
    args = ["eval", "run", *TINY, "--workers", "2", "--no-progress", "--out", str(out), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


def test_run_writes_run_file_summary_and_plot(tiny_run):
    out, printed = tiny_run
    assert sorted(p.name for p in out.iterdir()) == [
        "concat.run.jsonl",
        "config.json",
        "dialogues.jsonl",
        "hits_at_10.png",
        "summary.json",
    ]
    summary = json.loads((out / "summary.json").read_text())
    assert summary == printed
    text = summary["concat"]
    assert set(text) >= {"hits_at_10", "recall_at_10", "bri", "dialogues"}
    assert text["dialogues"] == 4 and len(text["hits_at_10"]) == len(text["recall_at_10"]) == 3
    assert text["hits_at_10"] == sorted(text["hits_at_10"])  # cumulative
    assert all(0 <= h <= 1 for h in text["hits_at_10"] + text["recall_at_10"])
    assert 0 <= text["bri"] <= math.log(101)
    run = read_chatir_run(out / "concat.run.jsonl")
    assert len(run.dialogue_ids) == 4 and run.rounds == 3
    scores = score_chatir(run, 10, 100)
    assert [round(h, 4) for h in scores.hits_at_k] == text["hits_at_10"]
    assert round(scores.bri, 4) == text["bri"]
    with Image.open(out / "hits_at_10.png") as img:
        img.verify()
        assert img.format == "PNG"


def test_same_seed_same_run_file(tiny_run, tmp_path):
    out, _ = tiny_run
    again = tmp_path / "again"
    args = ["eval", "run", *TINY, "--workers", "1", "--no-progress", "--out", str(again)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Hits@10 per round (4 dialogues, gallery 100)" in result.stdout
    assert (again / "concat.run.jsonl").read_text() == (out / "concat.run.jsonl").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--rounds", "-1"), "--rounds must be between 0 and 50"),
        (("--dialogues", "101", "--gallery-size", "100"), "--dialogues must be between 1"),
        (("--gallery-size", "10"), "--gallery-size must be between 100"),
        (("--error-rate", "1.5"), "--error-rate must be between 0 and 1"),
        (("--workers", "0"), "--workers must be between 1 and 64"),
        (("--strategy", "text", "--strategy", "text"), "--strategy repeats a value"),
        (("--strategy", "stitch"), "--strategy stitch needs composed queries"),
        (("--benchmark", "chatir"), "--benchmark chatir needs --index"),
        (("--agent-config", "no_such=1"), "--agent-config 'no_such=1': give KEY=VALUE"),
        (("--agent-config", "dar_image_weight_early=2"), "--agent-config: Input should be"),
    ],
)
def test_bad_options_are_one_line_errors(args, message, tmp_path):
    proc = run_convir("eval", "run", "--out", tmp_path / "o", *args)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: {message}") and proc.stderr.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_out_must_be_a_folder(tmp_path):
    (tmp_path / "file").write_text("x")
    proc = run_convir("eval", "run", "--out", tmp_path / "file")
    assert proc.returncode == 2 and "--out" in proc.stderr and "is a file" in proc.stderr


def test_agent_systems_with_both_questioners_are_labelled_and_scored(tmp_path):
    args = ["eval", "run", *TINY, "--strategy", "concat", "--strategy", "text"]
    args += ["--questions", "info_gain", "--questions", "random", "--no-progress"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert list(summary) == ["concat", "text-info_gain", "text-random"]
    assert summary["text-random"]["questions"] == "random"
    assert summary["text-info_gain"]["policy"] == "rules"
    for label in summary:
        run = read_chatir_run(tmp_path / f"{label}.run.jsonl")
        assert run.rounds == 3 and len(run.dialogue_ids) == 4


def test_agent_config_knobs_are_typed_and_reach_the_agents(monkeypatch, tmp_path):
    from convir.evaluation import experiment

    assert experiment.agent_knobs(["dar_image_weight_early=0.1", "pool=50"]) == {
        "dar_image_weight_early": 0.1,
        "pool": 50,
    }
    seen = []
    real = experiment.agent_factory("batched")
    monkeypatch.setattr(
        experiment, "agent_factory", lambda s: lambda *a, **k: seen.append(k) or real(*a, **k)
    )
    args = ["eval", "run", *TINY, "--strategy", "text", "--agent-config", "pool=50"]
    args += ["--workers", "1", "--no-progress", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert seen and all(k["pool"] == 50 for k in seen)


def test_both_engines_give_the_same_dialogues(tmp_path):
    """The batched engine (default) runs the agent's nodes without LangGraph, a round of
    all dialogues per call; the graph engine runs the chat/server agent. Same run files
    here (a batched text forward pass may round differently elsewhere)."""
    from convir.evaluation import experiment

    assert experiment.agent_factory("batched").__name__ == "build_batched_agent"
    args = ["eval", "run", "--gallery-size", "150", "--dialogues", "12", "--rounds", "3"]
    args += ["--strategy", "text", "--no-progress", "--json"]
    runs = {}
    for engine in ("batched", "graph"):
        out = tmp_path / engine
        result = CliRunner().invoke(app, [*args, "--engine", engine, "--out", str(out)])
        assert result.exit_code == 0, result.output
        runs[engine] = (json.loads(result.stdout)["text"], (out / "text.run.jsonl").read_text())
    assert runs["batched"][0]["hits_at_10"] == runs["graph"][0]["hits_at_10"]
    assert runs["batched"][1] == runs["graph"][1]


def test_convirs_own_warnings_are_one_line_each(tmp_path):
    """The concat baseline's joined dialogues outgrow the tokenizer: the user reads one
    ``warning:`` line, not Python's file:line header and source line."""
    proc = run_convir(
        "eval", "run", "--gallery-size", 100, "--dialogues", 20, "--rounds", 10,
        "--no-progress", "--json", "--out", tmp_path / "o",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == [lines[0]] and lines[0].startswith("warning: ") and "cut" in lines[0]
    assert "UserWarning" not in proc.stderr
