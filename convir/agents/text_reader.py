"""Which candidates' texts state a fact: the answer model's caption reading, made cheap.

The answer model reads a candidate's answer off its text where a text states one of the
question's facts (``answers.py``). Asking that of a pool of 50-100 captions for every fact
of a menu of questions, every turn, was most of a turn's time (an evaluation of 1,000
dialogues spent 85% of it here). Two readers answer the same question:

- :class:`GalleryTexts` indexes the whole gallery once (:class:`ClauseIndex`, on first use)
  and remembers each fact's holders (a mask over the gallery), so a fact costs one lookup per gallery for the life of
  the agent; a pool reads its rows off that. Used up to :data:`GALLERY_INDEX_MAX` texts.
- :meth:`PoolTexts.of` indexes only the pool's texts, per call: for plain caption lists and
  galleries too large to index whole in memory.

Both give :func:`convir.agents.questions.states`'s answer exactly.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from convir.agents.questions import ClauseIndex

GALLERY_INDEX_MAX = 200_000  # texts indexed whole (~100 MB of sets at this size)
MASK_BUDGET_BYTES = 128 * 2**20  # memoized per-fact masks (one byte per gallery item each)


class GalleryTexts:
    """A gallery's texts (by position; None where an image has none) and, per fact, a mask
    of the positions whose text states it."""

    def __init__(self, texts: Sequence[str | None]) -> None:
        self.texts = texts
        self.captioned = np.fromiter((bool(t) for t in texts), dtype=bool, count=len(texts))
        self._index: ClauseIndex | None = None
        self._masks: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def mask(self, fact: str) -> np.ndarray:
        """Bool [gallery]: whose text states ``fact`` (memoized within a byte budget)."""
        found = self._masks.get(fact)
        if found is not None:
            return found
        with self._lock:
            if self._index is None:
                self._index = ClauseIndex(self.texts)
            if (len(self._masks) + 1) * len(self.texts) > MASK_BUDGET_BYTES:
                self._masks.clear()  # start over: a memo, not a store
        found = np.zeros(len(self.texts), dtype=bool)
        found[list(self._index.holders(fact))] = True
        self._masks[fact] = found
        return found

    def pool(self, positions: Sequence[int] | np.ndarray) -> PoolTexts:
        """The reader of these gallery positions' texts."""
        return PoolTexts(np.asarray(positions, dtype=np.int64), self)


class PoolTexts:
    """The texts of a pool of candidates (rows), read fact by fact."""

    def __init__(
        self,
        positions: np.ndarray,
        gallery: GalleryTexts | None = None,
        local: ClauseIndex | None = None,
        captioned: np.ndarray | None = None,
    ) -> None:
        self.positions = positions
        self._gallery = gallery
        self._local = local
        if captioned is None:
            captioned = gallery.captioned[positions] if gallery is not None else None
        self.captioned: np.ndarray = captioned  # type: ignore[assignment]

    @classmethod
    def of(cls, texts: Sequence[str | None]) -> PoolTexts:
        """A reader of these texts alone (row i = ``texts[i]``), indexed now."""
        captioned = np.fromiter((bool(t) for t in texts), dtype=bool, count=len(texts))
        return cls(np.arange(len(texts)), local=ClauseIndex(texts), captioned=captioned)

    def __len__(self) -> int:
        return len(self.positions)

    def said(self, fact: str) -> np.ndarray:
        """Bool [rows]: whose text states ``fact``."""
        if self._local is not None:
            out = np.zeros(len(self.positions), dtype=bool)
            out[list(self._local.holders(fact))] = True
            return out
        assert self._gallery is not None
        return self._gallery.mask(fact)[self.positions]
