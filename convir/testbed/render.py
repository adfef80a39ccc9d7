"""Draw a testbed scene with PIL (supersampled, then downscaled, for clean edges)."""

from __future__ import annotations

import math

from PIL import Image, ImageDraw

from convir.testbed.world import BACKGROUNDS, COLOURS, Obj, Scene

_SUPERSAMPLE = 2
_RADIUS = {"large": 0.42, "small": 0.24}  # fraction of a cell


def _polygon(cx: float, cy: float, r: float, n: int, start_deg: float) -> list[tuple[float, float]]:
    return [
        (
            cx + r * math.cos(math.radians(start_deg + 360.0 * k / n)),
            cy + r * math.sin(math.radians(start_deg + 360.0 * k / n)),
        )
        for k in range(n)
    ]


def _star(cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    outer = _polygon(cx, cy, r, 5, -90.0)
    inner = _polygon(cx, cy, r * 0.45, 5, -90.0 + 36.0)
    return [p for pair in zip(outer, inner, strict=True) for p in pair]


def _draw_object(draw: ImageDraw.ImageDraw, o: Obj, canvas: int) -> None:
    cell = canvas / 3.0
    row, col = divmod(o.cell, 3)
    cx = (col + 0.5 + o.dx) * cell
    cy = (row + 0.5 + o.dy) * cell
    r = _RADIUS[o.size] * cell
    fill = COLOURS[o.colour]
    if o.shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif o.shape == "square":
        s = r * 0.88
        draw.rectangle([cx - s, cy - s, cx + s, cy + s], fill=fill)
    elif o.shape == "triangle":
        draw.polygon(_polygon(cx, cy + r * 0.15, r * 1.1, 3, -90.0), fill=fill)
    elif o.shape == "star":
        draw.polygon(_star(cx, cy, r * 1.1), fill=fill)
    elif o.shape == "diamond":
        draw.polygon(_polygon(cx, cy, r * 1.05, 4, -90.0), fill=fill)
    elif o.shape == "hexagon":
        draw.polygon(_polygon(cx, cy, r, 6, 0.0), fill=fill)
    else:
        raise ValueError(f"unknown shape {o.shape!r}")


def render(scene: Scene, image_size: int = 64) -> Image.Image:
    """The scene as an RGB image of ``image_size`` x ``image_size`` pixels."""
    canvas = image_size * _SUPERSAMPLE
    img = Image.new("RGB", (canvas, canvas), BACKGROUNDS[scene.background])
    draw = ImageDraw.Draw(img)
    for o in scene.objects:
        _draw_object(draw, o, canvas)
    return img.resize((image_size, image_size), Image.Resampling.BOX)
