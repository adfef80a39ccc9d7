"""A FAISS index over a gallery, with its id/path lists and metadata, saved as one file.

Vectors are compared by inner product. Gallery vectors are L2-normalised on the way in, so a
score is the cosine to a unit query; queries are used as given, so a weighted sum of unit
query vectors (DAR's text + generated-image query) scores as the same weighted sum of cosines.

The index is built from a FAISS factory string (``Flat``, ``IVF1024,Flat``, ``HNSW32``,
``IVF1024,PQ32``...). Position ``i`` in the FAISS index is gallery item ``i``: ``ids[i]`` (the
image's path relative to the image root) and ``paths[i]`` (where the file was read from).

File format: one zip archive (``gallery.index``) holding

    convir-index.json   metadata: format version, dim, factory, metric, model, pretrained,
                        count, image root, created (UTC, ISO 8601); ``text_model``: the
                        sentence model that embedded a captions-only index (whose
                        ``model`` is null; ``convir.index.captions_only``)
    ids.json            list of ids, in position order
    paths.json          list of paths, in position order
    index.faiss         the FAISS index as written by ``faiss.write_index`` (stored, not deflated)
    captions.json       optional: one text per item (or null), from a captions file or a
                        captioning model; ``captions_source`` in the metadata says which
    views.npy           optional: float16 [count, views, dim] embeddings of augmented views
                        of every image (STiTch's set score; ``convir index --views N``);
                        ``views`` and ``views_augment`` in the metadata
    caption_vectors.npy optional: float16 [count, text dim] unit embeddings of each image's
                        caption by the text model ``text_model`` (a zero row: no caption;
                        ``convir index FOLDER --captions F --text-model NAME``);
                        ``caption_vectors_dim`` in the metadata

Zip gives per-member CRC-32 checks (a damaged file fails to load instead of returning
garbage) and can be inspected with standard tools. :meth:`GalleryIndex.save` writes a temp
file next to the target and ``os.replace``-s it, so a crash mid-save leaves the previous
index intact and loadable. The file format itself is in ``archive``, the write and the
checks of a read file in ``index_file``, the default-factory rules in ``factory``, the
per-item captions, caption vectors and views in ``item_extras``, the vector checks in
``vector_checks``; this module is the index class: build, train, add, search, tune.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from convir.errors import IndexFileError, InputError
from convir.index.archive import (  # noqa: F401  (the file format's names, public here too)
    CAPTION_VECTORS_MEMBER,
    CAPTIONS_MEMBER,
    FAISS_MEMBER,
    FORMAT,
    FORMAT_VERSION,
    IDS_MEMBER,
    META_MEMBER,
    PATHS_MEMBER,
    VIEWS_MEMBER,
    IndexMeta,
    faiss_reason,
    read_archive,
    write_archive,
)
from convir.index.factory import (  # noqa: F401  (public here too)
    DEFAULT_EF_SEARCH,
    DEFAULT_NPROBE,
    FLAT_MAX,
    HNSW_MAX,
    TRAIN_SIZE,
    default_factory,
    default_nprobe,
    ivf_nlist,
)
from convir.index.index_file import read_index_file, write_index_file
from convir.index.item_extras import ItemExtras
from convir.index.vector_checks import as_matrix, unit_rows

if TYPE_CHECKING:
    import faiss


class Hit(NamedTuple):
    """One search result, ready to print."""

    rank: int  # 1-based
    score: float
    position: int
    id: str
    path: str


class GalleryIndex(ItemExtras):
    """A FAISS index plus the ids and paths of what it holds, and the model that embedded it.

    Build one with :meth:`build` (train + add in one go) or step by step: construct it empty,
    :meth:`train` it (IVF/PQ factories only), then :meth:`add` vectors with their ids and paths.
    """

    def __init__(
        self,
        dim: int,
        factory: str = "Flat",
        *,
        model: str | None = None,
        pretrained: str | None = None,
        image_root: str | None = None,
        text_model: str | None = None,
    ) -> None:
        import faiss

        if dim < 1:
            raise InputError(f"index dimension must be positive, got {dim}")
        try:
            index = faiss.index_factory(int(dim), factory, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as exc:
            raise InputError(
                f"--factory: faiss cannot build {factory!r} ({faiss_reason(exc)}); "
                "use e.g. Flat, IVF1024,Flat, HNSW32 or IVF1024,PQ32"
            ) from exc
        self._setup(index, factory, [], [])
        self.model, self.pretrained, self.image_root = model, pretrained, image_root
        self.text_model = text_model
        self._no_extras()
        self.created = datetime.now(UTC).isoformat(timespec="seconds")
        if self._ivf() is not None:
            self.nprobe = default_nprobe(self._ivf().nlist)
        if self._hnsw() is not None:
            self.ef_search = DEFAULT_EF_SEARCH

    def _setup(self, index: faiss.Index, factory: str, ids: list[str], paths: list[str]) -> None:
        self._index = index
        self.factory = factory
        self._ids = ids
        self._paths = paths
        self._positions = {item: pos for pos, item in enumerate(ids)}

    @classmethod
    def build(
        cls,
        vectors: Any,
        ids: Sequence[str],
        paths: Sequence[str],
        *,
        factory: str | None = None,
        model: str | None = None,
        pretrained: str | None = None,
        image_root: str | None = None,
        text_model: str | None = None,
    ) -> GalleryIndex:
        """Train (when the factory needs it) and fill an index in one call.

        ``factory=None`` picks :func:`default_factory` for the number of vectors.
        """
        arr = np.asarray(vectors, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[0] == 0:
            raise InputError(f"build needs a non-empty [N, D] array, got {list(arr.shape)}")
        count, dim = arr.shape
        index = cls(
            dim,
            factory or default_factory(count, dim),
            model=model,
            pretrained=pretrained,
            image_root=image_root,
            text_model=text_model,
        )
        if not index.is_trained:
            index.train(arr)
        index.add(arr, ids, paths)
        return index

    # -- structure ----------------------------------------------------------------------
    def _core(self) -> faiss.Index:
        """The index under any pre-transform (PCA, OPQ), downcast to its concrete type."""
        import faiss

        index = self._index
        while isinstance(index, faiss.IndexPreTransform):
            index = faiss.downcast_index(index.index)
        return index

    def _ivf(self) -> faiss.IndexIVF | None:
        import faiss

        try:
            return faiss.extract_index_ivf(self._index)
        except RuntimeError:
            return None

    def _hnsw(self) -> Any:
        return getattr(self._core(), "hnsw", None)

    @property
    def dim(self) -> int:
        return int(self._index.d)

    @property
    def count(self) -> int:
        return int(self._index.ntotal)

    def __len__(self) -> int:
        return self.count

    @property
    def is_trained(self) -> bool:
        return bool(self._index.is_trained)

    @property
    def min_train_vectors(self) -> int:
        """Fewest training vectors faiss accepts: k-means needs a point per centroid."""
        need = 1
        ivf = self._ivf()
        if ivf is not None:
            need = max(need, int(ivf.nlist))
        pq = getattr(self._core(), "pq", None)
        if pq is not None:
            need = max(need, 1 << int(pq.nbits))
        return need if not self.is_trained else 0

    @property
    def nlist(self) -> int | None:
        """Number of IVF lists; None if not IVF."""
        ivf = self._ivf()
        return None if ivf is None else int(ivf.nlist)

    @property
    def nprobe(self) -> int | None:
        """IVF lists visited per query (more: better recall, slower); None if not IVF."""
        ivf = self._ivf()
        return None if ivf is None else int(ivf.nprobe)

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        ivf = self._ivf()
        if ivf is None:
            raise InputError(f"--nprobe applies to IVF indexes; this one is {self.factory!r}")
        if value < 1:
            raise InputError(f"--nprobe must be at least 1, got {value}")
        ivf.nprobe = min(int(value), int(ivf.nlist))

    @property
    def ef_search(self) -> int | None:
        """HNSW candidate-list size per query (more: better recall, slower); None if not HNSW."""
        hnsw = self._hnsw()
        return None if hnsw is None else int(hnsw.efSearch)

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        hnsw = self._hnsw()
        if hnsw is None:
            raise InputError(f"--ef-search applies to HNSW indexes; this one is {self.factory!r}")
        if value < 1:
            raise InputError(f"--ef-search must be at least 1, got {value}")
        hnsw.efSearch = int(value)

    def serialized_bytes(self) -> int:
        """Size of the FAISS index as ``faiss.write_index`` writes it (vectors, lists, graph
        links): what it takes in memory, to within a few percent, without ids and paths."""
        import faiss

        return int(faiss.serialize_index(self._index).size)

    @property
    def meta(self) -> IndexMeta:
        return IndexMeta(
            dim=self.dim,
            factory=self.factory,
            count=self.count,
            model=self.model,
            pretrained=self.pretrained,
            image_root=self.image_root,
            created=self.created,
            captions_source=self.captions_source if self._captions is not None else None,
            views=0 if self._views is None else int(self._views.shape[1]),
            views_augment=self.views_augment if self._views is not None else None,
            text_model=self.text_model,
            caption_vectors_dim=self.caption_vectors_dim,
        )

    # -- id <-> path ----------------------------------------------------------------------
    @property
    def ids(self) -> list[str]:
        return list(self._ids)

    @property
    def paths(self) -> list[str]:
        return list(self._paths)

    def id_of(self, position: int) -> str:
        return self._ids[self._check_position(position)]

    def ids_of(self, positions: Sequence[int] | np.ndarray) -> list[str]:
        """The ids of many positions (one bounds check for all: a ranking's worth at once)."""
        pos = np.asarray(positions, dtype=np.int64)
        if len(pos) and (pos.min() < 0 or pos.max() >= len(self._ids)):
            bad = int(pos[(pos < 0) | (pos >= len(self._ids))][0])
            self._check_position(bad)  # raises with the usual message
        ids = self._ids
        return [ids[p] for p in pos.tolist()]

    def path_of(self, position: int) -> str:
        return self._paths[self._check_position(position)]

    def position_of(self, item_id: str) -> int:
        try:
            return self._positions[item_id]
        except KeyError:
            raise KeyError(f"no gallery item with id {item_id!r} in this index") from None

    def _check_position(self, position: int) -> int:
        if not 0 <= position < self.count:
            raise IndexError(f"position {position} is outside the index (0..{self.count - 1})")
        return int(position)

    # -- building -----------------------------------------------------------------------
    def train(self, vectors: Any, *, max_vectors: int = TRAIN_SIZE, seed: int = 0) -> None:
        """Fit the IVF centroids / PQ codebooks on (a seeded sample of at most
        ``max_vectors`` of) ``vectors``; a no-op for indexes that need no training."""
        if self.is_trained:
            return
        arr = unit_rows(as_matrix(vectors, self.dim, "training vectors"), "training vectors")
        if len(arr) < self.min_train_vectors:
            raise InputError(
                f"--factory {self.factory!r} needs at least {self.min_train_vectors} vectors "
                f"to train, got {len(arr)}; use fewer IVF lists / PQ bits, or Flat"
            )
        if len(arr) > max_vectors:
            rows = np.random.default_rng(seed).choice(len(arr), size=max_vectors, replace=False)
            arr = arr[np.sort(rows)]
        try:
            self._index.train(arr)
        except RuntimeError as exc:
            raise InputError(
                f"--factory {self.factory!r} could not be trained on {len(arr)} vectors: "
                f"{faiss_reason(exc)}"
            ) from exc

    def add(self, vectors: Any, ids: Sequence[str], paths: Sequence[str]) -> None:
        """Append gallery items; their positions continue after the current count."""
        arr = unit_rows(as_matrix(vectors, self.dim, "gallery vectors"), "gallery vectors")
        ids, paths = [str(i) for i in ids], [str(p) for p in paths]
        if not len(arr) == len(ids) == len(paths):
            raise InputError(
                f"add got {len(arr)} vectors, {len(ids)} ids and {len(paths)} paths; "
                "they must match one to one"
            )
        batch: set[str] = set()
        for item in ids:
            if item in self._positions or item in batch:
                raise InputError(f"duplicate gallery id {item!r}: ids must be unique")
            batch.add(item)
        if not self.is_trained:
            raise InputError(
                f"this {self.factory!r} index is not trained: call train(vectors) first "
                "(GalleryIndex.build does both)"
            )
        try:
            self._index.add(arr)
        except RuntimeError as exc:
            raise InputError(
                f"faiss could not add to {self.factory!r}: {faiss_reason(exc)}"
            ) from exc
        start = len(self._ids)
        self._ids.extend(ids)
        self._paths.extend(paths)
        self._positions.update((item, start + n) for n, item in enumerate(ids))

    # -- searching ----------------------------------------------------------------------
    def search(self, queries: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` gallery positions per query: ``(scores [Q, k'], positions [Q, k'])``.

        ``k' = min(k, count)``: asking for more than the index holds returns everything it
        holds. Rows are best first. An approximate index (IVF with a small ``nprobe``) may
        find fewer than ``k'`` neighbours for a query: the missing tail is position ``-1``
        with score ``-inf``. A single query vector [D] is treated as [1, D].
        """
        if k < 1:
            raise InputError(f"-k must be at least 1, got {k}")
        q = as_matrix(queries, self.dim, "queries")
        k_eff = min(int(k), self.count)
        if k_eff == 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        scores, positions = self._index.search(q, k_eff)
        scores = scores.astype(np.float32, copy=False)
        scores[positions < 0] = -np.inf
        return scores, positions.astype(np.int64, copy=False)

    def vectors(self) -> np.ndarray:
        """Every stored vector [count, dim] in position order (lossy for PQ factories).

        Rescoring and question selection need the candidates' vectors; Flat and HNSW hand
        them back directly, IVF after building its direct map once.
        """
        import faiss

        ivf = self._ivf()
        if ivf is not None and ivf.direct_map.type == faiss.DirectMap.NoMap:
            ivf.make_direct_map()
        try:
            return self._index.reconstruct_n(0, self.count).astype(np.float32, copy=False)
        except RuntimeError as exc:
            raise IndexFileError(
                f"this {self.factory} index cannot hand back its vectors ({faiss_reason(exc)})"
            ) from exc

    def hits(self, queries: Any, k: int) -> list[list[Hit]]:
        """:meth:`search` with ids and paths attached; missing neighbours are left out."""
        scores, positions = self.search(queries, k)
        return [
            [
                Hit(rank + 1, float(s), int(p), self._ids[p], self._paths[p])
                for rank, (s, p) in enumerate(zip(srow, prow, strict=True))
                if p >= 0
            ]
            for srow, prow in zip(scores, positions, strict=True)
        ]

    # -- files --------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the index as one file, atomically: a temp file in the same folder is
        fsync-ed, then renamed over ``path``. A crash before the rename leaves the old file."""
        return write_index_file(
            path,
            lambda raw: write_archive(
                raw,
                self.meta,
                self._ids,
                self._paths,
                self._captions,
                self._views,
                self._index,
                self._caption_vectors,
            ),
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> GalleryIndex:
        """Read an index written by :meth:`save`; :class:`IndexFileError` if it is missing,
        not an index, damaged, or from a newer format."""
        archive = read_index_file(path)
        meta = archive.meta
        loaded = cls.__new__(cls)
        loaded._setup(
            archive.index,
            meta.factory,
            [str(i) for i in archive.ids],
            [str(p) for p in archive.paths],
        )
        loaded.model, loaded.pretrained = meta.model, meta.pretrained
        loaded.image_root, loaded.created = meta.image_root, meta.created
        loaded.text_model = meta.text_model
        loaded._no_extras()
        if archive.caption_vectors is not None:
            loaded._caption_vectors = archive.caption_vectors.astype(np.float16, copy=False)
        if archive.captions is not None:
            loaded.set_captions(archive.captions, meta.captions_source or "unknown")
        if archive.views is not None:
            loaded.set_views(archive.views, meta.views_augment or "unknown")
        return loaded

    def __repr__(self) -> str:
        return f"GalleryIndex(factory={self.factory!r}, dim={self.dim}, count={self.count})"
