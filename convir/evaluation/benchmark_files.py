"""What every benchmark file shares before its format is known: reading the JSON, quoting a
bad record short, the pydantic base of every record and the description of one format."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from convir.errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")


class Record(BaseModel):
    """One record of a benchmark file, validated field by field."""

    # Unknown extra keys are ignored: sibling releases add fields; required keys and types
    # are what tell the formats apart.
    model_config = ConfigDict(extra="ignore", frozen=True)


@dataclass(frozen=True)
class Spec:
    """One record format: its model, the keys that identify it, how errors describe it, and
    the field a test split leaves out."""

    model: type[Record]
    signature: frozenset[str]  # keys that identify the format in a record
    describe: str
    target_field: str | None


def read_json(path: str | Path) -> Any:
    """Parse a JSON file, turning a missing file or bad JSON into an :class:`InputError`."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file; check the path (benchmark files are JSON)")
    try:
        with p.open("rb") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{p}: not valid JSON at line {exc.lineno} column {exc.colno} ({exc.msg}); "
            "is the file complete? re-download it"
        ) from None
    except UnicodeDecodeError:
        raise InputError(f"{p}: not a UTF-8 text file; pass a benchmark .json file") from None


def snippet(record: object, limit: int = 160) -> str:
    """A record as JSON, cut short enough to quote in one error line."""
    text = json.dumps(record, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def looks_like_path(s: str) -> bool:
    """Whether a string list entry names an image file (search spaces do, splits do not)."""
    return "/" in s or s.lower().endswith(IMAGE_SUFFIXES)
