"""Held-out measurements of a testbed CLIP: the numbers a real CLIP would be judged by.

- ``pair_precision_at_10``: "a {colour} {shape}" queries over every pair the gallery holds
  at least ten times; precision of the top 10 (what a newcomer's first search shows).
- ``full_r10`` / ``partial_r10``: each image's canonical caption, and the simulated user's
  round-0 opening (one object, colour + shape and at most one more attribute), text to image.
- ``pointing``: for "a {colour} {shape}" naming an object of a 2+ object scene whose colour
  and shape no other object there has, the share of the colour and shape word tokens whose
  most similar patch lies in the object's grid cell (the part-to-part alignment the OT
  reranker reads; chance is about the cell's share of the patches, ~0.14), and
  ``pointing_margin``: their mean cosine to the patches inside the cell minus outside it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from convir.testbed.captions import full_caption, partial_caption
from convir.testbed.render import render
from convir.testbed.world import COLOURS, SHAPES, World

if TYPE_CHECKING:
    from convir.models.embedder import OpenClipEmbedder

HELD_OUT_SEED = 77  # never a training seed (training draws from clip_train.TRAIN_SEED)


def _rank_of_diagonal(sims: np.ndarray) -> np.ndarray:
    target = np.diagonal(sims)[:, None]
    return (sims > target).sum(axis=1)  # ties count in the target's favour


def pair_precision_at_10(
    embedder: OpenClipEmbedder, world: World, images: np.ndarray, min_count: int = 10
) -> tuple[float, int]:
    """Mean precision@10 of "a {colour} {shape}" over the pairs held >= ``min_count`` times."""
    scenes = world.scenes()
    holds = {
        (c, s): np.array([any(o.colour == c and o.shape == s for o in sc.objects) for sc in scenes])
        for c in COLOURS
        for s in SHAPES
    }
    pairs = [p for p, mask in holds.items() if mask.sum() >= min_count]
    texts = [f"a {c} {s}" for c, s in pairs]
    sims = embedder.encode_text(texts).pooled.numpy() @ images.T
    top = np.argsort(-sims, axis=1)[:, :10]
    precision = [holds[p][row].mean() for p, row in zip(pairs, top, strict=True)]
    return float(np.mean(precision)), len(pairs)


def pointing_accuracy(
    embedder: OpenClipEmbedder, world: World, limit: int = 300, image_size: int = 64
) -> tuple[float, float]:
    """(share of colour/shape word tokens whose best patch lies in the named object's cell,
    mean cosine margin inside vs outside the cell)."""
    cases = []
    for scene in world.scenes():
        if len(scene.objects) < 2:
            continue
        for o in scene.objects:  # colour and shape each unique: both words name this object
            same = [p for p in scene.objects if p.colour == o.colour or p.shape == o.shape]
            if len(same) == 1:
                cases.append((scene, o))
                break
        if len(cases) >= limit:
            break
    texts = [f"a {o.colour} {o.shape}" for _, o in cases]
    text = embedder.encode_text(texts, tokens=True)
    image = embedder.encode_images([render(s, image_size) for s, _ in cases], patches=True)
    patches = image.patches.numpy()  # [N, P, D]
    side = int(round(np.sqrt(patches.shape[1])))
    centres = (np.arange(side) + 0.5) / side  # patch centres as fractions of the image
    hits = total = 0
    margins = []
    for k, (_, o) in enumerate(cases):
        row, col = divmod(o.cell, 3)
        in_row = (centres >= row / 3) & (centres < (row + 1) / 3)
        in_col = (centres >= col / 3) & (centres < (col + 1) / 3)
        inside = (in_row[:, None] & in_col[None, :]).reshape(-1)
        tokens = text.tokens[k].numpy()
        for pos in (2, 3):  # <sot> a {colour} {shape} <eot>
            sims = patches[k] @ tokens[pos]
            hits += bool(inside[int(np.argmax(sims))])
            margins.append(float(sims[inside].mean() - sims[~inside].mean()))
            total += 1
    return hits / max(1, total), float(np.mean(margins))


def evaluate_clip(
    embedder: OpenClipEmbedder, size: int = 1000, seed: int = HELD_OUT_SEED
) -> dict[str, float]:
    """Every held-out number of this module on world ``seed`` (``size`` images)."""
    world = World(seed=seed, size=size)
    scenes = world.scenes()
    images = embedder.encode_images([render(s) for s in scenes]).pooled.numpy()
    rng = np.random.default_rng([seed, 99])
    out: dict[str, float] = {}
    for kind, texts in (
        ("full", [full_caption(s) for s in scenes]),
        ("partial", [partial_caption(s, rng) for s in scenes]),
    ):
        ranks = _rank_of_diagonal(embedder.encode_text(texts).pooled.numpy() @ images.T)
        out[f"{kind}_r1"] = float((ranks < 1).mean())
        out[f"{kind}_r10"] = float((ranks < 10).mean())
    out["pair_p10"], out["pairs"] = pair_precision_at_10(embedder, world, images)
    out["pointing"], out["pointing_margin"] = pointing_accuracy(embedder, world)
    return out
