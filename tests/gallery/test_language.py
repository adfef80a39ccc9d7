"""Captions read as English: lemmas, clauses, parsed things and actions, and the questions
built from them on real VLM captions."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from convir.gallery.clauses import states
from convir.gallery.language import clauses, is_refusal, lemma, parse
from convir.gallery.questions import Candidates, CaptionBank

DEV = Path(__file__).resolve().parents[3] / "shared/benchmarks/captions/cirr_vlm_captions.jsonl"
# The shapes a parsed question takes; anything else is a word run a person would not ask.
ASKABLE = re.compile(
    r"^(is there (a|an) [a-z -]+|is there [a-z -]+|are there [a-z -]+|is the [a-z -]+ [a-z-]+"
    r"|is someone [a-z -]+|are the [a-z -]+|what colour is the [a-z -]+: .+|where is the [a-z -]+: .+"
    r"|what (is|are) the [a-z -]+ doing: .+|how big is the [a-z -]+: .+|which [a-z ]+ thing is there: .+)\?$"
)


def test_word_forms_meet_at_their_lemma():
    assert lemma("sitting") == lemma("sits") == "sit"
    assert lemma("laying") == lemma("lying") == "lie"  # captions use both for lying
    assert lemma("dogs") == "dog" and lemma("people") == "person" and lemma("men") == "man"
    assert lemma("grey") == "gray"


def test_clauses_keep_a_coordinated_adjective_and_split_new_things():
    assert len(clauses("A brown and black puppy sits on a gray surface.")) == 1
    assert len(clauses("a red circle and a blue square")) == 2
    assert states("Two dogs are lying on a couch.", "dog lying")
    assert states("A dog lays on the couch.", "dogs lying on a couch")
    assert not states("A white wolf with a black nose.", "black wolf")  # the nose is black


def test_a_caption_parses_into_things_and_actions():
    got = parse("A brown and black Chow Chow puppy sits on a gray surface.")
    puppy = next(m for m in got.mentions if m.head == "puppy")
    assert {"brown", "black"} <= set(puppy.modifiers)
    assert any(a.subject == "puppy" and a.verb == "sit" for a in got.actions)
    wolf = parse("A white wolf with a black nose is lying in the snow.")
    assert any(a.subject == "wolf" and a.ing == "lying" for a in wolf.actions)  # not the nose
    assert parse("The image shows a gazelle.").mentions[0].head == "gazelle"  # not "image"


def test_a_captioners_apology_is_not_a_description():
    assert is_refusal("I am unable to see an image above.")
    assert parse("I am unable to see an image above.").mentions == ()
    menu = CaptionBank().menu(
        ["a dog"],
        Candidates(
            ["a", "b", "c"],
            np.ones(3),
            ["I am unable to see an image above.", "A cat on a sofa.", "A dog on grass."],
        ),
    )
    assert not any("image" in q.text or "unable" in q.text for q in menu)


def test_questions_on_real_vlm_captions_read_as_a_person_would_ask_them():
    """On 20 random pools of 50 dev-set items: every question has one of the askable
    shapes, names no picture-meta word, and repeats nothing the dialogue said."""
    if not DEV.exists():
        pytest.skip("shared/benchmarks/captions is not beside this checkout")
    items = [json.loads(line) for line in DEV.read_text().splitlines()]
    rng = np.random.default_rng(0)
    asked = 0
    for _ in range(20):
        pool = [items[i] for i in rng.choice(len(items), 50, replace=False)]
        texts = [" ".join(c.rstrip(".") + "." for c in it["captions"][1:3]) for it in pool]
        opening = pool[0]["captions"][0]
        menu = CaptionBank().menu(
            [opening], Candidates([i["id"] for i in pool], np.ones(50), texts)
        )
        assert menu
        for q in menu:
            asked += 1
            assert ASKABLE.match(q.text), q.text
            assert not re.search(r"\b(image|picture|photo|feature|display|unable)\b", q.text)
            if q.options != ("yes", "no"):
                values = [o for o in q.options if o != "none of these"]
                assert len(values) >= 2 and len(set(values)) == len(values)
    assert asked > 200
