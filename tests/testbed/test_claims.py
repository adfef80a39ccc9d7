"""Judging short claims about a scene, as the simulated user does for any bank's question."""

import pytest

from convir.testbed.claims import judge, parse_claim
from convir.testbed.oracle import Oracle
from convir.testbed.world import Obj, Scene

SCENE = Scene(
    index=0,
    background="white",
    objects=(
        Obj("circle", "red", "small", 0),  # top left
        Obj("star", "blue", "large", 1),  # top middle
        Obj("square", "green", "small", 5),  # middle right
    ),
)


@pytest.mark.parametrize(
    ("claim", "truth"),
    [
        ("red circle", True),
        ("a small red circle at the top left", True),
        ("red circle at the top", False),  # "at the top" is the top middle cell
        ("blue star at the top", True),
        ("large red circle", False),
        ("green square on the right", True),
        ("white background", True),
        ("gray background", False),
        ("three objects", True),
        ("two objects", False),
        ("a red object", True),
        ("something pink", None),
        ("a happy dog", None),
    ],
)
def test_claims_are_judged_against_the_record(claim, truth):
    assert judge(claim, SCENE) is truth


def test_places_read_like_the_captions():
    assert parse_claim("in the upper left").cells == frozenset({0})
    assert parse_claim("middle left").cells == parse_claim("on the left").cells == frozenset({3})
    assert parse_claim("in the center").cells == frozenset({4})


def test_the_oracle_picks_among_any_options():
    oracle = Oracle()
    assert oracle.answer(SCENE, "is there a blue star?", ("yes", "no")) == "yes"
    assert oracle.answer(SCENE, "is there anything at the bottom left?", ("yes", "no")) == "no"
    options = ("gray background", "white background", "none of these")
    assert oracle.answer(SCENE, "which background: gray or white?", options) == "white background"
    assert (
        oracle.answer(
            SCENE,
            "which one: a pink star or a gray star?",
            ("pink star", "gray star", "none of these"),
        )
        == "none of these"
    )
    assert oracle.answer(SCENE, "is it sunny?", ("yes", "no")) == "i don't know"
    assert oracle.answer(SCENE, "anything else?", ()) == "i don't know"
    # template questions keep the oracle's own words
    assert oracle.answer(SCENE, "what colour is the background?", ("white", "gray")) == "white"


def test_a_noisy_oracle_answers_options_wrongly_at_its_rate():
    oracle = Oracle(error_rate=0.3, seed=1)
    answers = [oracle.answer(SCENE, "is there a blue star?", ("yes", "no")) for _ in range(2000)]
    assert abs(answers.count("no") / 2000 - 0.3) < 0.04
