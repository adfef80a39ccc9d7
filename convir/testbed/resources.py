"""The testbed gallery handed to the agent as any gallery is: vectors, images, texts, a bank.

This is the in-memory shortcut of the testbed path (``convir demo``, ``convir eval run``
without ``--via-index``): the gallery is rendered and embedded here, its texts are the
ground-truth captions and its question bank is the template menu. The public path writes the
same world as image files and goes through ``convir index`` instead (no world reaches the
agent there).
"""

from __future__ import annotations

import functools

import numpy as np

from convir.errors import InputError
from convir.gallery.resources import Resources
from convir.models.llm import LLM


def testbed_resources(
    gallery_size: int = 1000,
    seed: int = 0,
    *,
    llm: LLM | None = None,
    generator: bool = True,
    progress: bool = True,
    templates: bool = True,
) -> Resources:
    """The testbed world of ``gallery_size`` scenes with the shipped CLIP and generator.

    ``templates``: ask the testbed's template questions (else the caption-mined bank over
    the ground-truth captions).
    """
    from tqdm import tqdm

    from convir.index.faiss_index import GalleryIndex
    from convir.models.embedder import load_embedder
    from convir.testbed.captions import full_caption
    from convir.testbed.questions import TemplateBank
    from convir.testbed.render import render
    from convir.testbed.world import World

    if gallery_size < 1:
        raise InputError(f"gallery size must be positive, got {gallery_size}")
    world = World(seed=seed, size=gallery_size)
    embedder = load_embedder()
    scenes = world.scenes()
    chunks = range(0, len(scenes), 512)
    vectors = np.concatenate(
        [
            embedder.encode_images([render(s) for s in scenes[i : i + 512]]).pooled.numpy()
            for i in tqdm(chunks, desc="embed gallery", disable=not progress)
        ]
    ).astype(np.float32)
    ids = [s.id for s in scenes]
    index = GalleryIndex.build(vectors, ids, ids, factory="Flat")

    from convir.models.generator import TestbedGenerator

    make_generator = functools.partial(TestbedGenerator, embedder=embedder)
    return Resources(
        embedder=embedder,
        index=index,
        vectors=vectors,
        load_image=lambda p: render(world.scene(p)),
        captions=[full_caption(s) for s in scenes],
        generator_factory=make_generator if generator else None,
        llm=llm,
        question_bank=TemplateBank() if templates else None,
    )
