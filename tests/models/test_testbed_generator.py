"""The shipped testbed diffusion model: loads, generates deterministically, follows the text."""

import numpy as np
import pytest

from convir.errors import GenerationError, ModelError
from convir.models.generator import Generator, TestbedGenerator


@pytest.fixture(scope="module")
def generator():
    return TestbedGenerator(steps=20)


def test_generates_deterministic_images_independent_of_the_batch(generator):
    assert isinstance(generator, Generator)
    prompts = ["a large red circle in the center on a white background", "a small blue star"]
    out = generator.generate(prompts, n_per_prompt=2, seed=3)
    assert [len(x) for x in out] == [2, 2] and out[0][0].size == (64, 64)
    alone = generator.generate(prompts[1:], n_per_prompt=2, seed=3 + 1000)
    assert np.array_equal(np.asarray(out[1][1]), np.asarray(alone[0][1]))
    assert not np.array_equal(np.asarray(out[0][0]), np.asarray(out[0][1]))


def test_colours_in_the_prompt_show_in_the_image(generator):
    def pixels(prompt):
        imgs = generator.generate([prompt], n_per_prompt=4, seed=0)[0]
        return np.stack([np.asarray(im, dtype=float) for im in imgs]).reshape(-1, 3)

    def object_colour(a):
        saturated = a[a.max(axis=1) - a.min(axis=1) > 80]  # object pixels, not background
        assert len(saturated) > 50
        return saturated.mean(axis=0)

    red = object_colour(pixels("a large red square on a white background"))
    blue = object_colour(pixels("a large blue square on a white background"))
    assert red[0] - red[2] > 60, red
    assert blue[2] - blue[0] > 60, blue
    white = np.median(pixels("a small green star on a white background"), axis=0)
    gray = np.median(pixels("a small green star on a gray background"), axis=0)
    assert white.min() > 235 and 170 < gray.mean() < 215, (white, gray)


def test_bad_inputs(generator, tmp_path):
    with pytest.raises(GenerationError):
        generator.generate([])
    with pytest.raises(ModelError, match="--generator"):
        TestbedGenerator(tmp_path)
