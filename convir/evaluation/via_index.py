"""The testbed measured through the public path: image files, ``convir index``, any agent.

``convir eval run --via-index`` writes the testbed world as a folder of PNGs, indexes it
with the very function behind ``convir index`` (texts from the shipped captioner, from the
gallery's captions file as metadata, or none), and hands the agent only what that index
holds. The world stays with the simulated user, who knows which file is its target.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from convir.errors import InputError

if TYPE_CHECKING:
    from convir.agents.resources import Resources
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


def index_gallery(folder: Path, captions: CaptionSource, progress: bool) -> Path:
    """``convir index FOLDER`` with the chosen texts; the index file is kept and reused."""
    if captions not in CAPTION_SOURCES:
        raise InputError(f"--captioner must be one of {', '.join(CAPTION_SOURCES)}")
    out = folder / f"gallery-{captions}.index"
    if out.is_file():
        return out
    with contextlib.redirect_stdout(sys.stderr):  # its summary line; stdout may be --json
        _index(folder, out, captions, progress)
    return out


def _index(folder: Path, out: Path, captions: CaptionSource, progress: bool) -> None:
    from convir.index.cli import build_index

    build_index(
        folder,
        out,
        workers=2,
        progress=progress,
        captions=folder / "captions.jsonl" if captions == "metadata" else None,
        captioner="testbed" if captions == "testbed" else None,
    )


def public_resources(
    world: World, root: Path, captions: CaptionSource, *, generator: bool, progress: bool
) -> tuple[Resources, list[str]]:
    """The agent's view of the indexed gallery (built as ``convir chat --index`` builds it),
    and the gallery id of every scene."""
    from convir.chat import _resources
    from convir.testbed.gallery import image_relpath

    folder = gallery_folder(world, root, progress)
    path = index_gallery(folder, captions, progress)
    resources = _resources(path, None, None, None, None, generator, want_llm=False)
    ids = [image_relpath(i) for i in range(world.size)]
    held = set(resources.index.ids)
    missing = [i for i in ids[:50] if i not in held]
    if missing:
        raise InputError(f"the index at {folder} does not hold {missing[0]}; delete it to rebuild")
    return resources, ids
