"""A dual encoder with no model: a text is the normalised sum of its words' fixed random
vectors, an image the vector of the caption it was drawn from. Graph tests built on it
fail on graph logic only, never because a trained model got worse."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from convir.models.embedder import ImageFeatures, TextFeatures

DIM = 64


def word_vector(word: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
    return np.random.default_rng(seed).standard_normal(DIM)


class FakeEmbedder:
    """Bag-of-words text vectors; an image carries its caption in ``image.info["caption"]``."""

    dim = DIM
    name = "fake-bag-of-words"
    concepts: tuple[str, ...] = ()

    def encode_text(self, texts: Sequence[str], *, tokens: bool = False) -> TextFeatures:
        if not texts:
            raise ValueError("encode_text needs at least one text")
        rows = [self._words(t) for t in texts]
        pooled = torch.tensor(np.stack([_unit(w.sum(axis=0)) for w in rows]), dtype=torch.float32)
        if not tokens:
            return TextFeatures(pooled)
        width = max(len(w) for w in rows)
        tok = torch.zeros(len(rows), width, DIM)
        mask = torch.zeros(len(rows), width, dtype=torch.bool)
        for i, w in enumerate(rows):
            tok[i, : len(w)] = torch.tensor(w / np.linalg.norm(w, axis=1, keepdims=True))
            mask[i, : len(w)] = True
        return TextFeatures(pooled, tok, mask)

    def encode_images(
        self, images: Sequence[Image.Image], *, patches: bool = False
    ) -> ImageFeatures:
        feats = self.encode_text(
            [im.info.get("caption", "") or "blank" for im in images], tokens=True
        )
        return ImageFeatures(feats.pooled, feats.tokens if patches else None)

    @staticmethod
    def _words(text: str) -> np.ndarray:
        words = re.findall(r"[a-z]+", text.lower()) or ["blank"]
        return np.stack([word_vector(w) for w in words])


def _unit(v: np.ndarray) -> np.ndarray:
    return v / (np.linalg.norm(v) or 1.0)


def fake_gallery(captions: list[str]):
    """Resources over images that are their captions (ids 'g000'...)."""
    from convir.gallery.resources import Resources
    from convir.index.faiss_index import GalleryIndex

    embedder = FakeEmbedder()
    vectors = embedder.encode_text(captions).pooled.numpy()
    ids = [f"g{i:03d}" for i in range(len(captions))]
    index = GalleryIndex.build(vectors, ids, ids, factory="Flat")

    def image_at(position: int) -> Image.Image:
        image = Image.new("RGB", (8, 8))
        image.info["caption"] = captions[position]
        return image

    return Resources(embedder, index, vectors, image_at, captions=list(captions))
