"""The testbed measured through the public path: image files, ``convir index``, any agent.

``convir eval run --via-index`` writes the testbed world as a folder of PNGs, indexes it
with the very function behind ``convir index`` (texts from the shipped captioner, from the
gallery's captions file as metadata, or none; with a text model, those texts' caption
vectors too, which ``AgentConfig.caption_weight`` fuses into retrieval), and hands the agent
only what that index holds. The world stays with the simulated user, who knows which file is its target.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from convir.errors import InputError

if TYPE_CHECKING:
    from convir.gallery.resources import Resources
    from convir.models.llm import LLM
    from convir.testbed.world import World

CaptionSource = Literal["testbed", "none", "metadata"]
CAPTION_SOURCES: tuple[str, ...] = ("testbed", "none", "metadata")


def gallery_folder(world: World, root: Path, progress: bool) -> Path:
    """The world written as files under ``root`` (kept and reused while it matches)."""
    from convir.testbed.gallery import write_gallery

    folder = root / f"testbed-seed{world.seed}-{world.size}"
    marker = folder / "world.json"
    if marker.is_file():
        seen = json.loads(marker.read_text())
        if (seen.get("seed"), seen.get("size"), seen.get("edit_rate")) == (
            world.seed,
            world.size,
            world.edit_rate,
        ) and (folder / "captions.jsonl").is_file():
            return folder
    write_gallery(world, folder, progress=progress)
    return folder


def check_text_model(captions: str, text_model: str | None) -> None:
    """A text model embeds the gallery's texts: refused when the gallery gets none."""
    if text_model is not None and captions == "none":
        raise InputError(
            "--text-model embeds the gallery's texts into caption vectors, and --captioner "
            "none gives it no texts; use --captioner testbed or metadata"
        )


def index_name(captions: str, text_model: str | None) -> str:
    """The index file's name: one per (texts, text model), so each is built once and reused."""
    if text_model is None:
        return f"gallery-{captions}.index"
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", text_model.strip()).strip("._")[-40:]
    digest = hashlib.sha256(text_model.strip().encode()).hexdigest()[:8]
    return f"gallery-{captions}-text-{slug}-{digest}.index"


def index_gallery(
    folder: Path, captions: CaptionSource, progress: bool, text_model: str | None = None
) -> Path:
    """``convir index FOLDER`` with the chosen texts (and, with ``text_model``, their
    caption vectors: ``--text-model``); the index file is kept and reused."""
    if captions not in CAPTION_SOURCES:
        raise InputError(f"--captioner must be one of {', '.join(CAPTION_SOURCES)}")
    check_text_model(captions, text_model)
    out = folder / index_name(captions, text_model)
    if out.is_file():
        return out
    with contextlib.redirect_stdout(sys.stderr):  # its summary line; stdout may be --json
        _index(folder, out, captions, progress, text_model)
    return out


def _index(
    folder: Path, out: Path, captions: CaptionSource, progress: bool, text_model: str | None
) -> None:
    from convir.index.cli import build_index

    build_index(
        folder,
        out,
        workers=2,
        progress=progress,
        captions=folder / "captions.jsonl" if captions == "metadata" else None,
        captioner="testbed" if captions == "testbed" else None,
        text_model=text_model,
    )


def public_resources(
    world: World,
    root: Path,
    captions: CaptionSource,
    *,
    generator: bool,
    progress: bool,
    text_model: str | None = None,
    llm: LLM | None = None,
) -> tuple[Resources, list[str]]:
    """The agent's view of the indexed gallery (``Resources.open``, as ``convir chat
    --index`` opens it), and the gallery id of every scene; with ``text_model``, the index
    holds caption vectors. ``llm``: the LLM policy's."""
    from convir.gallery.resources import Resources
    from convir.testbed.gallery import image_relpath

    check_text_model(captions, text_model)  # before writing any files
    folder = gallery_folder(world, root, progress)
    path = index_gallery(folder, captions, progress, text_model)
    resources = Resources.open(path, generator=generator, llm=llm)
    ids = [image_relpath(i) for i in range(world.size)]
    held = set(resources.index.ids)
    missing = [i for i in ids[:50] if i not in held]
    if missing:
        raise InputError(f"the index at {folder} does not hold {missing[0]}; delete it to rebuild")
    return resources, ids
