"""The models and the gallery a conversation works with, built once and shared by every turn.

Tools never load anything themselves: the graph is built around one :class:`Resources`
(embedder, index, the gallery's pooled vectors, a way to get any gallery image, optional
captions, and lazily the generator and the LLM). Patch features of gallery images (for OT
rerank) are computed on demand from the images and cached, so a gallery of any size costs
nothing until a candidate is reranked.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from convir.errors import InputError

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from convir.index.faiss_index import GalleryIndex
    from convir.models.embedder import Embedder, TextFeatures
    from convir.models.generator import Generator
    from convir.models.llm import LLM
    from convir.testbed.world import World

PATCH_CACHE_SIZE = 4096  # images whose patch features stay in memory (~2 MB each per 1k)
TEXT_CACHE_SIZE = 256  # texts whose pooled + token features stay in memory (~10 kB each)


@dataclass
class Resources:
    """Everything a turn needs, passed in explicitly (no hidden globals)."""

    embedder: Embedder
    index: GalleryIndex
    vectors: np.ndarray  # [N, D] unit pooled image embeddings, in index position order
    load_image: Callable[[int], Image.Image]  # index position -> the image
    captions: list[str] | None = None  # a caption per position, when the gallery has them
    generator_factory: Callable[[], Generator] | None = None
    llm: LLM | None = None
    world: World | None = None  # the testbed world, when the gallery is the testbed
    _generator: Generator | None = field(default=None, repr=False)
    _patches: OrderedDict[int, torch.Tensor] = field(default_factory=OrderedDict, repr=False)
    _texts: OrderedDict[str, TextFeatures] = field(default_factory=OrderedDict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.vectors.shape != (self.index.count, self.index.dim):
            raise InputError(
                f"gallery vectors {list(self.vectors.shape)} do not match the index "
                f"({self.index.count} x {self.index.dim})"
            )

    @property
    def generator(self) -> Generator | None:
        """The image generator, loaded on first use (DAR only needs it when it generates)."""
        with self._lock:
            if self._generator is None and self.generator_factory is not None:
                self._generator = self.generator_factory()
            return self._generator

    def positions(self, ids: Sequence[str]) -> list[int]:
        return [self.index.position_of(i) for i in ids]

    def text(self, text: str) -> TextFeatures:
        """Pooled and token features of one text ([1, D], [1, T, D], [1, T]), kept for reuse.

        A STiTch turn needs the query's pooled vector in ``retrieve`` and its tokens in
        ``ot_rerank``, and the reference caption every turn: one forward pass each, not three.
        """
        with self._lock:
            hit = self._texts.get(text)
            if hit is not None:
                self._texts.move_to_end(text)
                return hit
        feats = self.embedder.encode_text([text], tokens=True)
        with self._lock:
            self._texts[text] = feats
            while len(self._texts) > TEXT_CACHE_SIZE:
                self._texts.popitem(last=False)
        return feats

    def patches(self, positions: Sequence[int]) -> torch.Tensor:
        """Patch features [len, P, D] of gallery images, computed once per image."""
        import torch

        with self._lock:
            missing = [p for p in dict.fromkeys(positions) if p not in self._patches]
        if missing:
            feats = self.embedder.encode_images(
                [self.load_image(p) for p in missing], patches=True
            ).patches
            with self._lock:
                for p, f in zip(missing, feats, strict=True):
                    self._patches[p] = f.to(torch.float16)
                while len(self._patches) > max(PATCH_CACHE_SIZE, len(positions)):
                    self._patches.popitem(last=False)
        with self._lock:
            return torch.stack([self._patches[p] for p in positions]).float()

    @classmethod
    def for_testbed(
        cls,
        gallery_size: int = 1000,
        seed: int = 0,
        *,
        llm: LLM | None = None,
        generator: bool = True,
        progress: bool = True,
    ) -> Resources:
        """The testbed world of ``gallery_size`` scenes with the shipped CLIP and generator."""
        from tqdm import tqdm

        from convir.index.faiss_index import GalleryIndex
        from convir.models.embedder import load_embedder
        from convir.testbed.captions import full_caption
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

        def make_generator() -> Generator:
            from convir.models.generator import TestbedGenerator

            return TestbedGenerator(embedder=embedder)

        return cls(
            embedder=embedder,
            index=index,
            vectors=vectors,
            load_image=lambda p: render(world.scene(p)),
            captions=[full_caption(s) for s in scenes],
            generator_factory=make_generator if generator else None,
            llm=llm,
            world=world,
        )

    @classmethod
    def from_index(
        cls,
        index: GalleryIndex,
        embedder: Embedder,
        *,
        captions: list[str] | None = None,
        generator_factory: Callable[[], Generator] | None = None,
        llm: LLM | None = None,
    ) -> Resources:
        """Any saved index: images are read from the paths it recorded."""
        from pathlib import Path

        from convir.index.folder import load_image

        root = Path(index.image_root) if index.image_root else None

        def image_at(position: int) -> Image.Image:
            path = Path(index.path_of(position))
            return load_image(root / path if root and not path.is_absolute() else path)

        return cls(
            embedder=embedder,
            index=index,
            vectors=index.vectors(),
            load_image=image_at,
            captions=captions,
            generator_factory=generator_factory,
            llm=llm,
        )
