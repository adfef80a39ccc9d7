"""Prompt templates: shipped, versioned, strictly rendered."""

import tomllib
from pathlib import Path

import pytest

from convir.errors import InputError
from convir.prompts import Prompt, _parse, list_prompts, load_prompt

TOOLS = ("refine_query", "generate_images", "retrieve", "ask_clarification", "ot_rerank")


def test_the_shipped_prompts_load_with_versions_and_variables():
    assert list_prompts() == [
        "ask_question",
        "dar_refine",
        "policy_action",
        "stitch_target_descriptions",
        "user_answer",
        "user_answer_image",
    ]
    variables = {
        "dar_refine": ("dialogue",),
        "stitch_target_descriptions": ("reference_caption", "edit", "k"),
        "ask_question": ("dialogue", "candidates"),
        "policy_action": ("state",),
        "user_answer": ("caption", "question"),
        "user_answer_image": ("question", "options"),
    }
    for name, expected in variables.items():
        p = load_prompt(name)
        assert isinstance(p, Prompt) and p.version >= 1 and p.description
        assert p.variables == expected and p.id == f"{name}@v{p.version}"
        assert not p.template.startswith("#")


def test_render_fills_every_slot_once_and_keeps_dollars_in_values():
    p = load_prompt("stitch_target_descriptions")
    text = p.render(reference_caption="a red circle", edit="make it $blue", k=5)
    assert "Caption of the reference image: a red circle" in text
    assert "Requested modification: make it $blue" in text
    assert "$" not in text.replace("$blue", "")


def test_policy_prompt_names_every_tool_and_strategy():
    text = load_prompt("policy_action").render(state="round 2; 3 close candidates")
    for word in (*TOOLS, "dar", "stitch", '"reason"', "round 2; 3 close candidates"):
        assert word in text


def test_missing_extra_and_none_variables_are_errors():
    p = load_prompt("ask_question")
    with pytest.raises(InputError, match=r"ask_question@v2.*missing candidates"):
        p.render(dialogue="a red circle")
    with pytest.raises(InputError, match="unexpected dialog"):
        p.render(dialogue="d", candidates="c", dialog="typo")
    with pytest.raises(InputError, match="None for candidates"):
        p.render(dialogue="d", candidates=None)


def test_unknown_prompt_lists_the_available_ones():
    with pytest.raises(InputError, match="available: ask_question, dar_refine"):
        load_prompt("nope")
    with pytest.raises(InputError):
        load_prompt("../errors")


def test_template_checks_at_load_time():
    ok = _parse("t", '# version: 3\n# variables: a\nJSON {"x": 1} costs $$5 for $a\n')
    assert ok.version == 3 and ok.render(a="b") == 'JSON {"x": 1} costs $5 for b\n'
    with pytest.raises(InputError, match="version"):
        _parse("t", "# variables: a\n$a\n")
    with pytest.raises(InputError, match="declares"):
        _parse("t", "# version: 1\n# variables: a\n$a and $b\n")
    with pytest.raises(InputError, match=r"\$\$"):
        _parse("t", "# version: 1\ncosts $ 5\n")


def test_prompt_files_are_package_data():
    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["convir"]
    assert {"prompts/*.txt", "prompts/*.md"} <= set(globs)
