import numpy as np
import pytest

from convir.testbed.render import render
from convir.testbed.world import COLOURS, SHAPES, SIZES, World, apply_edit


def test_scene_is_a_pure_function_of_seed_and_index():
    a, b = World(seed=3, size=500), World(seed=3, size=500)
    # different access order, same scenes
    first = [a.scene(i).to_record() for i in range(0, 500, 7)]
    second = [b.scene(i).to_record() for i in reversed(range(0, 500, 7))][::-1]
    assert first == second
    assert np.array_equal(np.asarray(render(a.scene(42))), np.asarray(render(b.scene(42))))
    other = World(seed=4, size=500)
    assert sum(a.scene(i).key() == other.scene(i).key() for i in range(100)) < 5


def test_world_respects_its_grammar():
    world = World(seed=0, size=2000)
    counts = np.zeros(5, dtype=int)
    for scene in world.scenes():
        cells = [o.cell for o in scene.objects]
        assert 1 <= len(cells) <= 4
        assert len(set(cells)) == len(cells), "two objects share a cell"
        assert cells == sorted(cells)
        for o in scene.objects:
            assert o.shape in SHAPES and o.colour in COLOURS and o.size in SIZES
        counts[len(cells)] += 1
    assert set(np.nonzero(counts)[0]) == {1, 2, 3, 4}
    assert len(SHAPES) >= 5 and len(COLOURS) >= 8


def test_edited_scenes_are_their_reference_plus_the_edit():
    world = World(seed=0, size=1000)
    edited = world.edited_indices()
    assert 200 < len(edited) < 300  # ~half of the 500 odd scenes
    ops = set()
    for i in edited:
        target = world.scene(i)
        assert target.edit_of == i - 1
        ref = world.scene(i - 1)
        assert apply_edit(ref, target.edit, i).key() == target.key()
        assert ref.key() != target.key(), "an edit must change the scene"
        ops.add(target.edit.op)
    assert ops == {"recolour", "reshape", "resize", "remove", "add", "move"}


def test_render_size_and_background():
    world = World(seed=0, size=100)
    img = render(world.scene(0), 96)
    assert img.size == (96, 96) and img.mode == "RGB"


def test_bad_world_arguments():
    with pytest.raises(ValueError):
        World(size=0)
    with pytest.raises(IndexError):
        World(size=10).scene(10)


def test_tokenizer_keeps_open_clip_conventions_and_warns_on_long_text():
    from convir.models.word_tokenizer import WordTokenizer

    tok = WordTokenizer.build(["a red circle", "a blue square"], context_length=6)
    ids = tok(["a red circle", "a purple thing"])
    assert ids.shape == (2, 6)
    assert int(ids[0].argmax()) == 4 and int(ids[0, 4]) == tok.eot_id  # eot has the largest id
    assert ids[1, 2].item() == tok.unk_id and ids[0, 5].item() == tok.pad_id
    with pytest.warns(UserWarning, match="1 of 2 texts cut"):
        long = tok(["a red circle a blue square", "a red"])
    assert long[0].tolist()[-1] == tok.eot_id and tok.truncated == 1


def test_the_tokenizer_warns_once_and_counts_every_cut():
    import warnings

    from convir.models.word_tokenizer import WordTokenizer

    tok = WordTokenizer.build(["a red circle"], context_length=5)
    with pytest.warns(UserWarning, match="later cuts are not reported"):
        tok.encode_batch(["a red circle a red circle"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second warning would raise here
        tok.encode_batch(["a red circle red", "a red circle red red"])
    assert tok.truncated == 3
