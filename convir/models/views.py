"""Augmented views of gallery images: STiTch's image side, a set of embeddings per image.

STiTch compares a *set* of target descriptions with a *set* of views of each gallery image:
the image itself plus ``n`` randomly cropped (and flipped) copies, each embedded by the CLIP
image tower. A view that keeps the described object large scores higher against a
description of it; the set score then rewards images that match from several viewpoints.

Two presets:

- ``published``: what STiTch's code does (random resized crop to the model's input, random
  horizontal flip). The notes do not record the crop scale, so torchvision's default
  ``scale=(0.08, 1), ratio=(3/4, 4/3)`` is used, flip probability 0.5.
- ``gentle``: crops of 80-100% of the area, aspect 0.9-1.1, no flip. For galleries whose
  descriptions name positions ("at the top left"), a flip swaps left and right and a small
  crop can cut the named object out or move it to another third of the frame: such views
  contradict a correct description. ``gentle`` keeps every object in the frame and in its
  third of it (a crop of >= 80% of the area moves a point by at most ~11% of the side).

Views are sampled from a random generator seeded by (seed, item id), so an image gets the
same views whether it is embedded at index time, in a batch of 1 or of 1,000. The plain
image is not part of the returned views: its embedding is the index's own vector.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from convir.errors import InputError

if TYPE_CHECKING:
    from PIL import Image

    from convir.models.embedder import Embedder

ViewPreset = Literal["published", "gentle"]
VIEW_PRESETS: tuple[str, ...] = ("published", "gentle")


@dataclass(frozen=True)
class ViewAugment:
    """Random resized crop (area share, aspect ratio) then a horizontal flip."""

    scale: tuple[float, float]
    ratio: tuple[float, float]
    flip: float


AUGMENTS: dict[str, ViewAugment] = {
    "published": ViewAugment(scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), flip=0.5),
    "gentle": ViewAugment(scale=(0.8, 1.0), ratio=(0.9, 1.1), flip=0.0),
}


def augment_of(preset: str) -> ViewAugment:
    """The augmentation of a preset name; an unknown name is an :class:`InputError`."""
    try:
        return AUGMENTS[preset]
    except KeyError:
        raise InputError(
            f"unknown view augmentation {preset!r}; choose one of {', '.join(VIEW_PRESETS)}"
        ) from None


def view_rng(seed: int, item_id: str) -> np.random.Generator:
    """The random generator of one item's views (stable across runs and batch sizes)."""
    return np.random.default_rng([seed, zlib.crc32(item_id.encode("utf-8"))])


def crop_box(
    width: int, height: int, augment: ViewAugment, rng: np.random.Generator
) -> tuple[int, int, int, int]:
    """A random (left, top, right, bottom) box: torchvision's RandomResizedCrop sampling
    (ten tries at a random area and log-uniform aspect, else the centred largest box)."""
    area = width * height
    log_lo, log_hi = math.log(augment.ratio[0]), math.log(augment.ratio[1])
    for _ in range(10):
        target = area * rng.uniform(*augment.scale)
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            left = int(rng.integers(0, width - w + 1))
            top = int(rng.integers(0, height - h + 1))
            return left, top, left + w, top + h
    aspect = width / height
    if aspect < augment.ratio[0]:
        w, h = width, round(width / augment.ratio[0])
    elif aspect > augment.ratio[1]:
        w, h = round(height * augment.ratio[1]), height
    else:
        w, h = width, height
    left, top = (width - w) // 2, (height - h) // 2
    return left, top, left + w, top + h


def augmented_views(
    image: Image.Image, n: int, augment: ViewAugment, rng: np.random.Generator
) -> list[Image.Image]:
    """``n`` augmented copies of ``image``, each resized back to the image's own size (the
    embedder's preprocessing then sizes it for the model, as it does the plain image)."""
    from PIL import Image as PILImage

    out = []
    for _ in range(n):
        box = crop_box(image.width, image.height, augment, rng)
        view = image.crop(box).resize(image.size, PILImage.Resampling.BICUBIC)
        if rng.random() < augment.flip:
            view = view.transpose(PILImage.Transpose.FLIP_LEFT_RIGHT)
        out.append(view)
    return out


def embed_views(
    embedder: Embedder,
    images: Sequence[Image.Image],
    item_ids: Sequence[str],
    n: int,
    preset: str = "published",
    seed: int = 0,
) -> np.ndarray:
    """Unit embeddings of ``n`` augmented views per image: [len(images), n, D] float32."""
    if len(images) != len(item_ids):
        raise InputError(f"{len(images)} images but {len(item_ids)} ids")
    if n < 1:
        raise InputError(f"the number of views must be >= 1; got {n}")
    augment = augment_of(preset)
    flat = [
        view
        for image, item in zip(images, item_ids, strict=True)
        for view in augmented_views(image, n, augment, view_rng(seed, item))
    ]
    if not flat:
        return np.zeros((0, n, embedder.dim), dtype=np.float32)
    pooled = embedder.encode_images(flat).pooled.numpy().astype(np.float32)
    return pooled.reshape(len(images), n, -1)
