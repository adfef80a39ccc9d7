"""STiTch step (a): target descriptions by rules, by an LLM, and by a VLM that sees the image."""

from PIL import Image

from convir.errors import LLMUnavailableError
from convir.models.scripted_llm import ScriptedLLM
from convir.tools.target_descriptions import clauses, rule_descriptions, target_descriptions

CAPTION = (
    "a large red circle at the top left, a small blue square in the center on a white background"
)


def test_clauses_split_at_commas_and_and():
    assert clauses("a red circle, a blue square and a star.") == [
        "a red circle",
        "a blue square",
        "a star",
    ]


def test_rules_keep_the_whole_caption_first_and_sample_the_rest():
    edit = "make the red circle green"
    got = rule_descriptions(CAPTION, edit, 40, seed=3)
    assert got[0] == f"{edit}, {CAPTION}"
    assert len(got) == 40 and all(d.startswith(edit) for d in got)
    assert got == rule_descriptions(CAPTION, edit, 40, seed=3)  # seeded
    touched = sum("large red circle" in d for d in got[1:]) / 39
    untouched = sum("blue square" in d for d in got[1:]) / 39
    assert touched < 0.75 < untouched  # the clause the edit changes is dropped more often


def test_an_llm_writes_them_and_a_vlm_also_sees_the_reference_image():
    reply = {
        "descriptions": [
            "a green circle at the top left",
            "a white picture with a green circle",
            "x",
        ]
    }
    llm = ScriptedLLM([reply, reply])
    found, how = target_descriptions(CAPTION, "make the red circle green", 5, llm=llm)
    assert how == "llm" and len(found) == 5 and "x" not in found  # one-word replies dropped
    assert found[:2] == reply["descriptions"][:2] and found[2] == found[0]
    prompt = llm.calls[0].messages[0]["content"]
    assert CAPTION in prompt and "make the red circle green" in prompt and "5 times" in prompt
    found, how = target_descriptions(
        None, "make it green", 2, llm=llm, reference_image=Image.new("RGB", (8, 8))
    )
    parts = llm.calls[1].messages[0]["content"]
    assert how == "vlm" and [p["type"] for p in parts] == ["text", "image_url"]


def test_a_failing_llm_falls_back_to_rules():
    llm = ScriptedLLM([LLMUnavailableError("down")])
    found, how = target_descriptions(CAPTION, "remove the blue square", 3, llm=llm)
    assert how.startswith("rules (LLM failed") and found == rule_descriptions(
        CAPTION, "remove the blue square", 3
    )
