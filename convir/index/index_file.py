"""Where an index file goes and what a read one must satisfy: the folder checks and the
atomic write around ``archive.write_archive``, and the consistency checks of everything
``archive.read_archive`` returns (counts, widths, one caption per item)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import IO

from convir.atomic_file import atomic_write
from convir.errors import IndexFileError, InputError
from convir.index.archive import (
    CAPTION_VECTORS_MEMBER,
    CAPTIONS_MEMBER,
    VIEWS_MEMBER,
    Archive,
    read_archive,
)


def write_index_file(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> Path:
    """Run ``write`` on a temp file beside ``path``, fsync it and rename it over ``path``:
    a crash before the rename leaves the old file."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path} is a folder; give a file path such as {path}/gallery.index")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IndexFileError(f"cannot create the folder for {path}: {exc}") from exc
    try:
        with atomic_write(path, "wb", durable=True) as raw:
            write(raw)
    except OSError as exc:
        raise IndexFileError(f"could not write the index to {path}: {exc}") from exc
    return path


def read_index_file(path: str | os.PathLike[str]) -> Archive:
    """An index file's members, checked against each other; :class:`IndexFileError` if it
    is missing, not an index, damaged, inconsistent or from a newer format."""
    path = Path(path)
    if not path.exists():
        raise IndexFileError(
            f"no index file at {path}; build one with `convir index FOLDER --out {path}`"
        )
    if path.is_dir():
        raise IndexFileError(f"{path} is a folder, not an index file")
    archive = read_archive(path)
    meta, index, ids, paths = archive.meta, archive.index, archive.ids, archive.paths
    captions, views = archive.captions, archive.views
    if not (index.ntotal == len(ids) == len(paths) == meta.count and index.d == meta.dim):
        raise IndexFileError(
            f"{path} is inconsistent (index holds {index.ntotal} vectors of dim {index.d}, "
            f"metadata says {meta.count} of dim {meta.dim}, {len(ids)} ids, "
            f"{len(paths)} paths); rebuild it with `convir index`"
        )
    caption_vectors = archive.caption_vectors
    if caption_vectors is not None:
        if caption_vectors.ndim != 2 or caption_vectors.shape[0] != len(ids):
            raise IndexFileError(
                f"{path} is inconsistent ({CAPTION_VECTORS_MEMBER} is "
                f"{list(caption_vectors.shape)}, not [{len(ids)}, d]); rebuild it with "
                "`convir index`"
            )
    if captions is not None:
        if not isinstance(captions, list) or len(captions) != len(ids):
            raise IndexFileError(
                f"{path} is inconsistent ({CAPTIONS_MEMBER} does not hold one caption per "
                "item); rebuild it with `convir index`"
            )
    if views is not None:
        if views.ndim != 3 or views.shape[0] != len(ids) or views.shape[2] != index.d:
            raise IndexFileError(
                f"{path} is inconsistent ({VIEWS_MEMBER} is {list(views.shape)}, not "
                f"[{len(ids)}, n, {index.d}]); rebuild it with `convir index`"
            )
    return archive
