"""Which candidates' texts state a fact: the answer model's caption reading, made cheap.

The answer model reads a candidate's answer off its text where a text states one of the
question's facts (``answers.py``). Asking that of a pool of 50-100 captions for every fact
of a menu of questions, every turn, was most of a turn's time (an evaluation of 1,000
dialogues spent 85% of it here). Two readers answer the same question:

- :class:`GalleryTexts` indexes the whole gallery once (:class:`ClauseIndex`, on first use)
  and keeps each fact's holders (a row of masks over the gallery), so a fact costs one lookup per gallery for the life of
  the agent; a pool reads its rows off that. Used up to :data:`GALLERY_INDEX_MAX` texts.
- :meth:`PoolTexts.of` indexes only the pool's texts, per call: for plain caption lists and
  galleries too large to index whole in memory.

Both give :func:`convir.gallery.clauses.states`'s answer exactly.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from convir.gallery.clauses import ClauseIndex

GALLERY_INDEX_MAX = 200_000  # texts indexed whole (~100 MB of sets at this size)
MASK_BUDGET_BYTES = 128 * 2**20  # memoized per-fact masks (one byte per gallery item each)


class GalleryTexts:
    """A gallery's texts (by position; None where an image has none) and, per fact, a mask
    of the positions whose text states it."""

    def __init__(self, texts: Sequence[str | None]) -> None:
        self.texts = texts
        self.captioned = np.fromiter((bool(t) for t in texts), dtype=bool, count=len(texts))
        self._index: ClauseIndex | None = None
        self._rows: dict[str, int] = {}  # fact -> its row of the mask store
        self._store = np.zeros((0, len(texts)), dtype=bool)  # [capacity, gallery]
        self._lock = threading.Lock()

    def said(self, positions: np.ndarray, facts: Sequence[str]) -> np.ndarray:
        """Bool [len(positions), len(facts)]: whose text states each fact. Each fact's mask
        over the gallery is computed once and kept (within a byte budget)."""
        with self._lock:
            if self._index is None:
                self._index = ClauseIndex(self.texts)
            new = [f for f in dict.fromkeys(facts) if f not in self._rows]
            if (len(self._rows) + len(new)) * max(1, len(self.texts)) > MASK_BUDGET_BYTES:
                self._rows.clear()  # start over: a memo, not a store
                new = list(dict.fromkeys(facts))
            if new:
                self._grow(len(self._rows) + len(new))
                for f in new:
                    row = len(self._rows)
                    self._store[row] = False
                    self._store[row, list(self._index.holders(f))] = True
                    self._rows[f] = row
            rows = [self._rows[f] for f in facts]
            return self._store[np.ix_(rows, positions)].T

    def mask(self, fact: str) -> np.ndarray:
        """Bool [gallery]: whose text states ``fact``."""
        return self.said(np.arange(len(self.texts)), [fact])[:, 0]

    def _grow(self, rows: int) -> None:
        if rows > len(self._store):
            capacity = max(rows, 2 * len(self._store), 64)
            capacity = min(capacity, max(rows, MASK_BUDGET_BYTES // max(1, len(self.texts))))
            grown = np.zeros((capacity, len(self.texts)), dtype=bool)
            grown[: len(self._store)] = self._store
            self._store = grown

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

    def said(self, facts: Sequence[str]) -> np.ndarray:
        """Bool [rows, len(facts)]: whose text states each fact."""
        if self._local is not None:
            out = np.zeros((len(self.positions), len(facts)), dtype=bool)
            for j, fact in enumerate(facts):
                out[list(self._local.holders(fact)), j] = True
            return out
        assert self._gallery is not None
        return self._gallery.said(self.positions, facts)
