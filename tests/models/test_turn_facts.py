"""Free-form question/answer turns become grammatical facts (people's words, not templates)."""

import json
import re
from pathlib import Path

import pytest

from convir.models.refiner import split_turn, turn_to_fact

VISDIAL = (
    Path(__file__).resolve().parents[3] / "shared/benchmarks/chatir/VisDial_v1.0_queries_val.json"
)
# A fact that still reads as a question's fragment: an auxiliary or wh-word first, a pronoun
# subject, a dangling function word last, or a question mark.
FRAGMENT = re.compile(
    r"^(is|are|does|do|can|was|were|has|have|what|how|where|which|who|any|he|she|it|they|you|i)\b"
    r"|\b(a|an|the|of|in|on|at|to|with|and|or)$|\?"
)


@pytest.mark.parametrize(
    ("question", "answer", "want"),
    [
        ("is the bus red", "yes", "a red bus"),
        ("is she wearing a skirt", "yes", "a woman wearing a skirt"),
        ("does he have a hat", "yes", "a man with a hat"),
        ("is it sunny", "yes", "sunny"),
        ("is anyone riding a horse", "yes", "someone riding a horse"),
        ("is there a dog", "no, a cat", "a cat"),
        ("is there a dog", "no", None),
        ("what color is her shirt", "it's black", "black shirt"),
        ("how many towels can you see", "3 towels", "3 towels"),
        ("is the photo in color", "yes", None),
        ("is it sunny", "i can't tell", None),
        ("is the dog outside", "i think so", "a dog outside"),
        ("what colour is the bus: red, white or blue", "red bus", "red bus"),
        ("what is the dog doing: lying or running", "dog running", "dog running"),
    ],
)
def test_a_turn_becomes_a_fact_a_person_would_write(question, answer, want):
    assert turn_to_fact(question, answer) == want


def test_visdial_turns_read_as_facts_not_fragments():
    """Every human turn of the ChatIR VisDial file: at most 3% of the facts read as a
    question's fragment, and a plain 'no' never gives a fact."""
    if not VISDIAL.exists():
        pytest.skip("shared/benchmarks/chatir is not beside this checkout")
    dialogues = json.loads(VISDIAL.read_text())
    turns = [t for d in dialogues for t in d["dialog"][1:]]
    assert len(turns) > 10_000
    facts = [turn_to_fact(*split_turn(t)) for t in turns]
    kept = [f for f in facts if f]
    fragments = [f for f in kept if FRAGMENT.search(f)]
    assert len(kept) > 0.3 * len(turns)
    assert len(fragments) <= 0.03 * len(kept), fragments[:20]
    for turn, fact in zip(turns, facts, strict=True):
        if split_turn(turn)[1].strip().lower() == "no":
            assert fact is None, turn
