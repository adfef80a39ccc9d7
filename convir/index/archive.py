"""The index file: one zip archive of metadata, ids, paths, optional captions and views,
and the FAISS index (layout in ``convir.index.faiss_index``). Writing streams the FAISS
blob into the archive; reading turns every zip, JSON, FAISS or CRC failure into an
:class:`~convir.errors.IndexFileError` that says to rebuild."""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from convir.errors import IndexFileError

if TYPE_CHECKING:
    import faiss

FORMAT = "convir-index"
FORMAT_VERSION = 1
META_MEMBER = "convir-index.json"
IDS_MEMBER = "ids.json"
PATHS_MEMBER = "paths.json"
CAPTIONS_MEMBER = "captions.json"
VIEWS_MEMBER = "views.npy"
CAPTION_VECTORS_MEMBER = "caption_vectors.npy"
FAISS_MEMBER = "index.faiss"

# Defaults measured by benchmarks/bench_index.py (table and reasoning: docs/performance.md).


@dataclass(frozen=True)
class IndexMeta:
    """What an index file says about itself (stored as ``convir-index.json``)."""

    dim: int
    factory: str
    count: int
    model: str | None = None
    pretrained: str | None = None
    image_root: str | None = None
    created: str = ""
    captions_source: str | None = None  # "file:NAME" or "captioner:NAME"; None: no captions
    views: int = 0  # augmented views stored per image (0: none)
    views_augment: str | None = None  # their preset (convir.models.views)
    text_model: str | None = None  # the sentence model of a captions-only index (model: None),
    # or of an image index's caption vectors (caption_vectors_dim > 0)
    caption_vectors_dim: int = 0  # width of the stored caption vectors (0: none)
    metric: str = "inner_product"
    format: str = FORMAT
    version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> IndexMeta:
        data = json.loads(text)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass
class Archive:
    """What an index file holds, as read (not yet checked against each other)."""

    meta: IndexMeta
    index: faiss.Index
    ids: list
    paths: list
    captions: list | None
    views: np.ndarray | None
    caption_vectors: np.ndarray | None = None


def write_archive(
    raw: Any,
    meta: IndexMeta,
    ids: list[str],
    paths: list[str],
    captions: list[str | None] | None,
    views: np.ndarray | None,
    index: faiss.Index,
    caption_vectors: np.ndarray | None = None,
) -> None:
    """The zip members, metadata first (small members deflated, the FAISS blob stored)."""
    with zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(META_MEMBER, meta.to_json())
        zf.writestr(IDS_MEMBER, json.dumps(ids, ensure_ascii=False))
        zf.writestr(PATHS_MEMBER, json.dumps(paths, ensure_ascii=False))
        if captions is not None:
            zf.writestr(CAPTIONS_MEMBER, json.dumps(captions, ensure_ascii=False))
        if views is not None:
            zf.writestr(VIEWS_MEMBER, _npy_bytes(views))
        if caption_vectors is not None:
            zf.writestr(CAPTION_VECTORS_MEMBER, _npy_bytes(caption_vectors))
        _write_faiss(zf, index)


def read_archive(path: Path) -> Archive:
    """Every member of the index file at ``path`` (IndexFileError if it cannot be read)."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if META_MEMBER not in names:
                raise IndexFileError(
                    f"{path} is not a convir index (no {META_MEMBER} inside); "
                    "build one with `convir index`"
                )
            meta = IndexMeta.from_json(zf.read(META_MEMBER).decode("utf-8"))
            if meta.format != FORMAT or not isinstance(meta.version, int):
                raise ValueError(f"unexpected format {meta.format!r}")
            if meta.version > FORMAT_VERSION:
                raise IndexFileError(
                    f"{path} uses index format {meta.version}; this convir reads up to "
                    f"{FORMAT_VERSION}: upgrade convir or rebuild the index"
                )
            ids = json.loads(zf.read(IDS_MEMBER).decode("utf-8"))
            paths = json.loads(zf.read(PATHS_MEMBER).decode("utf-8"))
            captions = (
                json.loads(zf.read(CAPTIONS_MEMBER).decode("utf-8"))
                if CAPTIONS_MEMBER in names
                else None
            )
            views = _read_npy(zf.read(VIEWS_MEMBER)) if VIEWS_MEMBER in names else None
            caption_vectors = (
                _read_npy(zf.read(CAPTION_VECTORS_MEMBER))
                if CAPTION_VECTORS_MEMBER in names
                else None
            )
            index = _read_faiss(zf)
    except IndexFileError:
        raise
    except OSError as exc:
        raise IndexFileError(f"cannot read {path}: {exc}") from exc
    except Exception as exc:  # zip, JSON, faiss and CRC failures all mean "damaged"
        raise IndexFileError(
            f"{path} is damaged or not a convir index ({type(exc).__name__}: "
            f"{faiss_reason(exc)[:200]}); rebuild it with `convir index`"
        ) from exc
    return Archive(meta, index, ids, paths, captions, views, caption_vectors)


def faiss_reason(exc: Exception) -> str:
    """faiss errors carry a C++ location prefix; keep the part a user can act on."""
    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    text = re.sub(r"^Error in .*? at \S+:\d+: ", "", text)
    text = re.sub(r"^Error: '.*?' failed: ", "", text)
    return text


def _write_faiss(zf: zipfile.ZipFile, index: faiss.Index) -> None:
    """Stream ``faiss.write_index`` straight into the archive (no second copy in memory)."""
    import faiss

    info = zipfile.ZipInfo(FAISS_MEMBER, date_time=datetime.now().timetuple()[:6])
    info.compress_type = zipfile.ZIP_STORED
    with zf.open(info, "w", force_zip64=True) as member:
        faiss.write_index(index, faiss.PyCallbackIOWriter(member.write))


def _read_faiss(zf: zipfile.ZipFile) -> faiss.Index:
    import faiss

    with zf.open(FAISS_MEMBER) as member:
        index = faiss.read_index(faiss.PyCallbackIOReader(member.read))
        if member.read(1):  # reaching the end also makes zipfile verify the CRC-32
            raise ValueError(f"trailing bytes after the FAISS index in {FAISS_MEMBER}")
    return index


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _read_npy(raw: bytes) -> np.ndarray:
    return np.load(io.BytesIO(raw), allow_pickle=False)
