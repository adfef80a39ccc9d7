"""A contact sheet: ranked images in a labelled grid, saved as one PNG.

``convir chat --show`` writes one after every turn so that a terminal user can see what the
agent found. The file is written to a temporary name next to the target and moved into
place with ``os.replace``, so an image viewer watching the path never reads half a PNG.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from convir.atomic_file import atomic_write
from convir.errors import InputError

if TYPE_CHECKING:
    from PIL import Image, ImageDraw, ImageFont

LABEL_HEIGHT = 14  # pixels under each cell for its label (PIL's default bitmap font)
PAD = 4


def contact_sheet(
    images: Sequence[Image.Image],
    labels: Sequence[str],
    path: str | os.PathLike[str],
    columns: int = 5,
    cell: int = 96,
) -> Path:
    """Write ``images`` as a grid of ``columns`` with a label under each; returns the path.

    Each image is scaled to fit a ``cell`` x ``cell`` square (aspect kept, centred); labels
    too wide for the cell are shortened with ``..``.
    """
    from PIL import Image, ImageDraw, ImageFont

    if not images:
        raise InputError("contact sheet: no images to draw; pass at least one")
    if len(labels) != len(images):
        raise InputError(
            f"contact sheet: {len(images)} images but {len(labels)} labels; pass one label each"
        )
    if columns < 1 or not 16 <= cell <= 1024:
        raise InputError(
            f"contact sheet: need columns >= 1 and 16 <= cell <= 1024, got {columns=}, {cell=}"
        )
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path} is a folder; give a file name such as {path / 'results.png'}")
    columns = min(columns, len(images))
    rows = -(-len(images) // columns)
    width, height = cell + 2 * PAD, cell + LABEL_HEIGHT + 2 * PAD
    sheet = Image.new("RGB", (columns * width, rows * height), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        x, y = (i % columns) * width + PAD, (i // columns) * height + PAD
        scale = cell / max(image.width, image.height, 1)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        thumb = image.convert("RGB").resize(size, Image.Resampling.LANCZOS)
        sheet.paste(thumb, (x + (cell - thumb.width) // 2, y + (cell - thumb.height) // 2))
        text = _fit(draw, str(label), font, cell)
        draw.text((x, y + cell + 1), text, fill="black", font=font)
    with atomic_write(path, "wb") as fh:
        sheet.save(fh, format="PNG")
    return path


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont, width: int) -> str:
    """``text``, shortened with ``..`` until it is at most ``width`` pixels wide."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "..", font=font) > width:
        text = text[:-1]
    return text + ".."
