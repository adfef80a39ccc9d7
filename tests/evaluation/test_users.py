"""Simulated users: reproducible openings, oracle answers (exact and noisy), replay, LLM."""

import logging

import pytest

from convir.errors import InputError, LLMOutputError, LLMUnavailableError
from convir.evaluation.users import (
    UNKNOWN,
    LLMUser,
    ReplayUser,
    SimulatedUser,
    TestbedUser,
    dialogue_seed,
)
from convir.models.scripted_llm import ScriptedLLM
from convir.testbed.oracle import Question, answer, candidate_questions
from convir.testbed.world import World

WORLD = World(seed=0, size=300)
TARGETS = {f"d{i}": 3 * i for i in range(100)}


def test_every_user_is_a_simulated_user():
    """Each user keeps the protocol's promises: an opening (no reference for a described
    target), an answer as text, and the dialogue's target."""
    testbed = TestbedUser(WORLD, {"d0": 3})
    replay = ReplayUser({"a": ["x", "is it red? yes"]}, {"a": "t"})
    llm = LLMUser(ScriptedLLM(["it is red"]), {"a": "a red circle on gray"}, {"a": "t"})
    assert all(isinstance(u, SimulatedUser) for u in (testbed, replay, llm))
    message, reference = testbed.opening("d0")
    assert reference is None and message and testbed.target("d0") == "0000003"
    assert replay.opening("a") == ("x", None) and replay.target("a") == "t"
    assert replay.answer("a", "is it red?", []) == "yes"  # the recorded answer, replayed
    assert llm.opening("a") == ("a red circle on gray", None) and llm.target("a") == "t"
    assert llm.answer("a", "what colour is it?", ["red", "blue"]) == "it is red"


def test_dialogue_seed_is_stable_and_separates_ids_seeds_and_streams():
    assert dialogue_seed(0, "d1") == dialogue_seed(0, "d1")
    seeds = {dialogue_seed(s, d, k) for s in (0, 1) for d in ("d1", "d2") for k in (0, 1)}
    assert len(seeds) == 8


def test_openings_are_reproducible_order_independent_and_describe_the_target():
    ids = list(TARGETS)
    forward = {d: TestbedUser(WORLD, TARGETS, seed=5).opening(d) for d in ids}
    user = TestbedUser(WORLD, TARGETS, seed=5)
    backward = {d: user.opening(d) for d in reversed(ids)}
    assert forward == backward
    for d, (text, reference) in forward.items():
        assert reference is None
        scene = WORLD.scene(TARGETS[d])
        assert any(o.colour in text and o.shape in text for o in scene.objects), text
    other_seed = {d: TestbedUser(WORLD, TARGETS, seed=6).opening(d) for d in ids}
    assert sum(other_seed[d] != forward[d] for d in ids) > 50


def test_target_is_the_scene_id_and_unknown_dialogues_are_errors():
    user = TestbedUser(WORLD, TARGETS)
    assert user.target("d7") == WORLD.scene(21).id
    with pytest.raises(InputError, match="no target scene for dialogue 'nope'"):
        user.opening("nope")
    with pytest.raises(InputError, match="outside the world's 300 scenes"):
        TestbedUser(WORLD, {"x": 300})
    with pytest.raises(InputError, match=r"error rate must be in \[0, 1\]"):
        TestbedUser(WORLD, TARGETS, error_rate=1.5)


def test_exact_user_answers_every_menu_question_with_the_truth():
    user = TestbedUser(WORLD, TARGETS)
    for d in ("d0", "d1", "d2"):
        scene = WORLD.scene(TARGETS[d])
        for q in candidate_questions():
            assert user.answer(d, q.text) == answer(scene, q)
    assert user.answer("d0", "what colour is the background?") == WORLD.scene(0).background
    assert user.answer("d0", "is it a nice picture?") == UNKNOWN


def test_noisy_user_is_wrong_at_roughly_the_error_rate_and_order_independent():
    q = Question(kind="background")
    user = TestbedUser(WORLD, TARGETS, error_rate=0.3, seed=1)
    wrong = 0
    for d in TARGETS:
        truth = WORLD.scene(TARGETS[d]).background
        wrong += sum(user.answer(d, q.text) != truth for _ in range(20))
    assert 0.25 < wrong / 2000 < 0.35
    # dialogue d5's answers do not depend on the other dialogues answered around it
    alone = TestbedUser(WORLD, TARGETS, error_rate=0.3, seed=1)
    mixed = TestbedUser(WORLD, TARGETS, error_rate=0.3, seed=1)
    first = [alone.answer("d5", q.text) for _ in range(30)]
    second = []
    for _ in range(30):
        mixed.answer("d6", q.text)
        second.append(mixed.answer("d5", q.text))
    assert first == second
    assert len(set(first)) > 1  # noise did happen


def test_replay_user_gives_recorded_answers_then_does_not_know():
    dialogues = {"7": ["a dog on a couch", "is it brown? yes it is", "any people? no", "outdoors"]}
    user = ReplayUser(dialogues, {"7": "img7.jpg"})
    assert user.opening("7") == ("a dog on a couch", None)
    assert user.target("7") == "img7.jpg"
    answers = [user.answer("7", "whatever the system asked?") for _ in range(5)]
    assert answers == ["yes it is", "no", "outdoors", UNKNOWN, UNKNOWN]
    user.opening("7")  # a new opening restarts the replay
    assert user.answer("7", "") == "yes it is"
    with pytest.raises(InputError, match="no target image for dialogue '8'"):
        ReplayUser({"8": ["x"]}).target("8")
    with pytest.raises(InputError, match="has no turns"):
        ReplayUser({"9": []})


def test_llm_user_answers_from_the_caption_with_the_user_answer_prompt():
    llm = ScriptedLLM(["  red\nbecause the caption says so", ""])
    user = LLMUser(
        llm, {"1": "a red bus on a street"}, targets={"1": "bus.jpg"}, openings={"1": "a bus"}
    )
    assert user.opening("1") == ("a bus", None)
    assert LLMUser(llm, {"1": "a red bus"}).opening("1") == ("a red bus", None)
    assert user.answer("1", "what colour is the bus?") == "red"
    sent = llm.calls[0].messages[0]["content"]
    assert "a red bus on a street" in sent and "what colour is the bus?" in sent
    assert user.answer("1", "is it raining?") == UNKNOWN  # an empty reply
    assert user.target("1") == "bus.jpg"


def test_llm_user_says_it_does_not_know_when_the_llm_fails(caplog):
    llm = ScriptedLLM([LLMUnavailableError("server down"), LLMOutputError("bad"), "yes"])
    user = LLMUser(llm, {"1": "a cat"})
    with caplog.at_level(logging.WARNING, logger="convir.evaluation.users"):
        assert user.answer("1", "is there a cat?") == UNKNOWN
        assert user.answer("1", "is there a cat?") == UNKNOWN
    assert "server down" in caplog.text
    assert user.answer("1", "is there a cat?") == "yes"
    with pytest.raises(RuntimeError):  # a script that runs out is a bug, never "i don't know"
        user.answer("1", "again?")


def test_composed_user_opens_with_the_triplet_and_answers_about_the_target():
    from convir.evaluation.users import ComposedUser
    from convir.testbed.edits import triplet_for

    world = World(seed=0, size=200)
    edited = world.edited_indices()[:3]
    user = ComposedUser(world, {f"c{i}": i for i in edited})
    for i in edited:
        triplet = triplet_for(world, i)
        assert user.opening(f"c{i}") == (triplet.text, triplet.reference)
        assert user.target(f"c{i}") == world.scene(i).id
        q = Question(kind="count")
        assert user.answer(f"c{i}", q.text) == answer(world.scene(i), q)
    plain = next(i for i in range(200) if i not in set(world.edited_indices()))
    with pytest.raises(InputError, match="not an edit of another scene"):
        ComposedUser(world, {"x": plain})


def test_vlm_user_answers_from_the_target_image_with_the_options():
    from llm_server import Reply, ScriptedServer
    from PIL import Image

    from convir.evaluation.users import VLMUser
    from convir.models.llm import OpenAICompatibleLLM

    with ScriptedServer([Reply.text("Yes\n(it is red)"), Reply.error(400)]) as server:
        llm = OpenAICompatibleLLM(server.url, "vlm", timeout=5, max_retries=0)
        user = VLMUser(
            llm, {"d": lambda: Image.new("RGB", (8, 8), "red")}, {"d": "a red square"}, {"d": "x"}
        )
        assert user.opening("d") == ("a red square", None)
        assert user.answer("d", "is it red?", ("yes", "no")) == "yes"
        assert user.answer("d", "is it red?") == "i don't know"  # the server refused
        content = server.chat_requests[0].body["messages"][0]["content"]
    assert "Suggested answers: yes, no." in content[0]["text"]
    assert content[1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert user.target("d") == "x"
