"""A captions-only gallery: items that are only texts, searched with a sentence text model.

Input: a JSON-lines file, one item per line::

    {"id": "000123", "captions": ["a dog runs on a beach", "a puppy on the sand"], "path": "x.jpg"}

(``path`` optional: where an image of the item lives, recorded only). Each item becomes one
vector, the unit mean of its captions' unit vectors (:class:`~convir.models.text_model.
TextModel`), and one gallery text, :func:`caption_text`: its captions, each stripped, with
runs of whitespace made one space and trailing periods dropped, then ended by one period, joined
by a space (``"a dog runs on a beach. a puppy on the sand."``), so a reader can split the
text back into sentences at ``". "``. The index records ``model: null`` (no image model),
``text_model`` (the sentence model's name or folder) and ``captions_source: "captions-only"``;
``Resources.open`` then searches it with that text model.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from convir.errors import InputError

if TYPE_CHECKING:
    from convir.models.text_model import TextModel

CAPTIONS_ONLY_SOURCE = "captions-only"  # captions_source of a captions-only index


@dataclass(frozen=True)
class CaptionItem:
    """One gallery item of a captions-only gallery."""

    id: str
    captions: list[str]
    path: str | None = None


def caption_text(captions: Iterable[str]) -> str:
    """An item's gallery text: each caption ended by one period, joined by a space."""
    sentences = []
    for caption in captions:
        words = " ".join(str(caption).split()).rstrip(". ").strip()
        if words:
            sentences.append(words + ".")
    return " ".join(sentences)


def read_caption_file(path: str | Path) -> list[CaptionItem]:
    """The items of a captions-only JSON-lines file, in file order (blank lines skipped);
    :class:`InputError` naming the file and line for bad JSON, a missing id, missing or empty
    captions, a bad path or a repeated id."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--captions-only: no file at {path}; give a JSON-lines file")
    items: list[CaptionItem] = []
    first_line: dict[str, int] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read it as UTF-8 text ({exc})") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        item = _parse_line(line, where)
        if item.id in first_line:
            raise InputError(
                f"{where}: id {item.id!r} repeats line {first_line[item.id]}; ids must be unique"
            )
        first_line[item.id] = number
        items.append(item)
    if not items:
        raise InputError(
            f'{path} holds no items; write one {{"id": ..., "captions": [...]}} per line'
        )
    return items


def _parse_line(line: str, where: str) -> CaptionItem:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from exc
    if not isinstance(record, dict):
        raise InputError(f'{where}: expected an object {{"id": ..., "captions": [...]}}')
    raw_id = record.get("id")
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int) or not str(raw_id).strip():
        raise InputError(f'{where}: "id" is missing or not a non-empty string')
    captions = record.get("captions")
    if not isinstance(captions, list) or not captions:
        raise InputError(f'{where}: "captions" must be a non-empty list of strings')
    if not all(isinstance(c, str) and caption_text([c]) for c in captions):
        raise InputError(f'{where}: every caption in "captions" must be a non-empty string')
    item_path = record.get("path")
    if item_path is not None and (not isinstance(item_path, str) or not item_path.strip()):
        raise InputError(f'{where}: "path" must be a non-empty string when given')
    return CaptionItem(str(raw_id).strip(), [str(c) for c in captions], item_path)


def item_vectors(
    items: Sequence[CaptionItem],
    text_model: TextModel,
    *,
    batch_size: int = 256,
    progress: bool = False,
) -> np.ndarray:
    """One unit vector per item [len(items), D]: the unit mean of its captions' vectors."""
    texts = [c for item in items for c in item.captions]
    owner = np.repeat(np.arange(len(items)), [len(item.captions) for item in items])
    parts = []
    starts = range(0, len(texts), batch_size)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="embedding captions", unit="batch")
    for start in starts:
        parts.append(text_model.encode(texts[start : start + batch_size], batch_size=64))
    caption_vectors = np.concatenate(parts) if parts else np.zeros((0, text_model.dim), np.float32)
    sums = np.zeros((len(items), text_model.dim), np.float64)
    np.add.at(sums, owner, caption_vectors)
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return (sums / np.maximum(norms, 1e-12)).astype(np.float32)


def build_captions_index(
    items: Sequence[CaptionItem],
    text_model: str | TextModel,
    out: Path,
    *,
    progress: bool = False,
    factory: str | None = None,
) -> Path:
    """Embed ``items`` with ``text_model`` (a name, a folder, or a loaded model) and write a
    captions-only index to ``out`` atomically (module docstring); returns ``out``."""
    from convir.index.faiss_index import GalleryIndex, default_factory
    from convir.models.text_model import TextModel, load_text_model

    out = Path(out)
    if out.is_dir():
        raise InputError(f"--out {out} is a folder; give a file path such as {out}/gallery.index")
    if not items:
        raise InputError("a captions-only index needs at least one item")
    model = text_model if isinstance(text_model, TextModel) else load_text_model(text_model)
    chosen = factory or default_factory(len(items), model.dim)
    index = GalleryIndex(model.dim, chosen, model=None, text_model=model.name)
    if len(items) < index.min_train_vectors:  # before embedding: a bad factory fails at once
        raise InputError(
            f"--factory {chosen!r} needs at least {index.min_train_vectors} items to train, "
            f"the file has {len(items)}; use fewer IVF lists, or Flat"
        )
    vectors = item_vectors(items, model, progress=progress)
    index.train(vectors)
    index.add(vectors, [item.id for item in items], [item.path or "" for item in items])
    index.set_captions([caption_text(item.captions) for item in items], CAPTIONS_ONLY_SOURCE)
    return index.save(out)


def is_captions_only(index: object) -> bool:
    """Whether an index (a :class:`GalleryIndex`) is a captions-only gallery."""
    return getattr(index, "model", None) is None and bool(getattr(index, "text_model", None))


__all__ = [
    "CAPTIONS_ONLY_SOURCE",
    "CaptionItem",
    "build_captions_index",
    "caption_text",
    "is_captions_only",
    "item_vectors",
    "read_caption_file",
]
