"""The pure cores behind the tools: question choice, answer model, query vectors, rescoring."""

import math

import numpy as np
import pytest

from convir.gallery.answers import AnswerModel, already_answered, information_gain
from convir.gallery.questions import Askable
from convir.state import AgentConfig
from convir.testbed.oracle import answer, parse_question
from convir.testbed.questions import mentioned_objects, menu_for_testbed, options_for_testbed
from convir.tools.ask_clarification import choose_question, clean_answer
from convir.tools.refine_query import refine_query
from convir.tools.retrieve import dar_weight, query_vector, rescore
from convir.tools.stitch_query import image_transition, stitch_query


def test_information_gain_is_zero_for_a_useless_question_and_log2_for_a_perfect_split():
    w = np.ones(4)
    same = np.tile([0.5, 0.5], (4, 1))
    assert information_gain(same, w) == pytest.approx(0.0, abs=1e-12)
    split = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    assert information_gain(split, w) == pytest.approx(math.log(2))
    # a posterior sure of one candidate leaves nothing to learn
    assert information_gain(split, np.array([1.0, 0, 0, 0])) == pytest.approx(0.0, abs=1e-9)


class FixedAnswers:
    """An answer model with known per-question answer distributions."""

    def __init__(self, table):
        self.table = table

    def probabilities(self, question, options, X):
        return self.table[question]

    def probabilities_many(self, asks, X, captions=None):
        return [self.table[a.text] for a in asks]

    def gains(self, asks, X, weights, captions=None):
        return np.array([information_gain(self.table[a.text], weights) for a in asks])


def test_choose_question_takes_the_best_split_and_never_repeats():
    X = np.zeros((4, 8))
    table = {
        "a?": np.tile([0.5, 0.5], (4, 1)),
        "b?": np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]),
        "c?": np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]),
    }
    menu = [Askable(q, ("x", "y")) for q in table]
    model = FixedAnswers(table)
    q, gain = choose_question(menu, ["a red circle"], [], X, np.zeros(4), model)
    assert q.text == "b?" and gain == pytest.approx(math.log(2))
    q, _ = choose_question(menu, ["a red circle"], ["b?"], X, np.zeros(4), model)
    assert q.text == "c?"
    assert choose_question(menu, ["x"], ["a?", "b?", "c?"], X, np.zeros(4), model) == (None, 0.0)


def test_questions_the_dialogue_already_answers_are_not_asked():
    dialogue = ["a small red circle on a white background"]
    menu = {q.text: q for q in menu_for_testbed(dialogue)}
    assert already_answered(menu["what colour is the background?"], dialogue)
    assert already_answered(menu["is the red circle large or small?"], dialogue)
    assert already_answered(menu["what colour is the circle?"], dialogue)
    assert not already_answered(menu["where is the red circle?"], dialogue)
    assert not already_answered(menu["how many objects are there?"], dialogue)
    assert mentioned_objects("a big blue square and two orange stars") == [
        ("blue", "square"),
        ("orange", "star"),
    ]


def test_every_menu_question_parses_and_the_oracle_answers_within_its_options(world):
    for scene in world.scenes(0, 40):
        for q in menu_for_testbed(["a red circle"]):
            structured = parse_question(q.text)
            assert structured is not None and options_for_testbed(structured) == q.options
            truth = answer(scene, structured)
            if " and " not in truth:  # two same-shaped objects: a combined answer
                assert truth in q.options, (q.text, truth)


def test_the_answer_model_prefers_the_true_answer(testbed, world):
    """Zero-shot answers from the shipped CLIP beat chance on the background question."""
    model = AnswerModel(testbed.embedder, temperature=0.05)
    question = "what colour is the background?"
    options = options_for_testbed(parse_question(question))
    scenes = world.scenes(0, 200)
    p = model.probabilities(question, options, testbed.vectors[:200])
    truth = np.array([options.index(s.background) for s in scenes])
    accuracy = float(np.mean(p.argmax(axis=1) == truth))
    assert accuracy > 0.8  # chance: 1/3
    asked = {question: Askable(question, options).to_state()}
    loglik = model.answer_loglik([f"{question} white"], testbed.vectors[:200], asked)
    white = truth == options.index("white")
    assert loglik[white].mean() > loglik[~white].mean() + 1.0
    # turns the model cannot use add nothing
    assert not model.answer_loglik(["is it pretty? i don't know"], testbed.vectors[:5]).any()


def test_a_whole_menu_scored_at_once_equals_each_question_alone(testbed):
    """One matmul for every fact of the menu, incl. negative options ("nothing is there")
    and an answer outside the options, gives each question's own distribution."""
    dialogue = ["a red circle and a blue star"]
    menu = menu_for_testbed(dialogue)
    asks = [*menu, Askable("is it pretty?", ("yes", "no"))]
    assert len(asks) > 10
    X = testbed.vectors[:60]
    model = AnswerModel(testbed.embedder, temperature=0.1)
    together = model.probabilities_many(asks, X)
    fresh = AnswerModel(testbed.embedder, temperature=0.1)
    for ask, p in zip(asks, together, strict=True):
        alone = fresh.probabilities(ask.text, ask.options, X)
        assert p.shape == (60, len(ask.options))
        # the facts are embedded in one batch vs one by one: float32 rounding, ~1e-6 here
        np.testing.assert_allclose(p, alone, rtol=1e-4, atol=1e-7)
        np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert model.probabilities_many([], X) == []

    # the menu's information gains in one pass equal each question's own, texts read or not
    weights = np.random.default_rng(0).random(60)
    texts = testbed.texts_at(list(range(60)))
    for captions in (None, texts):
        probs = model.probabilities_many(asks, X, captions)
        one_by_one = [information_gain(p, weights) for p in probs]
        np.testing.assert_allclose(model.gains(asks, X, weights, captions), one_by_one, atol=1e-12)
    read = model.probabilities_many(asks, X, texts)
    assert any(not np.allclose(a, b) for a, b in zip(read, together, strict=True))


def test_dar_fusion_vector_ranks_exactly_like_the_fused_score():
    rng = np.random.default_rng(0)
    gallery = rng.standard_normal((50, 16))
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    t, g = gallery[0] + 0.1, rng.standard_normal((3, 16))
    t /= np.linalg.norm(t)
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    q = query_vector(t, "dar", generated=g, image_weight=0.2)
    fused = 0.8 * gallery @ t + 0.2 * (gallery @ g.T).mean(axis=1)
    assert np.array_equal(np.argsort(-gallery @ q), np.argsort(-fused))
    assert np.linalg.norm(q) == pytest.approx(1.0, abs=1e-6)
    assert np.allclose(query_vector(t, "text", generated=g, image_weight=0.2), t, atol=1e-6)


def test_dar_weight_schedule_and_transition_vector():
    config = AgentConfig()
    assert [dar_weight(turn, config) for turn in range(4)] == [0.2, 0.2, 0.5, 0.5]
    t, v, tr = np.eye(3)[0], np.eye(3)[1], np.eye(3)[2]
    q = stitch_query(image_transition(t[None, :], v, tr, scale=1.0))
    assert np.allclose(q, np.array([1.0, 1.0, -1.0]) / math.sqrt(3), atol=1e-6)
    assert np.allclose(rescore(np.array([0.5]), np.array([-2.0]), 0.05, 1.0), [8.0])


def test_refine_query_folds_answers_into_one_query():
    from convir.models.refiner import TemplateRefiner

    dialogue = ["a red circle", "what colour is the background? white", "is there a star? no"]
    query, how = refine_query(dialogue, TemplateRefiner())
    assert query == "a red circle, on a white background" and how == "TemplateRefiner"
    assert refine_query([], TemplateRefiner()) == ("", "empty dialogue")


def test_clean_answer_caps_and_fills():
    assert clean_answer("  yes \n ") == "yes"
    assert clean_answer("") == "i don't know"
    assert len(clean_answer("x" * 100_000)) == 2000
