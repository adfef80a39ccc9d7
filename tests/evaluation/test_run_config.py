"""config.json: what a run was, and `convir eval run --config` rerunning it byte for byte;
intervals in summary.json."""

import hashlib
import json

import pytest
from convir_cli import run_convir
from typer.testing import CliRunner

from convir.cli import app
from convir.errors import InputError
from convir.evaluation.run_config import RunOptions, file_record, read_config
from convir.models.embedder import TESTBED_CHECKPOINT
from convir.state import AgentConfig

ARGS = ["eval", "run", "--gallery-size", "100", "--dialogues", "6", "--rounds", "2"]
ARGS += ["--strategy", "concat", "--strategy", "text", "--agent-config", "pool=50"]
ARGS += ["--error-rate", "0.2", "--seed", "3", "--resamples", "300", "--no-progress"]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    out = tmp_path_factory.mktemp("recorded") / "run"
    result = CliRunner().invoke(app, [*ARGS, "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


def test_config_records_what_the_run_was(recorded):
    out, _ = recorded
    config = json.loads((out / "config.json").read_text())
    options = config["options"]
    assert options["seed"] == 3 and options["error_rate"] == 0.2 and options["rounds"] == 2
    assert options["strategies"] == ["concat", "text"] and options["agent_config"] == ["pool=50"]
    agent = config["systems"]["text"]
    assert agent["system"] == "agent" and agent["policy"] == "rules"
    assert set(agent["agent_config"]) == set(AgentConfig.model_fields)  # every knob
    assert agent["agent_config"]["pool"] == 50 and agent["agent_config"]["seed"] == 3
    assert agent["agent_config"]["strategy"] == "text"
    assert config["systems"]["concat"] == {"system": "concat", "questions": "random"}
    assert config["user"] == {
        "class": "convir.evaluation.users.TestbedUser",
        "error_rate": 0.2,
        "seed": 3,
    }
    assert config["seeds"] == {"run": 3, "bootstrap": 0}
    embedder = config["models"]["embedder"]
    digest = hashlib.sha256(TESTBED_CHECKPOINT.read_bytes()).hexdigest()
    assert embedder["files"] == {"path": str(TESTBED_CHECKPOINT), "sha256": digest}
    versions = config["versions"]
    for name in ("convir", "torch", "open_clip", "faiss", "langgraph", "transformers"):
        assert versions[name], name
    assert len(versions.get("git_commit", "0" * 40)) == 40
    assert config["command"].startswith("convir eval run --strategy concat --strategy text")
    assert str(out) not in json.dumps(config)  # nothing that names the output folder


def test_summary_has_intervals_around_each_value(recorded):
    _, summary = recorded
    for entry in summary.values():
        assert entry["bootstrap"] == {"resamples": 300, "seed": 0}
        for key in ("hits_at_10", "recall_at_1"):
            assert len(entry[f"{key}_ci"]) == 3
            for value, (lo, hi) in zip(entry[key], entry[f"{key}_ci"], strict=True):
                assert 0 <= lo <= value <= hi <= 1
        assert entry["bri_ci"][0] <= entry["bri"] <= entry["bri_ci"][1]


def test_config_reruns_byte_identically(recorded, tmp_path):
    out, summary = recorded
    again = tmp_path / "again"
    args = ["eval", "run", "--config", str(out / "config.json"), "--out", str(again), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    for name in ("concat.run.jsonl", "text.run.jsonl", "dialogues.jsonl", "config.json"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name
    drop = lambda s: {k: {**v, "seconds": 0} for k, v in s.items()}  # noqa: E731
    assert drop(json.loads(result.stdout)) == drop(summary)
    assert "concat.run.jsonl identical, text.run.jsonl identical" in result.stderr


def test_config_takes_no_other_result_options(recorded):
    out, _ = recorded
    proc = run_convir("eval", "run", "--config", out / "config.json", "--rounds", "5")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: --config reruns a recorded run as it was; drop --rounds")
    proc = run_convir("eval", "run", "--config", out / "nothing.json")
    assert proc.returncode == 2 and "no such file" in proc.stderr
    proc = run_convir("eval", "run", "--rounds", "2")
    assert proc.returncode == 2 and "give --out DIR" in proc.stderr


def test_a_changed_data_file_refuses_the_rerun(tmp_path):
    annotations = tmp_path / "items.jsonl"
    annotations.write_text('{"id": "a", "captions": ["x", "y"]}\n')
    options = RunOptions(benchmark="captions", annotations=str(annotations))
    record = {"format": 1, "options": options.as_json()}
    record["files"] = {"annotations": file_record(annotations)}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(record))
    assert read_config(path)[0] == options
    annotations.write_text('{"id": "a", "captions": ["x", "z"]}\n')
    with pytest.raises(InputError, match=r"annotations .*items.jsonl is missing or changed"):
        read_config(path)


def test_command_line_of_the_options():
    options = RunOptions(strategies=("concat", "text"), seed=1, via_index=True)
    assert options.command() == (
        "convir eval run --strategy concat --strategy text --questions info_gain --seed 1 "
        "--via-index"
    )
    assert RunOptions.from_json(options.as_json(), "x") == options
