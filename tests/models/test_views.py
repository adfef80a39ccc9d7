"""Augmented views: the crop sampler, determinism per item, and the embedded shape."""

import numpy as np
import pytest
import torch
from PIL import Image

from convir.errors import InputError
from convir.models.embedder import ImageFeatures
from convir.models.views import (
    AUGMENTS,
    augment_of,
    augmented_views,
    crop_box,
    embed_views,
    view_rng,
)


def test_gentle_crops_keep_80_to_100_percent_of_the_area_and_never_flip():
    rng = np.random.default_rng(0)
    for _ in range(500):
        left, top, right, bottom = crop_box(64, 64, AUGMENTS["gentle"], rng)
        assert 0 <= left < right <= 64 and 0 <= top < bottom <= 64
        assert 0.75 <= (right - left) * (bottom - top) / 64**2 <= 1.0
    image = Image.new("RGB", (64, 64))
    image.putpixel((0, 0), (255, 0, 0))
    views = augmented_views(image, 50, AUGMENTS["gentle"], np.random.default_rng(1))
    assert all(v.size == (64, 64) for v in views)
    # the red pixel never moves to the right half (a flip would put it there)
    assert all(np.asarray(v)[:, 32:, 0].max() < 128 for v in views)


def test_published_crops_reach_small_areas_and_flip_about_half_the_time():
    rng = np.random.default_rng(0)
    areas = []
    for _ in range(500):
        left, top, right, bottom = crop_box(64, 64, AUGMENTS["published"], rng)
        areas.append((right - left) * (bottom - top) / 64**2)
    assert min(areas) < 0.15 and max(areas) > 0.9
    image = Image.new("RGB", (64, 64))
    image.paste((255, 0, 0), (0, 0, 8, 64))  # a red stripe at the left edge, all heights
    views = augmented_views(image, 400, AUGMENTS["published"], np.random.default_rng(2))
    right = [
        np.asarray(v)[:, -1, 0].max() > 128 and np.asarray(v)[:, 0, 0].max() < 128 for v in views
    ]
    assert 0.2 < np.mean(right) < 0.5  # flipped, and the crop kept the stripe


class CountingEmbedder:
    """Mean colour as a 3-d embedding: enough to tell views apart."""

    dim = 3

    def __init__(self):
        self.images = 0

    def encode_images(self, images, patches=False):
        self.images += len(images)
        arr = np.stack([np.asarray(im, dtype=np.float32).mean(axis=(0, 1)) + 1 for im in images])
        return ImageFeatures(torch.nn.functional.normalize(torch.from_numpy(arr), dim=-1))


def test_views_depend_on_the_item_not_on_the_batch():
    rng = np.random.default_rng(5)
    images = [Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)) for _ in range(4)]
    ids = ["a", "b", "c", "d"]
    emb = CountingEmbedder()
    together = embed_views(emb, images, ids, 6, "published")
    alone = np.concatenate(
        [embed_views(emb, [im], [i], 6, "published") for im, i in zip(images, ids, strict=True)]
    )
    assert together.shape == (4, 6, 3) and emb.images == 48
    np.testing.assert_allclose(together, alone, atol=1e-6)
    other_seed = embed_views(emb, images, ids, 6, "published", seed=1)
    assert not np.allclose(together, other_seed)
    assert view_rng(0, "a").random() == view_rng(0, "a").random()


def test_unknown_presets_and_bad_counts_are_input_errors():
    with pytest.raises(InputError, match="published, gentle"):
        augment_of("wild")
    with pytest.raises(InputError, match=">= 1"):
        embed_views(CountingEmbedder(), [Image.new("RGB", (8, 8))], ["x"], 0)
