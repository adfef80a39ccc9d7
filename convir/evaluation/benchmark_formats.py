"""Every benchmark format by name, told apart by content (:func:`detect_format`) and checked
record by record with errors that name the format, the record and its field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from convir.errors import InputError
from convir.evaluation.benchmark_files import Spec, looks_like_path, read_json, snippet
from convir.evaluation.chatir_format import CHATIR, CHATIR_SEARCH_SPACE
from convir.evaluation.circo_format import CIRCO
from convir.evaluation.cirr_format import CIRR, CIRR_EXT, CIRR_SPLIT
from convir.evaluation.fashioniq_format import FASHIONIQ, FASHIONIQ_SPLIT

SPECS: dict[str, Spec] = {
    "chatir": CHATIR,
    "cirr": CIRR,
    "cirr-ext": CIRR_EXT,
    "circo": CIRCO,
    "fashioniq": FASHIONIQ,
}
LIST_FORMATS = {
    "chatir-search-space": CHATIR_SEARCH_SPACE,
    "fashioniq-split": FASHIONIQ_SPLIT,
}
MAP_FORMATS = {"cirr-split": CIRR_SPLIT}
ALL_FORMATS = (*SPECS, *LIST_FORMATS, *MAP_FORMATS)

_ADAPTERS: dict[str, TypeAdapter] = {}


def _adapter(fmt: str) -> TypeAdapter:
    if fmt not in _ADAPTERS:
        _ADAPTERS[fmt] = TypeAdapter(list[SPECS[fmt].model])
    return _ADAPTERS[fmt]


def detect_format(data: Any) -> str:
    """Name the benchmark format of parsed JSON ``data`` from its content, not its file name.

    Record lists are matched on the keys of their first record (the format whose identifying
    keys overlap most); string lists are a ChatIR search space when the entries look like
    image paths, else a FashionIQ split; an object of strings is a CIRR split.
    """
    if isinstance(data, dict):
        if data and all(isinstance(v, str) for v in data.values()):
            return "cirr-split"
        raise InputError(
            "a JSON object that is not a CIRR split (expected {image name: path, ...}); "
            f"known formats: {', '.join(ALL_FORMATS)}"
        )
    if not isinstance(data, list):
        raise InputError(
            f"a JSON {type(data).__name__}, which no benchmark file is; expected a list of "
            f"records or a split (known formats: {', '.join(ALL_FORMATS)})"
        )
    if not data:
        raise InputError("an empty list: cannot tell its format, and there is nothing to load")
    first = data[0]
    if isinstance(first, str):
        sample = [x for x in data[:50] if isinstance(x, str)]
        return "chatir-search-space" if any(map(looks_like_path, sample)) else "fashioniq-split"
    if isinstance(first, dict):
        keys = set(first)
        best = max(SPECS, key=lambda f: len(SPECS[f].signature & keys) / len(SPECS[f].signature))
        if SPECS[best].signature & keys:
            return best
        raise InputError(
            f"record 0 has keys {sorted(keys)}, which match no known format "
            f"({', '.join(ALL_FORMATS)})"
        )
    raise InputError(f"record 0 is a {type(first).__name__}: {snippet(first)}; not a known format")


def _bad_record(path: Path, fmt: str, data: list, exc: ValidationError) -> InputError:
    err = exc.errors(include_url=False)[0]
    loc = err["loc"]
    index = loc[0] if loc and isinstance(loc[0], int) else 0
    field = ".".join(str(x) for x in loc[1:]) or "(record)"
    record = data[index] if index < len(data) else None
    msg = (
        f"{path}: not a valid {SPECS[fmt].describe}; record {index}, field {field}: "
        f"{err['msg']}; the record is {snippet(record)}"
    )
    try:
        other = detect_format(data)
    except InputError:
        other = None
    if other and other != fmt:
        msg += f" (the file looks like format {other!r}; use the matching loader)"
    return InputError(msg)


def validate(path: Path, data: Any, fmt: str) -> list:
    """Every record of ``data`` as format ``fmt``; a test split and a split with targets
    never mix."""
    if not isinstance(data, list):
        raise InputError(
            f"{path}: not a valid {SPECS[fmt].describe}; the top level is a JSON "
            f"{type(data).__name__}, not a list"
        )
    if not data:
        raise InputError(f"{path}: an empty list; expected {SPECS[fmt].describe}")
    try:
        records = _adapter(fmt).validate_python(data)
    except ValidationError as exc:
        raise _bad_record(path, fmt, data, exc) from None
    target_field = SPECS[fmt].target_field
    if target_field and fmt != "chatir":
        has = getattr(records[0], target_field) is not None
        for i, rec in enumerate(records):
            if (getattr(rec, target_field) is not None) != has:
                state = "lacks" if has else "has"
                raise InputError(
                    f"{path}: record {i} {state} {target_field!r} unlike record 0; a file is "
                    f"either a split with targets or a test split without: {snippet(data[i])}"
                )
    return records


def unique(path: Path, data: list, values: list, what: str) -> None:
    """Refuse a repeated id: scores keyed by it would silently merge two queries."""
    seen: dict[Any, int] = {}
    for i, v in enumerate(values):
        if v in seen:
            raise InputError(
                f"{path}: record {i} repeats {what} {v!r} of record {seen[v]}: "
                f"{snippet(data[i])}; each {what} must be unique"
            )
        seen[v] = i


UNIQUE_KEYS = {"cirr": "pairid", "cirr-ext": "pairid", "circo": "id"}


def records_of(p: Path, data: Any, fmt: str) -> list:
    """Validated records with their ids unique, for formats that have ids."""
    records = validate(p, data, fmt)
    if key := UNIQUE_KEYS.get(fmt):
        unique(p, data, [getattr(r, key) for r in records], key)
    return records


def load_records(path: str | Path, fmt: str) -> list:
    """Read and validate a file known to be format ``fmt``."""
    return records_of(Path(path), read_json(path), fmt)


def check_string_list(p: Path, data: Any, fmt: str) -> list[str]:
    """A search space or split: non-empty strings, each once."""
    if not isinstance(data, list) or not data:
        raise InputError(f"{p}: expected {LIST_FORMATS[fmt]}, got {snippet(data, 80)}")
    for i, x in enumerate(data):
        if not isinstance(x, str) or not x:
            raise InputError(
                f"{p}: expected {LIST_FORMATS[fmt]}; entry {i} is {snippet(x, 80)}, "
                "not a non-empty string"
            )
    unique(p, data, data, "image")
    return data


def check_cirr_split(p: Path, data: Any) -> dict[str, str]:
    """A CIRR split: image name -> path strings."""
    if not isinstance(data, dict) or not data:
        raise InputError(f"{p}: expected {MAP_FORMATS['cirr-split']}, got {snippet(data, 80)}")
    for i, (k, v) in enumerate(data.items()):
        if not isinstance(v, str) or not k:
            raise InputError(
                f"{p}: expected {MAP_FORMATS['cirr-split']}; entry {i} ({k!r}) maps to "
                f"{snippet(v, 80)}, not a path string"
            )
    return data
