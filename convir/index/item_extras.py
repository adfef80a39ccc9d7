"""What an index may hold beside its vectors, one entry per item: captions, caption vectors
(a text model's embeddings of them) and augmented views (STiTch's set score). A mixin of
:class:`~convir.index.faiss_index.GalleryIndex`, which supplies ``count``, ``dim`` and
``_check_position``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from convir.errors import InputError


class ItemExtras:
    """Per-item side data of an index, checked against its size on the way in."""

    count: int
    dim: int
    text_model: str | None
    _captions: list[str | None] | None
    captions_source: str | None
    _caption_vectors: np.ndarray | None
    _views: np.ndarray | None
    views_augment: str | None

    def _check_position(self, position: int) -> int:
        raise NotImplementedError  # GalleryIndex's

    def _no_extras(self) -> None:
        """Start with none of them (a new index, or one loaded before its members)."""
        self._captions, self.captions_source = None, None
        self._caption_vectors = None
        self._views, self.views_augment = None, None

    # -- captions -----------------------------------------------------------------------
    @property
    def captions(self) -> list[str | None] | None:
        """One text per item in position order (None where an item has none), or None."""
        return None if self._captions is None else list(self._captions)

    def caption_of(self, position: int) -> str | None:
        return None if self._captions is None else self._captions[self._check_position(position)]

    def set_captions(self, captions: Sequence[str | None], source: str) -> None:
        """Attach one text (or None) per item; ``source`` says where they came from."""
        if len(captions) != self.count:
            raise InputError(f"{len(captions)} captions for an index of {self.count} items")
        self._captions = [c if c is None else str(c) for c in captions]
        self.captions_source = source

    # -- caption vectors ----------------------------------------------------------------
    @property
    def caption_vectors_dim(self) -> int:
        """Width of the stored caption vectors (0 when the index holds none)."""
        return 0 if self._caption_vectors is None else int(self._caption_vectors.shape[1])

    def caption_vectors(self) -> np.ndarray | None:
        """The caption vectors [count, text dim] (float16, a zero row where no caption), or
        None; compare them with :attr:`text_model`'s query vectors, not the image model's."""
        return self._caption_vectors

    def set_caption_vectors(self, vectors: Any, text_model: str) -> None:
        """Attach one caption vector per item (zero rows for items without a caption),
        embedded by ``text_model``; kept as float16 (cosines lose < 1e-3)."""
        arr = np.asarray(vectors)
        if arr.ndim != 2 or arr.shape[0] != self.count or not arr.shape[1]:
            raise InputError(
                f"caption vectors must be [{self.count}, d >= 1]; got {list(arr.shape)}"
            )
        if not np.isfinite(arr).all():
            raise InputError("caption vectors contain NaN or infinite values")
        self._caption_vectors = arr.astype(np.float16, copy=False)
        self.text_model = text_model

    # -- views --------------------------------------------------------------------------
    @property
    def view_count(self) -> int:
        """Augmented views stored per image (0 when the index holds none)."""
        return 0 if self._views is None else int(self._views.shape[1])

    def views_of(self, positions: Sequence[int]) -> np.ndarray:
        """Stored view embeddings [len(positions), views, dim] (float32)."""
        if self._views is None:
            raise InputError("this index holds no views; rebuild it with `convir index --views N`")
        return self._views[[self._check_position(p) for p in positions]].astype(np.float32)

    def set_views(self, views: Any, augment: str) -> None:
        """Attach [count, n, dim] view embeddings, kept as float16 (half the memory; cosines
        of unit vectors lose < 1e-3) and not copied when they already are."""
        arr = np.asarray(views)
        if (
            arr.ndim != 3
            or arr.shape[0] != self.count
            or arr.shape[2] != self.dim
            or not arr.shape[1]
        ):
            raise InputError(
                f"views must be [{self.count}, n >= 1, {self.dim}]; got {list(arr.shape)}"
            )
        self._views = arr.astype(np.float16, copy=False)
        self.views_augment = augment
