"""Validated loaders for the public benchmark files: ChatIR, CIRR, CIRCO, FashionIQ (one
module for the four formats: they share the detection, validation and error reporting).

Every loader reads the JSON once, validates all records with pydantic, and on the first bad
record raises :class:`~convir.errors.InputError` naming the expected format, the record's
index and field, and the start of the record. Formats (``format`` names used by
``convir data inspect``):

``chatir``
    ChatIR dialogues ``[{"img": path, "dialog": [caption, "question? answer", ...]}]``
    (``VisDial_v1.0_queries_val.json``, ``ChatGPT_BLIP2.json``, ``Human_BLIP2.json`` ...).
    Round d is ``dialog[: d + 1]``; the number of rounds is ``len(dialog)``. DAR's and
    PlugIR's refined-query files have the *same shape*, but ``dialog[d]`` is already a
    self-contained description of round d. The two are told apart by content (``variant``:
    ``"dialog"`` when most entries after the caption contain a ``?``, else ``"refined"``).
``chatir-search-space``
    A list of image paths (``Search_Space_val_50k.json``): list entries that look like paths
    (contain ``/`` or end in an image extension).
``cirr``
    CIRR captions ``cap.rc2.<split>.json``: ``{pairid, reference, caption, img_set{id, members,
    reference_rank[, target_rank]}[, target_hard, target_soft]}``; test1 has no targets.
``cirr-ext``
    CIRR's extended captions ``cap.ext.rc2.<split>.json``: ``{pairid, reference,
    caption_extend{"0".."3"}[, target_hard]}``.
``cirr-split``
    CIRR image splits ``split.rc2.<split>.json``: an object mapping image name to path.
``circo``
    CIRCO ``val.json`` / ``test.json``: ``{id, reference_img_id, relative_caption,
    shared_concept[, target_img_id, gt_img_ids, semantic_aspects]}``; test has no targets.
``fashioniq``
    FashionIQ ``cap.<dress|shirt|toptee>.<split>.json``: ``{candidate, captions[, target]}``;
    the test split has no ``target``.
``fashioniq-split``
    FashionIQ ``split.<category>.<split>.json``: a list of image ids (ASINs, no ``/``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from convir.errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")


class _Record(BaseModel):
    # Unknown extra keys are ignored: sibling releases add fields; required keys and types
    # are what tell the formats apart.
    model_config = ConfigDict(extra="ignore", frozen=True)


class ChatIRDialogue(_Record):
    """One ChatIR dialogue: the target image and the caption followed by the Q&A rounds."""

    img: str = Field(min_length=1)
    dialog: list[str] = Field(min_length=1)


class CIRRImageSet(_Record):
    """The 6-image group a CIRR query was written in; Recall_subset ranks within it."""

    id: int
    members: list[str] = Field(min_length=1)
    reference_rank: int | None = None
    target_rank: int | None = None


class CIRRTriplet(_Record):
    """One CIRR query: reference image + modification caption (+ target when released)."""

    pairid: int
    reference: str = Field(min_length=1)
    caption: str
    img_set: CIRRImageSet
    target_hard: str | None = None
    target_soft: dict[str, float] | None = None

    @model_validator(mode="after")
    def _reference_in_set(self) -> CIRRTriplet:
        if self.reference not in self.img_set.members:
            raise ValueError("the reference image must be one of img_set.members")
        return self


class CIRRExtTriplet(_Record):
    """One entry of CIRR's extended captions (the caption split into four aspects)."""

    pairid: int
    reference: str = Field(min_length=1)
    caption_extend: dict[str, str]
    target_hard: str | None = None


class CIRCOQuery(_Record):
    """One CIRCO query; ``target_img_id`` is always ``gt_img_ids[0]`` where released."""

    id: int
    reference_img_id: int
    relative_caption: str
    shared_concept: str
    target_img_id: int | None = None
    gt_img_ids: list[int] | None = None
    semantic_aspects: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _targets_together(self) -> CIRCOQuery:
        if (self.target_img_id is None) != (self.gt_img_ids is None):
            raise ValueError("target_img_id and gt_img_ids come together (both or neither)")
        if self.gt_img_ids is not None:
            if not self.gt_img_ids:
                raise ValueError("gt_img_ids is empty")
            if self.target_img_id not in self.gt_img_ids:
                raise ValueError("target_img_id must be one of gt_img_ids")
        return self


class FashionIQTriplet(_Record):
    """One FashionIQ query: candidate (reference) image, two relative captions, target."""

    candidate: str = Field(min_length=1)
    captions: list[str] = Field(min_length=1)
    target: str | None = None


@dataclass(frozen=True)
class _Spec:
    model: type[_Record]
    signature: frozenset[str]  # keys that identify the format in a record
    describe: str
    target_field: str | None


SPECS: dict[str, _Spec] = {
    "chatir": _Spec(
        ChatIRDialogue,
        frozenset({"img", "dialog"}),
        'ChatIR dialogues: a list of {"img": path, "dialog": [caption, "question? answer", ...]}',
        "img",
    ),
    "cirr": _Spec(
        CIRRTriplet,
        frozenset({"pairid", "reference", "caption", "img_set"}),
        "CIRR captions (cap.rc2.<split>.json): a list of {pairid, reference, caption, img_set, "
        "target_hard, target_soft}",
        "target_hard",
    ),
    "cirr-ext": _Spec(
        CIRRExtTriplet,
        frozenset({"pairid", "reference", "caption_extend"}),
        "CIRR extended captions (cap.ext.rc2.<split>.json): a list of {pairid, reference, "
        "caption_extend, target_hard}",
        "target_hard",
    ),
    "circo": _Spec(
        CIRCOQuery,
        frozenset({"id", "reference_img_id", "relative_caption", "shared_concept"}),
        "CIRCO annotations (val.json/test.json): a list of {id, reference_img_id, "
        "relative_caption, shared_concept, target_img_id, gt_img_ids}",
        "target_img_id",
    ),
    "fashioniq": _Spec(
        FashionIQTriplet,
        frozenset({"candidate", "captions"}),
        "FashionIQ captions (cap.<category>.<split>.json): a list of {candidate, captions, target}",
        "target",
    ),
}
LIST_FORMATS = {
    "chatir-search-space": "a ChatIR search space: a JSON list of image paths",
    "fashioniq-split": "a FashionIQ image split: a JSON list of image ids",
}
MAP_FORMATS = {"cirr-split": "a CIRR image split: a JSON object mapping image name to path"}
ALL_FORMATS = (*SPECS, *LIST_FORMATS, *MAP_FORMATS)

_ADAPTERS: dict[str, TypeAdapter] = {}


def _adapter(fmt: str) -> TypeAdapter:
    if fmt not in _ADAPTERS:
        _ADAPTERS[fmt] = TypeAdapter(list[SPECS[fmt].model])
    return _ADAPTERS[fmt]


# --------------------------------------------------------------------------- reading


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


def _snippet(record: object, limit: int = 160) -> str:
    text = json.dumps(record, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _looks_like_path(s: str) -> bool:
    return "/" in s or s.lower().endswith(IMAGE_SUFFIXES)


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
        return "chatir-search-space" if any(map(_looks_like_path, sample)) else "fashioniq-split"
    if isinstance(first, dict):
        keys = set(first)
        best = max(SPECS, key=lambda f: len(SPECS[f].signature & keys) / len(SPECS[f].signature))
        if SPECS[best].signature & keys:
            return best
        raise InputError(
            f"record 0 has keys {sorted(keys)}, which match no known format "
            f"({', '.join(ALL_FORMATS)})"
        )
    raise InputError(f"record 0 is a {type(first).__name__}: {_snippet(first)}; not a known format")


def _bad_record(path: Path, fmt: str, data: list, exc: ValidationError) -> InputError:
    err = exc.errors(include_url=False)[0]
    loc = err["loc"]
    index = loc[0] if loc and isinstance(loc[0], int) else 0
    field = ".".join(str(x) for x in loc[1:]) or "(record)"
    record = data[index] if index < len(data) else None
    msg = (
        f"{path}: not a valid {SPECS[fmt].describe}; record {index}, field {field}: "
        f"{err['msg']}; the record is {_snippet(record)}"
    )
    try:
        other = detect_format(data)
    except InputError:
        other = None
    if other and other != fmt:
        msg += f" (the file looks like format {other!r}; use the matching loader)"
    return InputError(msg)


def _validate(path: Path, data: Any, fmt: str) -> list:
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
                    f"either a split with targets or a test split without: {_snippet(data[i])}"
                )
    return records


def _unique(path: Path, data: list, values: list, what: str) -> None:
    seen: dict[Any, int] = {}
    for i, v in enumerate(values):
        if v in seen:
            raise InputError(
                f"{path}: record {i} repeats {what} {v!r} of record {seen[v]}: "
                f"{_snippet(data[i])}; each {what} must be unique"
            )
        seen[v] = i


UNIQUE_KEYS = {"cirr": "pairid", "cirr-ext": "pairid", "circo": "id"}


def _records(p: Path, data: Any, fmt: str) -> list:
    records = _validate(p, data, fmt)
    if key := UNIQUE_KEYS.get(fmt):
        _unique(p, data, [getattr(r, key) for r in records], key)
    return records


def _load_records(path: str | Path, fmt: str) -> list:
    return _records(Path(path), read_json(path), fmt)


# --------------------------------------------------------------------------- loaders


@dataclass(frozen=True)
class ChatIRDialogues:
    """A ChatIR-shaped dialogue file and how its rounds become query texts."""

    dialogues: list[ChatIRDialogue]
    variant: Literal["dialog", "refined"]

    @property
    def targets(self) -> list[str]:
        return [d.img for d in self.dialogues]

    @property
    def rounds(self) -> int:
        """Number of rounds of the longest dialogue (``len(dialog)``; 11 in ChatIR)."""
        return max(len(d.dialog) for d in self.dialogues)

    def queries(self, round: int, sep: str = ", ") -> list[str]:
        """The query text of every dialogue at ``round`` (0 = caption only).

        ``dialog`` variant: ChatIR's ``sep.join(dialog[: round + 1])``; ``refined`` variant
        (DAR/PlugIR): ``dialog[round]``, already one self-contained description.
        """
        out = []
        for i, d in enumerate(self.dialogues):
            if not 0 <= round < len(d.dialog):
                raise InputError(
                    f"dialogue {i} ({d.img}) has {len(d.dialog)} rounds; round {round} does "
                    "not exist (rounds are 0-based)"
                )
            out.append(
                d.dialog[round] if self.variant == "refined" else sep.join(d.dialog[: round + 1])
            )
        return out


def chatir_variant(dialogues: list[ChatIRDialogue]) -> Literal["dialog", "refined"]:
    """``"dialog"`` when most entries after the caption are ``question? answer`` turns."""
    turns = [t for d in dialogues for t in d.dialog[1:]]
    if not turns:
        return "dialog"
    return "dialog" if sum("?" in t for t in turns) >= len(turns) / 2 else "refined"


def load_chatir_dialogues(
    path: str | Path, variant: Literal["auto", "dialog", "refined"] = "auto"
) -> ChatIRDialogues:
    """Load a ChatIR-shaped dialogue file (ChatIR dialogues, DAR/PlugIR refined queries)."""
    if variant not in ("auto", "dialog", "refined"):
        raise InputError(f"variant must be auto, dialog or refined, got {variant!r}")
    dialogues = _load_records(path, "chatir")
    return ChatIRDialogues(dialogues, chatir_variant(dialogues) if variant == "auto" else variant)


def load_cirr_captions(path: str | Path) -> list[CIRRTriplet]:
    """Load ``cap.rc2.<split>.json``; test1 triplets have ``target_hard = None``."""
    return _load_records(path, "cirr")


def load_cirr_ext_captions(path: str | Path) -> list[CIRRExtTriplet]:
    """Load CIRR's extended captions ``cap.ext.rc2.<split>.json``."""
    return _load_records(path, "cirr-ext")


def load_circo(path: str | Path) -> list[CIRCOQuery]:
    """Load CIRCO ``val.json`` / ``test.json`` (test queries carry no targets)."""
    return _load_records(path, "circo")


def load_fashioniq_captions(path: str | Path) -> list[FashionIQTriplet]:
    """Load FashionIQ ``cap.<category>.<split>.json`` (test triplets carry no target)."""
    return _load_records(path, "fashioniq")


def _check_string_list(p: Path, data: Any, fmt: str) -> list[str]:
    if not isinstance(data, list) or not data:
        raise InputError(f"{p}: expected {LIST_FORMATS[fmt]}, got {_snippet(data, 80)}")
    for i, x in enumerate(data):
        if not isinstance(x, str) or not x:
            raise InputError(
                f"{p}: expected {LIST_FORMATS[fmt]}; entry {i} is {_snippet(x, 80)}, "
                "not a non-empty string"
            )
    _unique(p, data, data, "image")
    return data


def _check_cirr_split(p: Path, data: Any) -> dict[str, str]:
    if not isinstance(data, dict) or not data:
        raise InputError(f"{p}: expected {MAP_FORMATS['cirr-split']}, got {_snippet(data, 80)}")
    for i, (k, v) in enumerate(data.items()):
        if not isinstance(v, str) or not k:
            raise InputError(
                f"{p}: expected {MAP_FORMATS['cirr-split']}; entry {i} ({k!r}) maps to "
                f"{_snippet(v, 80)}, not a path string"
            )
    return data


def load_cirr_split(path: str | Path) -> dict[str, str]:
    """Load ``split.rc2.<split>.json``: image name -> relative path (the gallery)."""
    return _check_cirr_split(Path(path), read_json(path))


def load_fashioniq_split(path: str | Path) -> list[str]:
    """Load ``split.<category>.<split>.json``: the category's gallery of image ids."""
    return _check_string_list(Path(path), read_json(path), "fashioniq-split")


def load_chatir_search_space(path: str | Path) -> list[str]:
    """Load a ChatIR search space (``Search_Space_val_50k.json``): a list of image paths."""
    return _check_string_list(Path(path), read_json(path), "chatir-search-space")


def load_search_space(path: str | Path) -> list[str]:
    """The gallery ids of any search-space/split file: a ChatIR search space, a FashionIQ
    split (both lists) or a CIRR split (its keys). Used to reject unknown ids in run files."""
    p = Path(path)
    data = read_json(p)
    if isinstance(data, dict):
        return list(_check_cirr_split(p, data))
    try:
        fmt = detect_format(data)
    except InputError as exc:
        raise InputError(f"{p}: {exc}") from None
    if fmt not in LIST_FORMATS:
        raise InputError(
            f"{p}: a {fmt!r} file, not a search space; pass a list of image ids/paths "
            "(Search_Space_val_50k.json, split.<category>.<split>.json) or split.rc2.<split>.json"
        )
    return _check_string_list(p, data, fmt)


# --------------------------------------------------------------------------- inspect


def _cirr_split_name(triplets: list[CIRRTriplet]) -> str | None:
    prefix = triplets[0].reference.split("-", 1)[0]
    return {"dev": "val", "test1": "test1", "train": "train"}.get(prefix)


def _summary(fmt: str, records: list) -> dict[str, Any]:
    has_targets = getattr(records[0], SPECS[fmt].target_field) is not None
    out: dict[str, Any] = {"format": fmt, "queries": len(records), "has_targets": has_targets}
    if fmt == "chatir":
        out["rounds"] = max(len(d.dialog) for d in records)
        out["min_rounds"] = min(len(d.dialog) for d in records)
        out["variant"] = chatir_variant(records)
    elif fmt == "cirr":
        out["split"] = _cirr_split_name(records)
        out["images"] = len({m for t in records for m in t.img_set.members})
    elif fmt == "fashioniq":
        ids = {t.candidate for t in records} | {t.target for t in records if t.target}
        out["images"] = len(ids)
    elif fmt == "circo":
        if has_targets:
            out["ground_truths"] = sum(len(q.gt_img_ids or ()) for q in records)
    return out


def inspect_file(path: str | Path) -> dict[str, Any]:
    """Detect a benchmark file's format from its content, validate it fully, summarise it.

    Returns ``{"format", "queries", "has_targets", ...}`` for query files (chatir adds
    ``rounds``, ``min_rounds`` and ``variant``) and ``{"format", "images"}`` for search
    spaces and splits.
    """
    p = Path(path)
    data = read_json(p)
    try:
        fmt = detect_format(data)
    except InputError as exc:
        raise InputError(f"{p}: {exc}") from None
    if fmt in LIST_FORMATS:
        return {"format": fmt, "images": len(_check_string_list(p, data, fmt))}
    if fmt in MAP_FORMATS:
        return {"format": fmt, "images": len(_check_cirr_split(p, data))}
    return _summary(fmt, _records(p, data, fmt))


__all__ = [
    "ALL_FORMATS",
    "ChatIRDialogue",
    "ChatIRDialogues",
    "CIRRImageSet",
    "CIRRTriplet",
    "CIRRExtTriplet",
    "CIRCOQuery",
    "FashionIQTriplet",
    "read_json",
    "detect_format",
    "chatir_variant",
    "load_chatir_dialogues",
    "load_chatir_search_space",
    "load_cirr_captions",
    "load_cirr_ext_captions",
    "load_cirr_split",
    "load_circo",
    "load_fashioniq_captions",
    "load_fashioniq_split",
    "load_search_space",
    "inspect_file",
]
