"""The shipped testbed diffusion model: loads, generates deterministically, follows the text."""

import numpy as np
import pytest

from convir.errors import GenerationError, ModelError
from convir.models.generator import TESTBED_GENERATOR, Generator, TestbedGenerator

pytestmark = pytest.mark.skipif(
    not (TESTBED_GENERATOR / "unet" / "config.json").exists(),
    reason="the testbed generator is not trained yet",
)


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


def test_colour_in_the_prompt_shows_in_the_image(generator):
    def centre_rgb(prompt):
        imgs = generator.generate([prompt], n_per_prompt=4, seed=0)[0]
        return np.mean(
            [np.asarray(im, dtype=float)[20:44, 20:44].mean(axis=(0, 1)) for im in imgs], 0
        )

    red = centre_rgb("a large red square in the center on a white background")
    blue = centre_rgb("a large blue square in the center on a white background")
    assert red[0] - red[2] > 40, red
    assert blue[2] - blue[0] > 40, blue


def test_bad_inputs(generator, tmp_path):
    with pytest.raises(GenerationError):
        generator.generate([])
    with pytest.raises(ModelError, match="--generator"):
        TestbedGenerator(tmp_path)
