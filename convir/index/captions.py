"""One text per gallery image: from a captions file (metadata) or from a captioning model.

A captions file is JSON lines ``{"path": ..., "caption": ...}``, as e-commerce and archive
galleries export them. ``path`` is matched against the image's path relative to the indexed
folder, then against its absolute path. Lines that cannot be used (invalid JSON, missing
fields, an empty caption, a path not in the gallery, a path seen before) are reported with
their line number and counted; the index is built anyway, those images without text.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from convir.errors import InputError

if TYPE_CHECKING:
    from convir.models.captioner import Captioner


def _warn(line: str) -> None:
    from tqdm import tqdm

    tqdm.write(f"warning: {line}", file=sys.stderr)


@dataclass
class CaptionReport:
    """What reading or computing captions found, for one summary line."""

    captioned: int = 0
    invalid: int = 0  # unusable lines (bad JSON, missing fields) or failed images
    empty: int = 0
    unknown: int = 0
    duplicate: int = 0
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{self.captioned} captioned"]
        for name in ("invalid", "empty", "unknown", "duplicate"):
            if getattr(self, name):
                parts.append(f"{getattr(self, name)} {name}")
        return ", ".join(parts)


def read_captions_file(
    path: str | Path,
    ids: Sequence[str],
    paths: Sequence[str],
    on_warning: Callable[[str], None] = _warn,
) -> tuple[list[str | None], CaptionReport]:
    """Captions aligned with ``ids`` (relative) / ``paths`` (absolute) from a JSONL file."""
    source = Path(path)
    if not source.is_file():
        raise InputError(f"--captions: no file at {source}; give a JSON-lines file")
    position = {item: k for k, item in enumerate(ids)}
    position.update({p: k for k, p in enumerate(paths)})
    out: list[str | None] = [None] * len(ids)
    report = CaptionReport()

    def bad(kind: str, line_no: int, why: str) -> None:
        setattr(report, kind, getattr(report, kind) + 1)
        message = f"{source.name} line {line_no}: {why}"
        report.warnings.append(message)
        on_warning(message)

    with source.open(encoding="utf-8", errors="replace") as lines:
        for line_no, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                bad("invalid", line_no, f"not JSON ({exc.msg})")
                continue
            if not isinstance(row, dict) or not isinstance(row.get("path"), str):
                bad("invalid", line_no, 'needs {"path": "...", "caption": "..."}')
                continue
            caption = row.get("caption")
            if not isinstance(caption, str) or not caption.strip():
                bad("empty", line_no, f"empty or missing caption for {row['path']}")
                continue
            key = row["path"]
            k = position.get(key, position.get(Path(key).as_posix().lstrip("./")))
            if k is None:
                bad("unknown", line_no, f"{key} is not an image of this gallery")
                continue
            if out[k] is not None:
                bad("duplicate", line_no, f"{key} already has a caption (first one kept)")
                continue
            out[k] = " ".join(caption.split())
            report.captioned += 1
    return out, report


def caption_images(
    captioner: Captioner,
    paths: Sequence[str],
    *,
    batch_size: int = 32,
    progress: bool = True,
    on_warning: Callable[[str], None] = _warn,
) -> tuple[list[str | None], CaptionReport]:
    """Caption image files in batches; unreadable images and captioner failures are skipped."""
    from tqdm import tqdm

    from convir.index.folder import UnreadableImageError, load_image
    from convir.models.captioner import caption_safely

    out: list[str | None] = []
    report = CaptionReport()
    bar = tqdm(total=len(paths), desc="caption", unit="img", file=sys.stderr, disable=not progress)
    for start in range(0, len(paths), batch_size):
        chunk = list(paths[start : start + batch_size])
        images, names, slots = [], [], []
        for k, p in enumerate(chunk):
            try:
                images.append(load_image(p))
                names.append(p)
                slots.append(k)
            except UnreadableImageError as exc:
                report.invalid += 1
                report.warnings.append(f"skipped {p}: {exc.reason}")
                on_warning(report.warnings[-1])
        got: list[str | None] = [None] * len(chunk)
        if images:
            texts, warnings = caption_safely(captioner, images, names)
            for k, text in zip(slots, texts, strict=True):
                got[k] = text if text and text.strip() else None
            for message in warnings:
                report.invalid += 1
                report.warnings.append(message)
                on_warning(message)
        report.captioned += sum(t is not None for t in got)
        out += got
        bar.update(len(chunk))
    bar.close()
    return out, report
