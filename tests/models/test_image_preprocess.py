"""Batched image preprocessing gives the tensors of open_clip's per-image transform."""

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from convir.models.embedder import TESTBED_MODEL, OpenClipEmbedder, PixelRecipe, pixel_recipe


@pytest.fixture(scope="module")
def embedder():
    return OpenClipEmbedder(TESTBED_MODEL, None)  # preprocessing does not need the weights


def odd_images(target: int) -> list[Image.Image]:
    """Every mode convert("RGB") handles, at the target size, odd sizes and aspect ratios."""
    rng = np.random.default_rng(0)
    sizes = [(target, target), (target + 1, target - 1), (3 * target, target), (31, 97)]
    sizes += [(target, target + 16), (1, 1), (2 * target, 2 * target)]
    images = []
    for w, h in sizes:
        rgba = Image.fromarray(rng.integers(0, 256, (h, w, 4), dtype=np.uint8), "RGBA")
        rgb = rgba.convert("RGB")
        images += [rgba, rgb, rgba.convert("L"), rgb.convert("P"), rgba.convert("LA")]
        images += [rgba.convert("1"), rgb.convert("CMYK")]
    return images


def per_image(transform, images: list[Image.Image]) -> torch.Tensor:
    return torch.stack([transform(im.convert("RGB")) for im in images])


def test_image_tensor_equals_the_per_image_transform(embedder):
    images = odd_images(64)
    assert embedder._recipe is not None  # the testbed transform takes the fast path
    torch.testing.assert_close(
        embedder.image_tensor(images), per_image(embedder.preprocess, images), atol=1e-6, rtol=0
    )
    prepared = [embedder.prepare_image(im) for im in images]
    assert all(p.dtype == np.uint8 and p.shape == (64, 64, 3) for p in prepared)


@pytest.mark.parametrize(
    ("size", "mode", "interpolation", "mean", "std"),
    [
        (224, "shortest", "bicubic", None, None),  # ViT-B-32's eval transform
        (48, "shortest", "bilinear", (0.5, 0.25, 0.0), (0.5, 1.0, 2.0)),
        (40, "squash", "bicubic", None, None),  # Resize((h, w)) alone: a fixed size
    ],
)
def test_recipe_reads_open_clip_transforms(size, mode, interpolation, mean, std):
    transform = open_clip.image_transform(
        size, is_train=False, mean=mean, std=std, resize_mode=mode, interpolation=interpolation
    )
    recipe = pixel_recipe(transform)
    assert recipe is not None
    assert recipe.mean == tuple(transform.transforms[-1].mean)
    assert recipe.std == tuple(transform.transforms[-1].std)
    images = odd_images(size)[::3]
    got = recipe.normalise([recipe.pixels(im.convert("RGB")) for im in images])
    torch.testing.assert_close(got, per_image(transform, images), atol=1e-6, rtol=0)


def test_unknown_steps_keep_the_per_image_transform(embedder, monkeypatch):
    longest = open_clip.image_transform(64, is_train=False, resize_mode="longest")
    assert pixel_recipe(longest) is None  # ResizeKeepRatio + CenterCropOrPad
    assert pixel_recipe(lambda im: im) is None
    monkeypatch.setattr(embedder, "preprocess", longest)
    monkeypatch.setattr(embedder, "_recipe", None)
    images = odd_images(64)[:7]
    torch.testing.assert_close(embedder.image_tensor(images), per_image(longest, images))


def test_resize_and_crop_are_skipped_at_the_models_input_size():
    class Refuses:
        def __init__(self, size):
            self.size = size

        def __call__(self, image):
            raise AssertionError("resized or cropped an image already at the target size")

    recipe = PixelRecipe((Refuses(64), Refuses((64, 64))), (0.0,) * 3, (1.0,) * 3)
    image = Image.fromarray(np.arange(64 * 64 * 3, dtype=np.uint8).reshape(64, 64, 3))
    np.testing.assert_array_equal(recipe.pixels(image), np.asarray(image))
    tall = Image.new("RGB", (64, 80))
    with pytest.raises(AssertionError, match="already at the target size"):
        recipe.pixels(tall)  # shorter side 64 keeps Resize(64), but the crop must run
