"""Question banks for any gallery, the answer model reading texts, answers to any question."""

import numpy as np
import pytest

from convir.evaluation.users import TestbedUser
from convir.gallery.answers import AnswerModel, turn_question
from convir.gallery.clauses import states
from convir.gallery.questions import (
    NONE_OPTION,
    Askable,
    Candidates,
    CaptionBank,
    CombinedBank,
    VocabularyBank,
)
from convir.models.embedder import TextFeatures
from convir.testbed.captions import full_caption
from convir.testbed.world import World

CAPTIONS = [
    "a small red circle at the top left on a white background",
    "a large red circle at the top left on a gray background",
    "a blue square in the center on a beige background",
    "a blue square in the center, a red circle at the top left on a white background",
    "a green star on the right on a gray background",
    "a green star on the right, a blue square in the center on a beige background",
]


class BagOfWords:
    """A fake embedder: a text is the normalised sum of fixed random word vectors."""

    def __init__(self, dim=64):
        self.rng = np.random.default_rng(0)
        self.words = {}
        self.dim = dim
        self.calls = 0

    def vector(self, text):
        v = np.zeros(self.dim, dtype=np.float32)
        for w in text.lower().replace(",", " ").split():
            if w not in self.words:
                self.words[w] = self.rng.standard_normal(self.dim).astype(np.float32)
            v += self.words[w]
        return v / (np.linalg.norm(v) or 1.0)

    def encode_text(self, texts, *, tokens=False):
        import torch

        self.calls += 1
        return TextFeatures(torch.from_numpy(np.stack([self.vector(t) for t in texts])))


def view(captions, weights=None):
    n = len(captions)
    return Candidates(
        [f"id{i}" for i in range(n)], np.ones(n) if weights is None else weights, captions
    )


def test_caption_bank_asks_what_splits_the_candidates():
    menu = CaptionBank().menu(["a red circle"], view(CAPTIONS))
    texts = [q.text for q in menu]
    assert "what colour is the background: beige, gray or white?" in texts
    choice = next(q for q in menu if q.text.startswith("what colour is the background:"))
    assert set(choice.options) == {
        "white background",
        "gray background",
        "beige background",
        NONE_OPTION,
    }
    assert choice.facts[-1] is None and choice.facts[:-1] == choice.options[:-1]
    yes_no = {q.text: q for q in menu if q.options == ("yes", "no")}
    # one question per way of splitting, in its most specific words
    assert yes_no["is the background white?"].facts == ("white background", None)
    assert yes_no["is there a blue square in the center?"].facts == (
        "blue square in the center",
        None,
    )
    assert "is there a blue square?" not in yes_no  # the same split as the longer phrase
    assert "is there a red circle?" not in yes_no  # the dialogue said it already
    # "at the top" alone is never offered: no caption says an object is at the top middle
    assert not any(t.endswith("at the top?") for t in texts)


def test_caption_bank_needs_two_captioned_candidates():
    assert CaptionBank().menu(["x"], view([CAPTIONS[0], None, None])) == []
    assert CombinedBank(CaptionBank(), VocabularyBank(["dog"])).menu(["x"], view([None, None])) == [
        Askable("is there a dog?", ("yes", "no"), ("dog", None))
    ]


def test_a_text_states_a_fact_clause_by_clause_and_place_by_place():
    caption = CAPTIONS[3]
    assert states(caption, "blue square in the center")
    assert states(caption, "a red circle at the top left")
    assert not states(caption, "a red circle at the top")  # top middle is another place
    assert not states(caption, "a blue circle")  # words from two clauses do not combine
    assert states(caption, "white background") and not states(caption, "gray background")


def test_the_answer_model_reads_captions_where_they_state_a_fact():
    model = AnswerModel(BagOfWords(), temperature=0.1)
    X = np.random.default_rng(1).standard_normal((len(CAPTIONS), 64)).astype(np.float32)
    ask = Askable("is there a blue square?", ("yes", "no"), ("blue square", None))
    p = model.probabilities_many([ask], X, CAPTIONS)[0]
    says = np.array([states(c, "blue square") for c in CAPTIONS])
    np.testing.assert_allclose(p[says, 0], 0.9)
    np.testing.assert_allclose(p[~says, 1], 0.9)
    # a fact no caption states (a count) stays with the embedder
    count = Askable(
        "how many objects are there?", ("two", "three"), ("two objects", "three objects")
    )
    np.testing.assert_allclose(
        model.probabilities_many([count], X, CAPTIONS)[0], model.probabilities_many([count], X)[0]
    )


def test_a_recorded_yes_raises_the_images_that_match():
    """A ChatIR-style turn the agent never asked still counts: 'is there a dog? yes'."""
    emb = BagOfWords()
    model = AnswerModel(emb, temperature=0.1)
    X = np.stack(
        [emb.vector("a dog on grass"), emb.vector("a cat on a sofa"), emb.vector("a red car")]
    )
    loglik = model.answer_loglik(["is there a dog? yes"], X)
    assert loglik.argmax() == 0 and loglik[0] > max(loglik[1], loglik[2]) + 0.3
    no = model.answer_loglik(["is there a dog? no"], X)
    assert no.argmin() == 0
    assert turn_question("what colour is the car? red", {})[0].facts == ("red car", None)
    assert turn_question("is it sunny? i don't know", {}) is None
    assert not model.answer_loglik(["is it sunny? i don't know", "opening"], X).any()


def test_an_asked_question_keeps_its_options_and_facts():
    ask = Askable(
        "which background: white or gray?",
        ("white background", "gray background", NONE_OPTION),
        ("white background", "gray background", None),
    )
    asked = {ask.text: ask.to_state()}
    got, picked = turn_question("which background: white or gray? gray background", asked)
    assert got.options == ask.options and got.facts == ask.facts and picked == 1
    got, picked = turn_question("which background: white or gray? none of these", asked)
    assert picked == 2


@pytest.fixture
def user_and_scene():
    world = World(seed=4, size=50)
    scene = next(s for s in world.scenes() if len(s.objects) >= 2)
    return TestbedUser(world, {"d": scene.index}), scene


def test_the_testbed_user_answers_any_bank_from_the_record(user_and_scene):
    user, scene = user_and_scene
    o = scene.objects[0]
    assert user.answer("d", f"is there a {o.colour} {o.shape}?", ("yes", "no")) == "yes"
    other = next(
        c
        for c in ("red", "green", "blue", "yellow")
        if not any(p.colour == c and p.shape == o.shape for p in scene.objects)
    )
    assert user.answer("d", f"is there a {other} {o.shape}?", ("yes", "no")) == "no"
    bg = ["white background", "beige background", "gray background"]
    assert (
        user.answer("d", "which background: white, beige or gray?", (*bg, NONE_OPTION))
        == f"{scene.background} background"
    )
    assert (
        user.answer("d", "which shade: pink or teal?", ("pink", "teal", NONE_OPTION))
        == "i don't know"
    )
    assert user.answer("d", "is it a happy picture?", ("yes", "no")) == "i don't know"
    assert (user.unknown, user.answered) == (2, 5)
    # the caption bank's own questions about the target's caption are all answered truly
    menu = CaptionBank().menu(["x"], view([full_caption(scene), *CAPTIONS]))
    for q in menu:
        said = user.answer("d", q.text, q.options)
        assert said in q.options or said == "i don't know"
        if q.options == ("yes", "no") and said != "i don't know":
            assert (said == "yes") == states(full_caption(scene), q.facts[0]), q.text


def test_a_free_answer_to_an_asked_question_means_one_of_its_options():
    colour = Askable(
        "what colour is the bus: red or white?",
        ("red bus", "white bus", NONE_OPTION),
        ("red bus", "white bus", None),
    )
    asked = {colour.text: colour.to_state()}
    picked = {
        a: turn_question(f"{colour.text} {a}", asked) for a in ("it's red", "white", "neither")
    }
    assert {a: got[1] for a, got in picked.items()} == {"it's red": 0, "white": 1, "neither": 2}
    assert turn_question(f"{colour.text} no idea", asked) is None  # no evidence either way
    blue, index = turn_question(f"{colour.text} blue", asked)
    assert blue.facts[index] == "blue bus"  # an answer outside the options joins as a fact
    running = Askable("is the dog running?", ("yes", "no"), ("dog running", None))
    asked = {running.text: running.to_state()}
    said = {a: turn_question(f"{running.text} {a}", asked) for a in ("yeah, it is", "i think so")}
    assert [got[1] for got in said.values()] == [0, 0]
    assert turn_question(f"{running.text} no, it is sitting", asked)[1] == 1
    assert turn_question(f"{running.text} not sure", asked) is None
