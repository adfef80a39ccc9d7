"""Plug-ins by import path (``convir.plugins``): clear errors, and a policy, a question bank
and a simulated user of one's own running end to end in `convir eval run` and `convir chat`."""

import json
import subprocess
import sys
from pathlib import Path

import plugin_examples
import pytest
from typer.testing import CliRunner

from convir.cli import app
from convir.errors import InputError
from convir.evaluation.runfile import read_chatir_run
from convir.plugins import build, load_class

TESTS = Path(__file__).resolve().parent
TINY = ["eval", "run", "--gallery-size", "100", "--dialogues", "4", "--rounds", "2"]


@pytest.mark.parametrize(
    ("path", "kind", "message"),
    [
        ("plugin_examples.OneQuestion", "questions", "give package.module:Class"),
        ("no_such_module_xyz:Bank", "questions", "no module 'no_such_module_xyz' to import"),
        ("plugin_examples:Missing", "questions", "module plugin_examples has no 'Missing'"),
        ("plugin_examples:not_a_class", "policy", "not_a_class is not a class (type int)"),
        (
            "plugin_examples:NoMenu",
            "questions",
            "NoMenu is not a QuestionBank: it lacks menu(dialogue, candidates) -> list[Askable]",
        ),
        ("plugin_examples:OneQuestion", "policy", "OneQuestion is not a Policy: it lacks decide"),
        ("plugin_examples:NeverAsk", "user", "lacks opening(dialogue_id)"),
    ],
)
def test_bad_paths_and_classes_are_clear_errors(path, kind, message):
    with pytest.raises(InputError, match="^--" + kind) as err:
        load_class(path, kind)
    assert message in str(err.value)


def test_a_module_that_fails_to_import_says_why(tmp_path, monkeypatch):
    (tmp_path / "broken_bank.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(InputError, match="importing broken_bank failed: RuntimeError: boom"):
        load_class("broken_bank:Bank", "questions")


def test_a_class_that_needs_arguments_says_how_to_fix_it():
    cls = load_class("plugin_examples:NeedsArguments", "questions")
    with pytest.raises(InputError, match="define a classmethod from_resources"):
        build(cls, "plugin_examples:NeedsArguments", "questions", resources=None)


def test_eval_run_with_own_bank_and_user(tmp_path):
    """Two questioners compared in one run, the plug-in bank built from the gallery, and a
    user of one's own answering every dialogue."""
    plugin_examples.BuiltFromGallery.built_with.clear()
    args = [*TINY, "--strategy", "text", "--questions", "info_gain"]
    args += ["--questions", "plugin_examples:BuiltFromGallery"]
    args += ["--user", "plugin_examples:ShyUser", "--no-progress", "--out", str(tmp_path), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert list(summary) == ["text-info_gain", "text-BuiltFromGallery"]
    assert summary["text-BuiltFromGallery"]["questions"] == "plugin_examples:BuiltFromGallery"
    assert plugin_examples.BuiltFromGallery.built_with == [100]
    lines = [json.loads(x) for x in (tmp_path / "dialogues.jsonl").read_text().splitlines()]
    own = [x for x in lines if x["system"] == "text-BuiltFromGallery"]
    assert len(own) == 4
    for dialogue in own:
        assert dialogue["turns"][0]["question"] == plugin_examples.ASKED
        assert {t["answer"] for t in dialogue["turns"]} == {"i don't know"}
    assert read_chatir_run(tmp_path / "text-BuiltFromGallery.run.jsonl").rounds == 3
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["user"]["class"] == "plugin_examples.ShyUser"


def test_eval_run_with_own_policy(tmp_path):
    args = [*TINY, "--strategy", "text", "--policy", "plugin_examples:NeverAsk"]
    result = CliRunner().invoke(app, [*args, "--no-progress", "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["text"]["policy"] == "plugin_examples:NeverAsk"
    lines = [json.loads(x) for x in (tmp_path / "dialogues.jsonl").read_text().splitlines()]
    assert [x["turns"] for x in lines] == [[]] * 4  # it never asks, so nobody answers
    run = read_chatir_run(tmp_path / "text.run.jsonl")
    assert all(r[0] == r[1] == r[2] for r in run.rankings)  # nothing new to search with


def cli(*args, cwd, stdin="", timeout=180):
    return subprocess.run(
        [sys.executable, "-m", "convir.cli", *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


def test_eval_run_refuses_a_bad_plug_in_before_any_model_loads(tmp_path):
    proc = cli(*TINY, "--strategy", "text", "--questions", "plugin_examples:NoMenu", "--out",
               tmp_path, cwd=TESTS, timeout=60)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: --questions plugin_examples:NoMenu: NoMenu is not a QuestionBank: it lacks "
        "menu(dialogue, candidates) -> list[Askable]"
    ]
    assert not (tmp_path / "config.json").exists()


def test_chat_asks_from_a_bank_in_the_current_directory():
    """`convir chat --questions module:Class` finds the module in the current directory."""
    proc = cli("chat", "--gallery-size", "200", "--no-generate", "--strategy", "text",
               "--questions", "plugin_examples:OneQuestion", cwd=TESTS,
               stdin="a blue square\nyes\n")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"convir> {plugin_examples.ASKED}" in proc.stdout
    bad = cli("chat", "--policy", "plugin_examples:NoMenu", cwd=TESTS, timeout=60)
    assert bad.returncode == 2 and "NoMenu is not a Policy: it lacks decide" in bad.stderr
    serve = cli("serve", "--questions", "plugin_examples:NeverAsk", cwd=TESTS, timeout=60)
    assert serve.returncode == 2 and serve.stderr.strip() == (
        "error: --questions plugin_examples:NeverAsk: NeverAsk is not a QuestionBank: it lacks "
        "menu(dialogue, candidates) -> list[Askable]"
    )


def test_the_docs_question_bank_runs_and_compares_from_the_current_directory(tmp_path):
    """docs/evaluation.md's 20-line bank, saved as my_bank.py: run beside random questions
    through the real entry point, then `convir eval compare` on the two run files."""
    docs = (TESTS.parent / "docs" / "evaluation.md").read_text()
    code = docs.split("```python\n# my_bank.py\n", 1)[1].split("```", 1)[0]
    (tmp_path / "my_bank.py").write_text(code)
    proc = cli(*TINY, "--strategy", "text", "--questions", "random", "--questions",
               "my_bank:PairBank", "--no-progress", "--out", "run", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = (tmp_path / "run" / "dialogues.jsonl").read_text().splitlines()
    asked = [t["question"] for x in map(json.loads, lines) if x["system"] == "text-PairBank"
             for t in x["turns"]]  # fmt: skip
    assert asked and all(q.startswith("is there a ") for q in asked)
    runs = [tmp_path / "run" / f"text-{m}.run.jsonl" for m in ("random", "PairBank")]
    proc = cli("eval", "compare", *runs, "--json", "--missing-rank", "100", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    compared = json.loads(proc.stdout)
    assert compared["dialogues"] == 4 and len(compared["rounds"]) == 3
    assert compared["rounds"][0]["hits_at_10"]["diff"] == 0  # same opening, same ranking
