"""``convir eval run --benchmark captions``: simulated dialogues on a caption dataset.

The annotations are a JSON-lines file, one item per line ``{"id": ..., "captions": [...]}``
(at least two captions each). A run samples ``gallery_size`` items with the seed (default:
all of them) and builds a captions-only gallery of them (``convir.index.captions_only``)
whose text for each item is its captions 2-3 (``captions[1:3]``): caption 1 opens the
dialogue and is held out of the gallery. The index is written under ``DIR/index`` and reused
while the file, the sample and the text model are the same. ``dialogues`` targets are drawn
from the sample with the seed; each is sought by a :class:`~convir.evaluation.users.
CaptionUser`, which opens with caption 1 and answers from captions 1-3.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from convir.errors import InputError

if TYPE_CHECKING:
    from convir.evaluation.setup import Setup
    from convir.gallery.resources import Resources

GALLERY_CAPTIONS = slice(1, 3)  # the gallery's text: captions 2-3 (caption 1 opens)
DEFAULT_DIALOGUES = 200


def read_annotations(path: Path) -> dict[str, list[str]]:
    """``{item id: captions}`` in file order; every item needs two captions or more (one to
    open the dialogue, one at least for the gallery's text)."""
    from convir.index.captions_only import read_caption_file

    if not Path(path).is_file():
        raise InputError(
            f'--annotations: no file at {path}; give a JSON-lines file of {{"id": ..., '
            '"captions": [...]}} lines'
        )
    items = read_caption_file(path)
    short = [item.id for item in items if len(item.captions) < 2]
    if short:
        raise InputError(
            f"{path}: item {short[0]!r} has one caption ({len(short)} such items); the "
            "captions benchmark opens with caption 1 and searches captions 2-3, so each item "
            "needs at least two"
        )
    return {item.id: list(item.captions) for item in items}


def sample_items(ids: list[str], gallery_size: int | None, seed: int) -> list[str]:
    """``gallery_size`` ids drawn with the seed, in file order (all of them for None)."""
    if gallery_size is None or gallery_size >= len(ids):
        return list(ids)
    picks = np.random.default_rng([seed, 0]).choice(len(ids), size=gallery_size, replace=False)
    return [ids[i] for i in sorted(picks)]


def draw_targets(ids: list[str], dialogues: int, seed: int) -> dict[str, str]:
    """``{dialogue id: target id}``: ``dialogues`` distinct items drawn with the seed;
    dialogue ids are "0", "1", ... as on the testbed."""
    picks = np.random.default_rng([seed, 1]).choice(len(ids), size=dialogues, replace=False)
    return {str(d): ids[int(t)] for d, t in enumerate(picks)}


def _fingerprint(ids: list[str], captions: dict[str, list[str]], text_model: str) -> str:
    digest = hashlib.sha256(text_model.encode())
    for i in ids:
        digest.update(json.dumps([i, captions[i][GALLERY_CAPTIONS]]).encode())
    return digest.hexdigest()


def gallery_index(
    annotations: Path,
    ids: list[str],
    captions: dict[str, list[str]],
    text_model: str,
    folder: Path,
    progress: bool,
) -> Path:
    """The captions-only index of ``ids`` under ``folder`` (built, or reused while its
    fingerprint, a hash of the items' gallery texts and the text model, matches)."""
    from convir.index.captions_only import CaptionItem, build_captions_index

    out = folder / "gallery.index"
    marker = folder / "gallery.json"
    fingerprint = _fingerprint(ids, captions, text_model)
    if out.is_file() and marker.is_file():
        try:
            seen = json.loads(marker.read_text())
        except (OSError, json.JSONDecodeError):
            seen = {}
        if seen.get("fingerprint") == fingerprint:
            return out
    folder.mkdir(parents=True, exist_ok=True)
    items = [CaptionItem(i, captions[i][GALLERY_CAPTIONS]) for i in ids]
    build_captions_index(items, text_model, out, progress=progress)
    from convir.atomic_file import write_text

    record = {
        "fingerprint": fingerprint,
        "annotations": str(annotations),
        "items": len(ids),
        "text_model": text_model,
    }
    write_text(marker, json.dumps(record, indent=1) + "\n")
    return out


def open_gallery(index_path: Path, text_model: str, llm: object | None) -> Resources:
    from convir.gallery.resources import Resources

    return Resources.open(index_path, text_model=text_model, generator=False, llm=llm)  # type: ignore[arg-type]


def captions_setup(
    annotations: Path,
    text_model: str,
    gallery_size: int | None,
    dialogues: int | None,
    seed: int,
    error_rate: float,
    index_folder: Path,
    policy: str = "rules",
    progress: bool = False,
    user: str | None = None,
) -> Setup:
    """The gallery, dialogue ids and users of a captions run (module docstring); ``user``: a
    plug-in class path built with CaptionUser's arguments."""
    from convir.evaluation.caption_user import CaptionUser
    from convir.evaluation.setup import Setup

    captions = read_annotations(annotations)
    ids = sample_items(list(captions), gallery_size, seed)
    count = DEFAULT_DIALOGUES if dialogues is None else dialogues
    count = min(count, len(ids)) if dialogues is None else count
    if not 1 <= count <= len(ids):
        raise InputError(
            f"--dialogues must be between 1 and the gallery's {len(ids)} items, got {count}"
        )
    path = gallery_index(annotations, ids, captions, text_model, index_folder, progress)
    llm = None
    if policy == "llm":
        from convir.models.llm import OpenAICompatibleLLM

        llm = OpenAICompatibleLLM()
    resources = open_gallery(path, text_model, llm)
    targets = draw_targets(ids, count, seed)
    wanted = {t: captions[t] for t in targets.values()}
    user_class = CaptionUser
    if user is not None:
        from convir.plugins import load_class

        user_class = load_class(user, "user")
    return Setup(
        resources,
        list(targets),
        lambda: user_class(targets, wanted, error_rate=error_rate, seed=seed),
        "bank",
        None,
        f"Captions ({annotations.name}), gallery {len(ids)}, {count} dialogues, error {error_rate}",
    )


__all__ = [
    "GALLERY_CAPTIONS",
    "captions_setup",
    "draw_targets",
    "gallery_index",
    "read_annotations",
    "sample_items",
]
