import numpy as np
import pytest

from convir.testbed.captions import full_caption, paraphrases, partial_caption
from convir.testbed.edits import edit_text, triplets
from convir.testbed.oracle import (
    UNKNOWN,
    Oracle,
    Question,
    answer,
    candidate_questions,
    parse_question,
)
from convir.testbed.world import POSITIONS, World, apply_edit


@pytest.fixture(scope="module")
def world():
    return World(seed=0, size=400)


def test_full_captions_name_every_object(world):
    for scene in world.scenes(0, 100):
        for cap in paraphrases(scene, 4):
            for o in scene.objects:
                assert f"{o.colour} {o.shape}" in cap
            assert any(w in cap for w in (scene.background, "grey"))
        assert full_caption(scene) == paraphrases(scene, 4)[0]
    assert len(set(paraphrases(world.scene(5), 4))) == 4


def test_partial_captions_name_one_true_object_and_are_ambiguous(world):
    rng = np.random.default_rng(0)
    scenes = world.scenes()
    matches = []
    for scene in scenes[:100]:
        cap = partial_caption(scene, rng)
        named = [o for o in scene.objects if f"{o.colour} {o.shape}" in cap]
        assert named, cap
        pair = (named[0].colour, named[0].shape)
        matches.append(sum(any((o.colour, o.shape) == pair for o in s.objects) for s in scenes))
    # a partial caption fits many gallery images: the target is not identified by it
    assert np.median(matches) >= 5


def test_oracle_answers_agree_with_attributes(world):
    for scene in world.scenes(0, 50):
        for o in scene.objects:
            assert answer(scene, Question(kind="exists", colour=o.colour, shape=o.shape)) == "yes"
            assert answer(scene, Question(kind="shape_at", position=o.position)) in (
                f"a {o.shape}",
                f"an {o.shape}",
            )
            assert o.colour in answer(scene, Question(kind="colour_of", shape=o.shape))
        free = [p for c, p in enumerate(POSITIONS) if c in scene.free_cells()]
        for p in free:
            assert answer(scene, Question(kind="exists", position=p)) == "no"
        assert answer(scene, Question(kind="background")) == scene.background
        count = answer(scene, Question(kind="count"))
        assert count == ["one", "two", "three", "four"][len(scene.objects) - 1]


def test_questions_parse_back_from_their_text():
    for q in candidate_questions():
        assert parse_question(q.text) == q, q.text
    assert parse_question("What color is the CIRCLE?") == Question(kind="colour_of", shape="circle")
    assert parse_question("tell me a joke") is None
    assert Oracle().answer(World(0, 10).scene(0), "tell me a joke") == UNKNOWN


def test_noisy_oracle_errs_at_its_rate(world):
    scenes = world.scenes()
    qs = [Question(kind="background"), Question(kind="count")]
    oracle = Oracle(error_rate=0.3, seed=1)
    wrong = sum(oracle.answer(s, q) != answer(s, q) for s in scenes for q in qs)
    assert 0.24 < wrong / (2 * len(scenes)) < 0.36
    with pytest.raises(ValueError):
        Oracle(error_rate=1.5)


def test_triplets_targets_are_the_edited_reference(world):
    trips = triplets(world)
    assert len(trips) == len(world.edited_indices())
    by_id = {s.id: s for s in world.scenes()}
    for t in trips:
        ref, target = by_id[t.reference], by_id[t.target]
        assert apply_edit(ref, target.edit, target.index).key() == target.key()
        assert t.text == edit_text(ref, target.edit, np.random.default_rng([0, target.index, 11]))
    texts = " ".join(t.text for t in trips)
    for verb in ("remove", "add", "move", "make"):
        assert verb in texts


def test_referring_expressions_pick_exactly_one_object(world):
    from convir.testbed.captions import POSITION_NAMES, referring_expression

    for scene in world.scenes(0, 200):
        for k in range(len(scene.objects)):
            ref = referring_expression(scene, k)
            words, _, where = ref.removeprefix("the ").partition(" at the ")
            fits = [
                o
                for o in scene.objects
                if all(w in (o.colour, o.shape, o.size) for w in words.split())
                and (not where or POSITION_NAMES[o.position] == where)
            ]
            assert fits == [scene.objects[k]], (ref, scene.to_record())
